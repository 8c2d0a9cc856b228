"""Starting an existing instance's processes in dependency order, each step proven ready.

`up` runs these steps around its migrations; the host's boot command runs them alone.
"""

from __future__ import annotations

import time

from setpoint.errors import SetpointError
from setpoint.net import http_client
from setpoint.readiness import wait_until
from setpoint.render import InstanceContext, instance_programs
from setpoint.runtime.local.platform import Platform
from setpoint.services.postgres import cluster_of
from setpoint.services.redis import RedisServer
from setpoint.services.supervisor import ProcessState
from setpoint.services.superset import SupersetCommands
from setpoint.spec import InstanceSpec


def start_data(ctx: InstanceContext, platform: Platform, secrets: dict[str, str]) -> None:
    """Start PostgreSQL and Redis and wait until they answer (a restored cluster first replays its WAL)."""
    names = [p.name for p in instance_programs(ctx, app=False)]
    platform.supervisor.start(*names)
    platform.supervisor.wait_running(names)
    if ctx.managed_postgres:
        cluster = cluster_of(ctx)
        cluster.wait_ready()
        cluster.wait_primary()
    if ctx.managed_redis:
        RedisServer(ctx.ports.redis, secrets["redis_password"]).wait_ready()


def start_app(ctx: InstanceContext, platform: Platform, before: dict[str, ProcessState] | None = None) -> None:
    """Start gunicorn and Celery and wait until they run and the worker answers over the broker.

    A worker that is still the process it was `before` (supervisord's states when the caller
    began) was proven when it started: it is not asked again."""
    names = [p.name for p in instance_programs(ctx)]
    worker = f"{ctx.spec.name}-worker"
    state = platform.supervisor.states(ctx.spec.name).get(worker)
    if state is None or state.state in ("STOPPED", "EXITED", "FATAL", "BACKOFF"):
        # Not started yet: a ready file from an earlier worker could name this one (process ids
        # are reused, from low numbers again after a reboot).
        ctx.paths.worker_ready_file.unlink(missing_ok=True)
    platform.supervisor.start(*names)
    platform.supervisor.wait_running(names, timeout=120)
    was = (before or {}).get(worker)
    now = platform.supervisor.states(ctx.spec.name).get(worker)
    if was is None or not was.is_running or now is None or now.pid != was.pid:
        SupersetCommands(ctx).wait_worker(now.pid if now else None)


def start_instance(ctx: InstanceContext, platform: Platform, secrets: dict[str, str]) -> None:
    """Bring every process of a converged instance up, in order, until it serves over HTTPS."""
    start_data(ctx, platform, secrets)
    start_app(ctx, platform)
    wait_healthy(ctx.spec, platform, timeout=180)


def reload_web(ctx: InstanceContext, platform: Platform, timeout: float = 180) -> None:
    """Apply a changed configuration to gunicorn without dropping a request.

    Chosen over a second web process on another port switched in Caddy: on HUP, gunicorn's
    master execs itself with the same pid and listening socket (setpoint_web_master.py), loads
    Superset with the new superset_config.py while the old workers keep serving, forks new
    workers, and each has the old ones finish their requests (graceful_timeout) and stop. No
    request waits for Superset to load, and no port, Caddy route or second set of workers has to
    be managed. Returns once only new workers remain and they answer."""
    name = f"{ctx.spec.name}-web"
    master = platform.supervisor.states(ctx.spec.name)[name].pid
    old_workers = set(web_workers(master))
    platform.supervisor.signal("HUP", name)

    def reloaded() -> bool:
        workers = set(web_workers(master))
        return not workers & old_workers and len(workers) >= ctx.sizing.web_workers

    failure = SetpointError(f"gunicorn of {ctx.spec.name} did not replace its workers within {timeout:.0f} s",
                            f"see: setpoint logs {ctx.spec.name} web")
    wait_until(reloaded, timeout, failure, interval=0.5)
    # Its own port, not through Caddy: the site may still point at the old one until it is published.
    with http_client(f"http://127.0.0.1:{ctx.ports.web}", timeout=10) as http:
        wait_until(lambda: _answers_ok(http), timeout, failure, interval=0.5)


def _answers_ok(http) -> bool:
    try:
        return http.get("/health").text.strip() == "OK"
    except Exception:  # noqa: BLE001 - not yet
        return False


def web_workers(master: int) -> list[int]:
    """The worker processes of gunicorn's master (and, during a reload, the workers it replaces)."""
    try:
        with open(f"/proc/{master}/task/{master}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


def wait_healthy(spec: InstanceSpec, platform: Platform, timeout: float) -> None:
    """Wait until /health answers OK through Caddy over HTTPS."""
    ca = platform.caddy.ca_root if spec.is_local_hostname else None
    deadline = time.monotonic() + timeout
    last = "no answer"
    with http_client(spec.url, ca_file=ca, timeout=10) as http:
        while time.monotonic() < deadline:
            try:
                response = http.get("/health")
                if response.status_code == 200 and response.text.strip() == "OK":
                    return
                last = f"HTTP {response.status_code}"
            except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                last = type(exc).__name__
            time.sleep(1)
    raise SetpointError(
        f"{spec.url}health did not answer OK within {timeout:.0f} s (last: {last})",
        f"see: setpoint logs {spec.name} web",
    )
