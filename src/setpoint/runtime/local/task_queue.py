"""The instance's Celery work as `setpoint status` shows it: tasks queued and running, and how long
the oldest of each has waited. Read from the broker (Redis) in one atomic script."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from urllib.parse import unquote, urlsplit

from setpoint.render import REDIS_DB, InstanceContext
from setpoint.services.redis import RedisServer

QUEUES = ("celery",)  # Superset routes every task to Celery's default queue

# Kombu's Redis transport: a queue is a list (pushed left, popped right, so the oldest is at -1);
# a task taken by a worker and not yet acknowledged sits in the `unacked` hash, its delivery time
# in the `unacked_index` sorted set. Task safety stamps headers.setpoint_queued_at on publish.
STATS_SCRIPT = """
local now = redis.call('TIME')
local out = {now = tonumber(now[1]) + tonumber(now[2]) / 1e6, queues = {}}
for _, queue in ipairs(KEYS) do
  local entry = {name = queue, queued = redis.call('LLEN', queue)}
  local oldest = redis.call('LINDEX', queue, -1)
  if oldest then
    local ok, message = pcall(cjson.decode, oldest)
    if ok and type(message) == 'table' and type(message.headers) == 'table' then
      entry.oldest_queued_at = message.headers.setpoint_queued_at
    end
  end
  table.insert(out.queues, entry)
end
out.running = redis.call('HLEN', 'unacked')
local first = redis.call('ZRANGE', 'unacked_index', 0, 0, 'WITHSCORES')
if first[2] then out.oldest_running_since = tonumber(first[2]) end
return cjson.encode(out)
"""


@dataclass(frozen=True)
class QueueStatus:
    queue: str
    queued: int
    oldest_queued_s: float | None


@dataclass(frozen=True)
class TaskStatus:
    """Tasks waiting in each queue and running in the worker, with the oldest one's age."""

    queues: list[QueueStatus]
    running: int
    oldest_running_s: float | None
    time_limit_s: int

    @property
    def overdue(self) -> bool:
        """Whether a task has run past the instance's time limit and its hard kill."""
        return self.oldest_running_s is not None and self.oldest_running_s > self.time_limit_s + 60

    def to_dict(self) -> dict:
        return {**asdict(self), "overdue": self.overdue}


def broker_of(ctx: InstanceContext, secrets: dict[str, str]) -> RedisServer:
    if ctx.managed_redis:
        return RedisServer(ctx.ports.redis, secrets["redis_password"])
    url = urlsplit(ctx.spec.cache.url or "")
    return RedisServer(url.port or 6379, unquote(url.password or ""), host=url.hostname or "127.0.0.1")


def parse_stats(raw: str, time_limit_s: int) -> TaskStatus | None:
    """The script's JSON answer as a TaskStatus; None when the broker did not answer."""
    try:
        stats = json.loads(raw)
    except ValueError:
        return None
    now = stats["now"]
    # cjson encodes an empty Lua table as {}: no queue, no list.
    queues = [
        QueueStatus(q["name"], q["queued"], round(now - q["oldest_queued_at"], 1) if q.get("oldest_queued_at") else None)
        for q in (stats["queues"] or [])
    ]
    since = stats.get("oldest_running_since")
    return TaskStatus(queues, stats["running"], round(now - since, 1) if since else None, time_limit_s)


def task_status(ctx: InstanceContext, secrets: dict[str, str]) -> TaskStatus | None:
    """The instance's queues and running tasks; None when its broker does not answer."""
    raw = broker_of(ctx, secrets).command("-n", str(REDIS_DB["broker"]), "EVAL", STATS_SCRIPT, str(len(QUEUES)), *QUEUES)
    return parse_stats(raw, ctx.spec.tasks.query_time_limit_s)
