"""One instance on this host: its context (ports, paths, sizing) and the preflight checks of a spec."""

from __future__ import annotations

import contextlib
import fcntl
import time

import yaml

from setpoint import proc
from setpoint.errors import InputError, SetpointError
from setpoint.home import Home, InstancePaths, data_account, is_root, service_user, superset_account
from setpoint.host import installation
from setpoint.net import host_addresses, instance_port_range, is_port_free
from setpoint.observability import monitoring
from setpoint.render import InstanceContext, Ports
from setpoint.services.cgroup import group_name, host_cgroups
from setpoint.services.superset import venv_dir
from setpoint.spec import InstanceSpec, parse_spec, size_instance
from setpoint.spec.sizing import Limits, resource_limits

# Chromium and its driver render reports' images and thumbnails (services/screenshots.py).
REQUIRED_BINARIES = ("initdb", "postgres", "pg_isready", "psql", "redis-server", "redis-cli", "caddy", "chromium", "chromedriver")


@contextlib.contextmanager
def instance_lock(home: Home, name: str, wait_s: float = 0):
    """One command changing an instance at a time: wait up to `wait_s` for the other one, then
    fail, having changed nothing."""
    home.instances_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    with open(home.instances_dir / f".{name}.lock", "w") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise busy(home, name) from None
                time.sleep(0.5)
        yield


def busy(home: Home, name: str) -> SetpointError:
    """What holds the instance: the scheduler's jobs (a drill of a large instance takes hours), or
    another command."""
    from setpoint.backup.schedule import running_jobs

    jobs = running_jobs(home.instance(name))
    if jobs:
        return SetpointError(
            f"the scheduler's {', '.join(jobs['jobs'])} of instance '{name}' is running "
            f"(since {jobs['since'][:19].replace('T', ' ')} UTC, process {jobs['pid']})",
            f"wait for it to finish (setpoint status {name} shows it), then run the command again")
    return SetpointError(f"another setpoint command is already changing instance '{name}'",
                         "wait for it to finish, then run the command again")


def saved_spec(paths: InstancePaths) -> InstanceSpec | None:
    """The spec an instance was last converged to."""
    if not paths.spec_file.exists():
        return None
    return parse_spec(yaml.safe_load(paths.spec_file.read_text()), source=str(paths.spec_file))


def require_instance(home: Home, name: str) -> tuple[InstancePaths, InstanceSpec]:
    """An existing instance's paths and spec, or an InputError naming the instances there are."""
    paths = home.instance(name)
    spec = saved_spec(paths) if paths.exists() else None
    if spec is None:
        known = ", ".join(home.instance_names()) or "none"
        raise InputError(f"there is no instance named '{name}' (instances: {known})", f"create it with: setpoint up {name}")
    return paths, spec


def used_ports(home: Home, except_instance: str) -> set[int]:
    """Loopback ports other instances of this home hold."""
    ports: set[int] = set()
    for other in home.instance_names():
        if other != except_instance:
            ports.update(home.instance(other).read_state().get("ports", {}).values())
    return ports


def allocate_ports(home: Home, spec: InstanceSpec, previous: dict[str, int]) -> Ports:
    """Keep the ports an instance had; honour the spec's; pick free ones for the rest."""
    taken = used_ports(home, spec.name) | {spec.https_port, spec.http_port}
    wanted = {"web": spec.web_port, "postgres": spec.metadata_db.port, "redis": spec.cache.port}
    chosen: dict[str, int] = {}
    for component, port in wanted.items():
        port = port or previous.get(component)
        if port is None:
            port = next(p for p in instance_port_range() if p not in taken and is_port_free(p, "127.0.0.1"))
        elif port in taken:
            raise InputError(
                f"port {port} for {component} is already used by another instance",
                "choose another port in the spec, or leave it empty to have one chosen",
            )
        taken.add(port)
        chosen[component] = port
    return Ports(**chosen)


