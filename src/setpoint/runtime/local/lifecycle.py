"""Stop, remove, and report on instances of this host."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from setpoint.backup.schedule import running_jobs, stop_jobs
from setpoint.backup.service import read_record
from setpoint.checklist import ManagedInstance, Target
from setpoint.errors import InputError, SetpointError
from setpoint.home import Home, InstancePaths, data_account, superset_account
from setpoint.net import http_client
from setpoint.runtime.local.instance import confinement, instance_lock, limits_of, load_context, require_instance
from setpoint.services.cgroup import host_cgroups
from setpoint.services.redis import RedisServer
from setpoint.render import CACHES, REDIS_DB, instance_programs
from setpoint.runtime.local import startup, task_queue
from setpoint.observability import logstore, monitoring
from setpoint.runtime.local.accounts import remove_account
from setpoint.runtime.local.platform import load_platform
from setpoint.secret import SecretStore
from setpoint.services.supervisor import COMPONENTS
from setpoint.spec import InstanceSpec
from setpoint.spec.sizing import cpu_text



@dataclass
class ComponentStatus:
    component: str
    state: str
    pid: int
    uptime_s: int


@dataclass
class InstanceStatus:
    """Everything `setpoint status` shows about one instance."""

    name: str
    url: str
    superset_version: str
    health: str
    ca_certificate: str | None
    components: list[ComponentStatus] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    backups: dict = field(default_factory=dict)  # the last backup, drill and export, as recorded
    scheduled_jobs: dict | None = None  # the scheduler's jobs running now (jobs, since, pid)
    resources: dict = field(default_factory=dict)  # usage against the limits, from the instance's cgroup
    tasks: dict | None = None  # queued and running Celery tasks, from the broker; None when it does not answer

    def to_dict(self) -> dict:
        return asdict(self)


def instance_status(home: Home, name: str) -> InstanceStatus:
    """Each component's supervised state, and /health through Caddy."""
    paths, spec = require_instance(home, name)
    platform = load_platform(home)
    states = platform.supervisor.states(name) if platform else {}
    components = []
    for component in COMPONENTS:
        info = states.get(f"{name}-{component}")
        if info is None:
            external = (component == "postgres" and spec.metadata_db.url) or (component == "redis" and spec.cache.url)
            components.append(ComponentStatus(component, "EXTERNAL" if external else "STOPPED", 0, 0))
        else:
            components.append(ComponentStatus(component, info.state, info.pid, info.uptime_s))
    ca = platform.caddy.ca_root if platform and spec.is_local_hostname else None
    health = probe_health(spec.url, ca) if platform else "unreachable"
    return InstanceStatus(
        name=name,
        url=spec.url,
        superset_version=spec.superset_version,
        health=health,
        ca_certificate=str(ca) if ca else None,
        components=components,
        ports=paths.read_state().get("ports", {}),
        backups={k: v for k, v in read_record(paths).items() if k in ("last_backup", "last_drill", "last_export")},
        scheduled_jobs=running_jobs(paths),
        resources=resource_status(home, name, spec),
        tasks=_task_status(home, name) if platform else None,
    )


def _task_status(home: Home, name: str) -> dict | None:
    status = task_queue.task_status(load_context(home, name), SecretStore(home.instance(name).secrets_file).load())
    return status.to_dict() if status else None


def resource_status(home: Home, name: str, spec: InstanceSpec) -> dict:
    """The instance's limits and, where they are enforced, what it uses of them."""
    limits = limits_of(spec)
    status = {"memory_limit_mb": limits.memory_mb, "cpus_limit": limits.cpus, "cpu_weight": limits.cpu_weight,
              "cpu": cpu_text(limits), "pids_limit": limits.pids, "enforced": False}
    group = confinement(home, name).get("cgroup")
    usage = host_cgroups().usage(group) if group else None
    if usage is not None:
        status.update(enforced=True, memory_mb=round(usage.memory_mb), memory_peak_mb=round(usage.memory_peak_mb),
                      oom_kills=usage.oom_kills, pids=usage.pids)
    return status


def probe_health(url: str, ca: Path | None) -> str:
    """`ok` when /health answers OK over HTTPS, else a short reason."""
    try:
        with http_client(url, ca_file=ca if ca and ca.exists() else None, timeout=5) as http:
            response = http.get("/health")
        return "ok" if response.status_code == 200 and response.text.strip() == "OK" else f"HTTP {response.status_code}"
    except Exception as exc:  # noqa: BLE001 - any failure is reported, not raised
        return f"unreachable ({type(exc).__name__})"


