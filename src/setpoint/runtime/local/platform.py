"""What every instance on the host shares: the service user, supervisord and Caddy (which runs
as an account of its own)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from setpoint import proc
from setpoint.host import installation as installations
from setpoint.home import Home, caddy_user, logstore_user, own_directory, service_user, unreachable_parent, write_file
from setpoint.errors import SetpointError
from setpoint.observability import logstore, monitoring
from setpoint.runtime.local.accounts import ensure_account
from setpoint.render import render_caddyfile, render_supervisord_conf
from setpoint.services.caddy import Caddy
from setpoint.services.supervisor import Supervisor
from setpoint.spec import InstanceSpec


@dataclass(frozen=True)
class Platform:
    """The host-level parts of one SETPOINT_HOME."""

    home: Home
    user: str
    supervisor: Supervisor
    caddy: Caddy


def load_platform(home: Home) -> Platform | None:
    """The platform of `home` if it was ever set up."""
    settings = home.root / "platform.json"
    if not settings.exists():
        return None
    active = installations.current(home)
    # supervisord comes from the host's own installation; before there is one, from beside us.
    bin_dir = active.bin_dir if active else Path(sys.executable).parent
    return Platform(home, service_user(), Supervisor(home, bin_dir), Caddy(home))


def ensure_platform(home: Home, log=lambda message: None, step=lambda message: None,
                    converging: InstanceSpec | None = None) -> Platform:
    """Set up (once) and start the host's supervisord, Caddy and scheduler for `home`, running from
    Setpoint's own installation on the host (made from the running Setpoint when it is new).
    `converging` is the spec an `up` is applying, before it is saved."""
    user = service_user()
    if ensure_account(user):
        log(f"created the unprivileged service user {user}")
    caddy = caddy_user()
    if ensure_account(caddy, "Caddy account"):
        log(f"created the account {caddy} for Caddy")
    if ensure_account(logstore_user(), "log store account"):
        log(f"created the account {logstore_user()} for the log store")
    home.root.mkdir(parents=True, exist_ok=True)
    home.root.chmod(0o755)
    blocked = unreachable_parent(home.root, user)
    if blocked:
        raise SetpointError(
            f"the service user {user} cannot reach SETPOINT_HOME {home.root}: {blocked} is closed to it",
            f"choose a SETPOINT_HOME outside {blocked}, or run: chmod o+x {blocked}",
        )
    for directory in (home.instances_dir, home.venvs_dir, home.supervisor_dir / "conf.d"):
        directory.mkdir(parents=True, exist_ok=True)
    # Caddy's account alone reads its state (the local CA's keys); no instance account can. Given
    # without following a link Caddy's account could have planted (own_directory).
    for directory in (home.caddy_dir, home.caddy_dir / "sites", home.caddy_dir / "admin"):
        own_directory(home.root, directory, caddy, mode=0o700, recursive=True)
    # The instances' access logs, which Caddy appends to and the log store reads: root's directory.
    own_directory(home.root, home.access_logs_dir, "root", caddy, mode=0o750)
    write_file(home.root / "platform.json", json.dumps({"caddy_admin": "unix socket"}) + "\n")
    platform = load_platform(home)
    caddy_bin = proc.find_binary("caddy")
    specs = monitoring.host_specs(home, converging)
    monitored = replace(monitoring.monitoring_of(home), retention_days=monitoring.host_retention_days(specs),
                        console_url=monitoring.console_url(specs))
    monitoring_changes = monitoring.prepare(home, monitored, log)
    logstore_changed = logstore.prepare(home)
    for change in logstore.open_instances_to_store(home):
        log(change)
    caddyfile = render_caddyfile(home, platform.caddy.admin_socket, monitored.caddy_metrics_port,
                                 monitoring.api_password_hash(home))
    before_caddyfile = platform.caddy.caddyfile.read_text() if platform.caddy.caddyfile.exists() else ""
    if write_file(platform.caddy.caddyfile, caddyfile, owner=caddy) and platform.supervisor.is_running():
        if _admin_line(before_caddyfile) != _admin_line(caddyfile):
            # A new admin address (it moved off TCP) needs a new process.
            platform.supervisor.restart("caddy")
            log("restarted Caddy: its admin endpoint changed")
        else:
            platform.caddy.reload()  # graceful: no connection dropped
    installation = installations.ensure_installation(home, log, step)
    conf = platform.supervisor.conf
    before = conf.read_text() if conf.exists() else None
    changed = write_file(conf, render_supervisord_conf(home, caddy_bin, caddy, str(installation.python), monitored,
                                                       proc.find_binary("rsyslogd"), logstore_user()), mode=0o600)
    if not platform.supervisor.is_running():
        installations.activate(home, installation)
        platform = load_platform(home)
        platform.supervisor.ensure_running()
        log("started the host's supervisord and Caddy")
    elif changed:
        _switch_host_services(platform, installation, before, log)
    platform.supervisor.wait_running(list(HOST_PROGRAMS), timeout=30)
    inherited = platform.supervisor.inherited_variables()
    if inherited:
        shown = ", ".join(inherited[:5]) + (", ..." if len(inherited) > 5 else "")
        log(f"warning: the host's supervisord keeps {len(inherited)} variables of the shell that started it ({shown}), "
            "and every instance's processes inherit them: start it clean with: setpoint host stop && setpoint host start")
    monitoring.reload(platform.supervisor, monitoring_changes)
    if logstore_changed:
        logstore.reload(platform.supervisor)
    platform.caddy.wait_ready()
    return platform


HOST_PROGRAMS = ("caddy", "scheduler", "prometheus", "alertmanager", "node-exporter", "blackbox", "logstore", "mailbox")


def _admin_line(caddyfile: str) -> str:
    return next((line.strip() for line in caddyfile.splitlines() if line.strip().startswith("admin ")), "")


def _switch_host_services(platform: Platform, installation: installations.Installation, before: str | None, log) -> None:
    """Move the running host services to `installation` (supervisord restarts those whose command
    changed); keep the previous installation until they run, and go back to it if they do not."""
    home = platform.home
    previous = installations.current(home)
    platform.supervisor.ctl("reread")
    platform.supervisor.update()
    try:
        platform.supervisor.wait_running(list(HOST_PROGRAMS), timeout=30)
    except SetpointError:
        if before is not None:
            write_file(platform.supervisor.conf, before, mode=0o600)
            platform.supervisor.ctl("reread")
            platform.supervisor.update()
        raise SetpointError(
            f"the host's services did not start from {installation.root}; they run from the previous installation again",
            f"see {home.supervisor_dir}/scheduler.log, then run the command again",
        ) from None
    installations.activate(home, installation)
    installations.prune(home, keep={previous.root} if previous else set())
    if previous is None or previous.root != installation.root:
        log(f"switched the host's services to {installation.root}")