def build_context(home: Home, spec: InstanceSpec, ports: Ports, user: str) -> InstanceContext:
    """The rendering context of an instance; `user` is the host's service user (without root,
    the one account everything runs as)."""
    return InstanceContext(
        spec=spec,
        sizing=size_instance(spec.concurrent_users),
        limits=limits_of(spec),
        paths=home.instance(spec.name),
        ports=ports,
        data_user=data_account(home.root, spec.name) if is_root() else user,
        superset_user=superset_account(home.root, spec.name) if is_root() else user,
        db_superuser=user,
        venv=venv_dir(home, spec.superset_version),
        postgres_bin=proc.find_binary("postgres"),
        redis_bin=proc.find_binary("redis-server"),
        lan_addresses=tuple(host_addresses()) if spec.lan_https_port else (),
        scrape_digest=monitoring.scrape_digest(home),
        **confinement(home, spec.name),
    )


def limits_of(spec: InstanceSpec) -> Limits:
    """The spec's resource limits, with the defaults of its size on this host."""
    r = spec.resources
    return resource_limits(spec.concurrent_users, r.memory_mb, r.cpus, r.pids)


def confinement(home: Home, name: str) -> dict[str, str]:
    """How an instance's processes join its cgroup: only as root, where cgroups are writable."""
    if not is_root() or host_cgroups() is None:
        return {}
    return {"confine_python": str(installation.link_path(home) / "bin" / "python"),
            "cgroup": group_name(home.root, name)}


def load_context(home: Home, name: str) -> InstanceContext:
    """The rendering context of an existing instance, from its saved spec and ports."""
    paths, spec = require_instance(home, name)
    ports = paths.read_state().get("ports")
    if not ports:
        raise InputError(f"instance '{name}' has never been started", f"start it with: setpoint up {name}")
    return build_context(home, spec, Ports(**ports), service_user())


def preflight(home: Home, spec: InstanceSpec, ports: Ports, running: set[int], site_ports: set[int]) -> None:
    """Facts about the host that must hold before anything changes (binaries, names, ports).

    `running` holds the ports this instance's own processes already listen on, `site_ports` those
    the host's Caddy already serves.
    """
    for binary in REQUIRED_BINARIES:
        proc.find_binary(binary)
    for other in home.instance_names():
        if other == spec.name:
            continue
        other_spec = saved_spec(home.instance(other))
        if other_spec and other_spec.host == spec.host and {other_spec.https_port, other_spec.http_port} & {
            spec.https_port,
            spec.http_port,
        }:
            raise InputError(
                f"hostname {spec.host} is already served by instance '{other}'",
                "set another hostname (or other ports) in the spec",
            )
        if other_spec and spec.lan_https_port and other_spec.lan_https_port == spec.lan_https_port:
            raise InputError(
                f"lan_https_port {spec.lan_https_port} already serves instance '{other}' on this host's addresses",
                "choose another lan_https_port in the spec",
            )
    named = [("https_port", spec.https_port), ("http_port", spec.http_port)]
    if spec.lan_https_port:
        named.append(("lan_https_port", spec.lan_https_port))
    for label, port in named:
        # A port Caddy already serves for another instance is shared by hostname; any other
        # listener is a conflict.
        if port not in site_ports and not is_port_free(port):
            raise InputError(
                f"{label} {port} is already in use by another program",
                f"stop that program, or set another {label} in the spec",
            )
    for component in ("web", "postgres", "redis"):
        port = getattr(ports, component)
        if port not in running and not is_port_free(port, "127.0.0.1"):
            raise InputError(
                f"port {port} for {component} is already in use by another program",
                f"stop that program, or set another port for {component} in the spec",
            )


def check_superset_version_change(old: InstanceSpec | None, new: InstanceSpec) -> None:
    """Changing the Superset version of a running instance is an upgrade, not a converge."""
    if old is not None and old.superset_version != new.superset_version:
        raise InputError(
            f"instance '{new.name}' runs Superset {old.superset_version}; the spec asks for {new.superset_version}",
            f"upgrade it through a staging copy, with rollback: setpoint upgrade {new.name} --to {new.superset_version} "
            f"(and keep superset_version: {old.superset_version} in the spec until then)",
        )
