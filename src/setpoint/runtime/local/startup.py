"""Starting an existing instance's processes in dependency order, each step proven ready.

`up` runs these steps around its migrations; the host's boot command runs them alone.
"""

from __future__ import annotations

import time

from setpoint.errors import SetpointError
from setpoint.net import http_client
from setpoint.render import InstanceContext, instance_programs
from setpoint.runtime.local.platform import Platform
from setpoint.services.postgres import cluster_of
from setpoint.services.redis import RedisServer
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


def start_app(ctx: InstanceContext, platform: Platform) -> None:
    """Start gunicorn and Celery and wait until they run and the worker answers over the broker."""
    names = [p.name for p in instance_programs(ctx)]
    platform.supervisor.start(*names)
    platform.supervisor.wait_running(names, timeout=120)
    SupersetCommands(ctx).wait_worker()


def start_instance(ctx: InstanceContext, platform: Platform, secrets: dict[str, str]) -> None:
    """Bring every process of a converged instance up, in order, until it serves over HTTPS."""
    start_data(ctx, platform, secrets)
    start_app(ctx, platform)
    wait_healthy(ctx.spec, platform, timeout=180)


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
