"""SETPOINT_HOME: where the platform keeps each instance's config, secrets, state, logs and data."""

from __future__ import annotations

import getpass
import json
import os
import pwd
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

SERVICE_USER = "setpoint"
SYSTEM_HOME = Path("/var/lib/setpoint")


def is_root() -> bool:
    return os.geteuid() == 0


def service_user() -> str:
    """The unprivileged account services run as: `setpoint` when Setpoint runs as root."""
    return SERVICE_USER if is_root() else getpass.getuser()


def default_home() -> Path:
    """SETPOINT_HOME, else a system path when root, else the user's data directory."""
    if os.environ.get("SETPOINT_HOME"):
        return Path(os.environ["SETPOINT_HOME"]).absolute()
    return SYSTEM_HOME if is_root() else Path(platformdirs.user_data_dir("setpoint"))


@dataclass(frozen=True)
class InstancePaths:
    """The directory of one instance and everything in it."""

    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    config = property(lambda self: self.root / "config")
    data = property(lambda self: self.root / "data")
    logs = property(lambda self: self.root / "logs")
    run = property(lambda self: self.root / "run")
    spec_file = property(lambda self: self.root / "spec.yaml")
    state_file = property(lambda self: self.root / "state.json")
    secrets_file = property(lambda self: self.root / "secrets.json")
    pg_data = property(lambda self: self.data / "postgres")
    redis_data = property(lambda self: self.data / "redis")
    superset_home = property(lambda self: self.data / "superset")
    backup = property(lambda self: self.root / "backup")

    def exists(self) -> bool:
        return self.state_file.exists()

    def read_state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def write_state(self, state: dict[str, Any]) -> None:
        write_file(self.state_file, json.dumps(state, indent=2, sort_keys=True) + "\n")


@dataclass(frozen=True)
class Home:
    """The platform home: instances/, venvs/, caddy/ and supervisor/."""

    root: Path

    instances_dir = property(lambda self: self.root / "instances")
    venvs_dir = property(lambda self: self.root / "venvs")
    caddy_dir = property(lambda self: self.root / "caddy")
    supervisor_dir = property(lambda self: self.root / "supervisor")

    def programs_conf(self, name: str) -> Path:
        """The supervisord include file of an instance: present while the instance should run."""
        return self.supervisor_dir / "conf.d" / f"{name}.conf"

    def instance(self, name: str) -> InstancePaths:
        return InstancePaths(self.instances_dir / name)

    def instance_names(self) -> list[str]:
        if not self.instances_dir.exists():
            return []
        return sorted(p.name for p in self.instances_dir.iterdir() if (p / "state.json").exists())


def write_file(path: Path, text: str, mode: int = 0o644, owner: str | None = None) -> bool:
    """Write atomically (temp file and rename); return whether the content changed."""
    if path.exists() and path.read_text() == text and (path.stat().st_mode & 0o777) == mode:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        if owner:
            chown(Path(tmp), owner)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def chown(path: Path, user: str, recursive: bool = False) -> None:
    """Give a path (and with `recursive` everything below it) to `user`; a no-op unless root."""
    if not is_root():
        return
    entry = pwd.getpwnam(user)
    paths = [path, *path.rglob("*")] if recursive else [path]
    for p in paths:
        os.lchown(p, entry.pw_uid, entry.pw_gid)


def unreachable_parent(path: Path, user: str) -> Path | None:
    """The first ancestor of `path` that `user` cannot traverse, if any (only checked as root)."""
    if not is_root() or user == "root":
        return None
    uid = pwd.getpwnam(user).pw_uid
    for parent in reversed(path.absolute().parents):
        st = parent.stat()
        if st.st_uid == uid:
            continue
        if not st.st_mode & 0o001:
            return parent
    return None