def desired_state(home: Home, name: str) -> str:
    """`up` or `down`: what the operator last asked of an instance, which a reboot keeps."""
    recorded = home.instance(name).read_state().get("desired")
    return recorded or ("up" if home.programs_conf(name).exists() else "down")


def down(home: Home, name: str) -> list[str]:
    """Stop every process of an instance and unpublish its site; keep all its files and data.

    The instance stays down across reboots until `setpoint up NAME`."""
    paths, _ = require_instance(home, name)
    state = paths.read_state()
    if state.get("desired") != "down":
        paths.write_state({**state, "desired": "down"})
    platform = load_platform(home)
    actions = []
    if platform is None:
        return actions
    # A stopped instance is no failed scrape, and raises no alert.
    monitoring.reload(platform.supervisor, monitoring.withdraw(home, name))
    site = home.caddy_dir / "sites" / f"{name}.caddy"
    if site.exists():
        site.unlink()
        if platform.supervisor.is_running():
            platform.caddy.reload()
        actions.append(f"unpublished the site of {name}")
    conf = home.programs_conf(name)
    if conf.exists():
        conf.unlink()
        if platform.supervisor.is_running():
            platform.supervisor.update()  # stops and removes the instance's programs
        actions.append(f"stopped every process of {name}")
    return actions


def restart(home: Home, name: str, component: str | None = None) -> list[str]:
    """Restart one component, or (without one) Superset's processes, each proven ready again.

    web is reloaded gracefully (no request lost); the worker stops warmly, finishing its running
    tasks first; PostgreSQL and Redis restart only when named."""
    ctx = load_context(home, name)
    allowed = [p.component for p in instance_programs(ctx)]
    data = {p.component for p in instance_programs(ctx, app=False)}
    if component is not None and component not in allowed:
        raise InputError(f"unknown component '{component}' of {name}", f"choose one of: {', '.join(allowed)}")
    platform = load_platform(home)
    states = platform.supervisor.states(name) if platform else {}
    if not states:
        raise SetpointError(f"{name} is not running", f"start it with: setpoint up {name}")
    actions = []
    for part in [component] if component else [c for c in allowed if c not in data]:
        if part == "web":
            startup.reload_web(ctx, platform)
            actions.append(f"reloaded {name}-web gracefully: new workers, no request dropped")
            continue
        platform.supervisor.restart(f"{name}-{part}")
        actions.append(f"restarted {name}-{part}")
    secrets = SecretStore(ctx.paths.secrets_file).load()
    if component in data:
        startup.start_data(ctx, platform, secrets)
    else:
        startup.start_app(ctx, platform)
    startup.wait_healthy(ctx.spec, platform, timeout=180)
    return actions


def clear_caches(home: Home, name: str, everything: bool = False) -> dict[str, int]:
    """Delete Superset's cached chart results, metadata and thumbnails (and, with `everything`,
    the filter and Explore state users have not saved); the keys deleted, by cache. Queued
    tasks, query results, sessions and rate limits are left alone."""
    ctx = load_context(home, name)
    redis = instance_redis(ctx)
    return {prefix: redis.delete(REDIS_DB["caches"], f"superset_{prefix}_*")
            for prefix, cache in CACHES.items() if everything or not cache.users_work}


def instance_redis(ctx) -> RedisServer:
    """The instance's own Redis, answering; an error naming the fix otherwise."""
    name = ctx.spec.name
    if not ctx.managed_redis:
        raise InputError(f"the caches of {name} are in the Redis of the spec's cache.url",
                         "clear them there (the keys start with superset_)")
    redis = RedisServer(ctx.ports.redis, SecretStore(ctx.paths.secrets_file).load()["redis_password"])
    if not redis.is_ready():
        raise SetpointError(f"the Redis of {name} does not answer", f"start it with: setpoint restart {name} redis")
    return redis


