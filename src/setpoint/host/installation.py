"""Setpoint's own installation on a host: once per version, owned by the platform, never a checkout.

Every long-lived process of the host (supervisord, the scheduler, the boot command) runs from
`SETPOINT_HOME/venvs/setpoint-VERSION-DIGEST`, reached through the stable link
`SETPOINT_HOME/current`. Removing the clone or virtualenv that ran `setpoint up` changes
nothing for them. The digest is taken over the source, so a changed checkout gets an installation
of its own, and the previous one stays on disk until the host services run healthy on the new one.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

from setpoint import __version__, proc
from setpoint.errors import SetpointError
from setpoint.home import Home
from setpoint.services.superset import base_python

LINK = "current"  # SETPOINT_HOME/current -> venvs/setpoint-VERSION-DIGEST
PREFIX = "setpoint-"
MARKER = ".setpoint-installed"
# On PATH for the operator when Setpoint runs as root.
COMMAND_LINK = Path("/usr/local/bin/setpoint")


@dataclass(frozen=True)
class Installation:
    """One installed version of Setpoint, in a virtualenv of its own."""

    root: Path

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    @property
    def python(self) -> Path:
        return self.bin_dir / "python"

    def is_complete(self) -> bool:
        return (self.root / MARKER).exists()


def link_path(home: Home) -> Path:
    """The stable path of the active installation, named by the boot unit and the PATH link."""
    return home.root / LINK


def current(home: Home) -> Installation | None:
    """The installation the host's services run from, if one was made."""
    link = link_path(home)
    if not link.is_symlink():
        return None
    installation = Installation(link.resolve())
    return installation if installation.is_complete() else None


def running_installation(home: Home) -> Installation | None:
    """The installation this very process runs from, if it runs from one of `home`'s."""
    prefix = Path(sys.prefix).resolve()
    venvs = home.venvs_dir.resolve()
    if prefix.parent == venvs and prefix.name.startswith(PREFIX) and Installation(prefix).is_complete():
        return Installation(prefix)
    return None


def source_of_running() -> tuple[str, str]:
    """What pip installs to reproduce the running Setpoint (its source directory, or the wheel or
    directory it was installed from), and a digest of its content."""
    package = Path(__file__).resolve().parents[1]  # .../src/setpoint when run from a source tree
    if package.parent.name == "src" and (package.parent.parent / "pyproject.toml").exists():
        path: Path | None = package.parent.parent
    else:
        path = _installed_from()
    if path is None or not path.exists():
        raise SetpointError(
            "cannot tell where this Setpoint was installed from, so the host cannot get an installation of its own",
            "install Setpoint from its source directory or a wheel (pip install PATH), then run the command again",
        )
    return str(path), _digest(path)


def _installed_from() -> Path | None:
    """The local directory or wheel pip installed Setpoint from, as pip recorded it."""
    try:
        direct = metadata.distribution("setpoint").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    url = json.loads(direct)["url"] if direct else ""
    return Path(unquote(urlparse(url).path)) if url.startswith("file://") else None


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    if path.is_file():
        digest.update(path.read_bytes())
        return digest.hexdigest()
    files = [path / "pyproject.toml", *sorted((path / "src").rglob("*"))]
    for file in files:
        if file.is_file() and "__pycache__" not in file.parts and file.suffix != ".pyc":
            digest.update(str(file.relative_to(path)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def _buildable_copy(source: Path, scratch: Path) -> Path:
    """A copy of a source tree to build from: pip builds in place, and the checkout stays untouched."""
    if source.is_file():
        return source
    copy = scratch / "setpoint"
    copy.mkdir()
    for name in ("pyproject.toml", "README.md"):
        if (source / name).exists():
            shutil.copy2(source / name, copy / name)
    shutil.copytree(source / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return copy


def _frozen_requirements() -> str:
    """The running environment's packages, as constraints: the installation gets the same versions."""
    lines = []
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() != "setpoint":
            lines.append(f"{name}=={dist.version}")
    return "\n".join(sorted(set(lines))) + "\n"


def ensure_installation(home: Home, log=lambda message: None, step=lambda message: None) -> Installation:
    """The installation of the running Setpoint under `home`: made once per version and source.

    Does not switch the host over to it: see `activate`."""
    own = running_installation(home)
    if own is not None:
        return own
    source, digest = source_of_running()
    installation = Installation(home.venvs_dir.resolve() / f"{PREFIX}{__version__}-{digest[:12]}")
    if installation.is_complete():
        return installation
    home.venvs_dir.mkdir(parents=True, exist_ok=True)
    with open(home.venvs_dir / f".{installation.root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two commands at once install once
        if not installation.is_complete():
            _install(installation, digest, source, log, step)
    return installation


def _install(installation: Installation, digest: str, source: str, log, step) -> None:
    step(f"installing Setpoint {__version__} for the host's services")
    if installation.root.exists():
        shutil.rmtree(installation.root)  # a half-made one from an interrupted run
    proc.run([base_python(), "-m", "venv", installation.root], what="creating Setpoint's virtualenv", timeout=300)
    constraints = installation.root / "constraints.txt"
    constraints.write_text(_frozen_requirements())
    with tempfile.TemporaryDirectory(prefix="setpoint-build-") as scratch:
        proc.run(
            [installation.python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "-c", constraints, _buildable_copy(Path(source), Path(scratch))],
            what=f"installing Setpoint {__version__} into {installation.root}",
            hint="check that PyPI is reachable and the disk has room; then run the command again",
            timeout=900,
        )
    installation.root.chmod(0o755)
    (installation.root / MARKER).write_text(f"{__version__} {digest}\n")
    log(f"installed Setpoint {__version__} into {installation.root} for the host's services")


def activate(home: Home, installation: Installation) -> Installation | None:
    """Point the stable link at `installation`; return the one it pointed at before."""
    previous = current(home)
    link = link_path(home)
    if previous is not None and previous.root == installation.root:
        return previous
    _replace_symlink(link, installation.root)  # atomic: the boot unit always finds a complete installation
    return previous


def _replace_symlink(link: Path, target: Path) -> None:
    tmp = link.with_name(f".{link.name}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)


def prune(home: Home, keep: set[Path]) -> list[Path]:
    """Remove installations that are neither current, nor in `keep`, nor used by a running process."""
    active = current(home)
    kept = {p.resolve() for p in keep} | ({active.root} if active else set())
    in_use = _paths_in_use()
    removed = []
    for candidate in sorted(home.venvs_dir.resolve().glob(f"{PREFIX}*")):
        if candidate in kept or not candidate.is_dir() or any(str(p).startswith(f"{candidate}/") for p in in_use):
            continue
        shutil.rmtree(candidate)
        removed.append(candidate)
    return removed


def _paths_in_use() -> set[str]:
    """The first words of every process's command line: the interpreters and scripts running now."""
    used = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            used.update(a.decode(errors="replace") for a in argv[:2] if a)
    return used


def link_command(home: Home, command_link: Path = COMMAND_LINK) -> bool:
    """Put `setpoint` on PATH: `command_link` -> the active installation's command."""
    target = link_path(home) / "bin" / "setpoint"
    if command_link.is_symlink() and os.readlink(command_link) == str(target):
        return False
    command_link.parent.mkdir(parents=True, exist_ok=True)
    _replace_symlink(command_link, target)
    return True
