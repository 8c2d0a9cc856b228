"""The host at boot: a systemd unit whose start command brings back every instance that should run.

`start_host` is that command (`setpoint host start`): it starts the host's supervisord (Caddy and
the scheduler come with it) from Setpoint's own installation, then brings every instance whose
desired state is up back in dependency order, with the readiness checks of `up`. Run again while
everything runs, it changes nothing.
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from setpoint import proc
from setpoint.errors import SetpointError
from setpoint.home import SYSTEM_HOME, Home, write_file
from setpoint.host import installation as installations
from setpoint.render import render_boot_unit
from setpoint.runtime.local.instance import instance_lock, load_context
from setpoint.runtime.local.lifecycle import desired_state
from setpoint.runtime.local.platform import HOST_PROGRAMS, Platform, load_platform
from setpoint.runtime.local.startup import start_instance
from setpoint.secret import SecretStore

SYSTEMD_DIR = Path("/etc/systemd/system")


def unit_name(home: Home) -> str:
    """`setpoint.service` for the system home; another home gets a name of its own."""
    if home.root == SYSTEM_HOME:
        return "setpoint.service"
    return f"setpoint-{hashlib.sha256(str(home.root).encode()).hexdigest()[:8]}.service"


def is_systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir()


@dataclass
class BootUnit:
    """Where the unit was written and how it is enabled."""

    path: Path
    enabled_by: str  # "systemctl" or "a wants/ link" (systemd is not running here)
    command: str
    changed: bool


def install_boot_unit(home: Home, unit_dir: Path = SYSTEMD_DIR) -> BootUnit:
    """Write the host's systemd unit, enabled at boot; it runs the host's own installation."""
    if installations.current(home) is None:
        raise SetpointError(f"Setpoint is not installed for the host at {home.root} yet",
                            "run: setpoint host install (it installs Setpoint for the host first)")
    command = str(installations.link_path(home) / "bin" / "setpoint")
    name = unit_name(home)
    path = unit_dir / name
    try:
        changed = write_file(path, render_boot_unit(home, command))
    except PermissionError:
        raise SetpointError(f"cannot write the boot unit {path}: permission denied",
                            "run it as root (sudo setpoint host install), or choose a directory with --unit-dir") from None
    if unit_dir == SYSTEMD_DIR and is_systemd_running():
        proc.run(["systemctl", "daemon-reload"], what="reloading systemd")
        proc.run(["systemctl", "enable", name], what=f"enabling {name}")
        return BootUnit(path, "systemctl", command, changed)
    # What `systemctl enable` does, for a host where systemd is installed but not running now.
    wants = unit_dir / "multi-user.target.wants" / name
    wants.parent.mkdir(parents=True, exist_ok=True)
    if not wants.is_symlink():
        wants.symlink_to(path)
        changed = True
    return BootUnit(path, "a wants/ link", command, changed)


def verify_boot_unit(path: Path) -> str:
    """`systemd-analyze verify` of a unit file: its complaints, or an empty string."""
    result = proc.run(["systemd-analyze", "verify", path], check=False, timeout=60)
    return (result.stdout + result.stderr).strip() if not result.ok else ""


@dataclass
class InstanceStart:
    name: str
    outcome: str  # "healthy", "down" (kept down), or why it did not come back
    seconds: float

    @property
    def ok(self) -> bool:
        return self.outcome in ("healthy", "down")


@dataclass
class HostStart:
    """What the boot command did: whether it started supervisord, and each instance's outcome."""

    started_supervisor: bool
    instances: list[InstanceStart] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(i.ok for i in self.instances)

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def start_host(home: Home, log=lambda message: None) -> HostStart:
    """Start the host's services, then every instance whose desired state is up, in parallel."""
    began = time.monotonic()
    platform = load_platform(home)
    if platform is None:
        raise SetpointError(f"there is no Setpoint host at {home.root}", "create an instance with: setpoint up NAME")
    if not platform.supervisor.is_running():
        # supervisord starts the instances' workers at once; process ids start low again after a
        # reboot, and a ready file from before could name a new worker before it is ready.
        for name in home.instance_names():
            home.instance(name).worker_ready_file.unlink(missing_ok=True)
    started = platform.supervisor.ensure_running()
    if started:
        log("started the host's supervisord (Caddy, the scheduler)")
    platform.supervisor.wait_running(list(HOST_PROGRAMS), timeout=60)
    platform.caddy.wait_ready()
    names = home.instance_names()
    wanted = [n for n in names if desired_state(home, n) == "up"]
    report = HostStart(started, [InstanceStart(n, "down", 0.0) for n in names if n not in wanted])
    with ThreadPoolExecutor(max_workers=max(1, len(wanted))) as pool:
        for outcome in pool.map(lambda n: _bring_back(home, n, platform), wanted):
            log(f"{outcome.name}: {outcome.outcome} ({outcome.seconds:.0f} s)")
            report.instances.append(outcome)
    report.instances.sort(key=lambda i: i.name)
    report.seconds = time.monotonic() - began
    return report


def _bring_back(home: Home, name: str, platform: Platform) -> InstanceStart:
    began = time.monotonic()
    try:
        if not home.programs_conf(name).exists():
            raise SetpointError(f"{name} was never completely created", f"run: setpoint up {name}")
        with instance_lock(home, name, wait_s=300):  # never beside an up, a restore or a backup job
            ctx = load_context(home, name)
            start_instance(ctx, platform, SecretStore(ctx.paths.secrets_file).load())
        outcome = "healthy"
    except SetpointError as exc:
        outcome = exc.message + (f" ({exc.hint})" if exc.hint else "")
    return InstanceStart(name, outcome, time.monotonic() - began)


def stop_host(home: Home) -> bool:
    """Stop supervisord and every process under it; desired states stay, so the next start brings
    the same instances back. Return whether anything was running."""
    platform = load_platform(home)
    if platform is None or platform.supervisor.pid() is None:
        return False
    platform.supervisor.shutdown()
    return True