def destroy(home: Home, name: str) -> list[str]:
    """Stop an instance and delete everything it had: config, secrets, data, its own log files.
    The host's log store keeps its records (and audit trail) until their retention ends."""
    paths, _ = require_instance(home, name)
    actions = []
    if stopped := stop_jobs(home, name):
        actions.append(f"stopped the scheduler's {', '.join(stopped['jobs'])} of {name} (process {stopped['pid']})")
    with instance_lock(home, name, wait_s=300):  # never under an up, a restore or a command
        return actions + _delete(home, name, paths)


def _delete(home: Home, name: str, paths: InstancePaths) -> list[str]:
    actions = down(home, name)
    _remove_cgroup(home, name)
    platform = load_platform(home)
    if logstore.withdraw(home, name) and platform is not None:
        logstore.reload(platform.supervisor)
    shutil.rmtree(paths.root)
    # The host's consoles leave the HTTPS port no instance uses any more.
    if monitoring.write_consoles_site(home, monitoring.monitoring_of(home), monitoring.host_specs(home)) \
            and platform is not None and platform.supervisor.is_running():
        platform.caddy.reload()
    remove_access_logs(paths.access_log)
    remove_access_logs(paths.former_access_log)
    actions.append(f"deleted {paths.root}")
    if logstore.records_dir(home, name).exists():
        actions.append(f"kept {name}'s logs and audit trail in the host's log store until their retention ends "
                       f"({logstore.records_dir(home, name)})")
    # The data account first: it is a member of the Superset account's group, which userdel keeps
    # while it has a member.
    for account in (data_account(home.root, name), superset_account(home.root, name)):
        if remove_account(account):
            actions.append(f"deleted the account {account}")
    return actions


def _remove_cgroup(home: Home, name: str) -> None:
    """Remove the instance's cgroup, ending first whatever still runs in it once its programs have
    stopped (what a killed job left: a drill's scratch PostgreSQL), so that its accounts can go."""
    group, cgroups = confinement(home, name).get("cgroup"), host_cgroups()
    if not group or cgroups is None:
        return
    deadline = time.monotonic() + 10
    while (left := cgroups.pids(group)) and time.monotonic() < deadline:
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    with contextlib.suppress(OSError):  # a process still exiting keeps it; it is empty and harmless
        cgroups.remove(group)


def remove_access_logs(live: Path) -> None:
    """Delete an instance's access logs in Caddy's directory, but empty the live one in place:
    Caddy (2.6) keeps a removed site's log file open, and a site published again under this name
    would write to an unlinked file. The directory is Caddy's account's: a link planted there is
    removed, never followed (root would truncate whatever it points to), and so is a FIFO, never
    waited on."""
    for log in live.parent.glob(live.name.removesuffix(".log") + "*"):  # NAME.access.log, NAME.access-*.log
        if log == live:
            with contextlib.suppress(OSError):  # a link (ELOOP) or a FIFO: deleted below
                fd = os.open(log, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                try:
                    if stat.S_ISREG(os.fstat(fd).st_mode):
                        os.ftruncate(fd, 0)
                        continue
                finally:
                    os.close(fd)
        log.unlink()


def credentials(home: Home, name: str) -> dict[str, str]:
    """The admin login of an instance (the one command that shows a secret)."""
    paths, spec = require_instance(home, name)
    secrets = SecretStore(paths.secrets_file).load()
    return {"url": spec.url, "username": spec.admin.username, "password": secrets["admin_password"]}


def require_records(home: Home, name: str, components: list[str]) -> list[str]:
    """The components whose records `setpoint logs` shows (all when none is named), for an
    instance that exists or whose records the log store keeps."""
    if not home.instance(name).exists() and not logstore.records_dir(home, name).exists():
        raise InputError(f"no instance named '{name}' and no records of it in the log store",
                         "list the instances with: setpoint status")
    allowed = (*COMPONENTS, "access")
    unknown = [c for c in components if c not in allowed]
    if unknown:
        raise InputError(f"unknown component '{unknown[0]}'", f"choose one of: {', '.join(allowed)}")
    return components


def managed_target(home: Home, name: str) -> Target:
    """What `setpoint check NAME` probes: the instance's URL plus everything Setpoint knows of it."""
    context = load_context(home, name)
    spec, paths = context.spec, context.paths
    platform = load_platform(home)
    managed = ManagedInstance(spec, paths, platform, context, SecretStore(paths.secrets_file).load())
    ca = platform.caddy.ca_root if spec.is_local_hostname else None
    return Target(url=spec.url, ca_file=ca, managed=managed)
