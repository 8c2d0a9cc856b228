"""Sizing rules: how many processes and how much memory an instance gets for its users."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

USERS_PER_CELERY_WORKER = 50
USERS_PER_WEB_WORKER = 50
POOL_SIZE = 10
POOL_OVERFLOW = 10
POOL_RECYCLE_S = 3600


@dataclass(frozen=True)
class Sizing:
    """Derived process counts and memory settings for one instance."""

    web_workers: int
    celery_concurrency: int
    pg_max_connections: int
    pg_shared_buffers_mb: int
    pg_effective_cache_mb: int
    pool_size: int = POOL_SIZE
    pool_overflow: int = POOL_OVERFLOW
    pool_recycle_s: int = POOL_RECYCLE_S


def size_instance(concurrent_users: int, cores: int | None = None) -> Sizing:
    """Process counts from expected users and host cores.

    Celery: one pool process per 50 concurrent users, at least two, so that a cold dashboard's
    chart queries (queued together) do not all wait for one another. Gunicorn gevent workers:
    one per 50 users plus one, at least two (so one can restart while the other serves), at most
    2 x cores + 1 (gevent multiplexes requests inside a worker; more would only fight for CPU).
    """
    cores = cores or os.cpu_count() or 1
    celery = max(2, math.ceil(concurrent_users / USERS_PER_CELERY_WORKER))
    web = min(2 * cores + 1, max(2, math.ceil(concurrent_users / USERS_PER_WEB_WORKER) + 1))
    # Every web worker, Celery process, beat and one-off command may hold a full pool.
    processes = web + celery + 2
    max_connections = processes * (POOL_SIZE + POOL_OVERFLOW) + 20
    shared_buffers = min(2048, 128 * max(1, math.ceil(concurrent_users / 50)))
    return Sizing(
        web_workers=web,
        celery_concurrency=celery,
        pg_max_connections=max(100, max_connections),
        pg_shared_buffers_mb=shared_buffers,
        pg_effective_cache_mb=shared_buffers * 3,
    )


# Idle memory (PSS) of an instance's processes, measured on Superset 6.1.0 with the default spec
# after a chart load. gunicorn's master loads Superset and its workers share those pages (each
# copies some as it serves); so do the Celery worker's main process and its pool processes. Then
# beat, PostgreSQL besides its shared buffers, and Redis.
MIB_WEB_SHARED = 270
MIB_PER_WEB_WORKER = 70
MIB_CELERY_SHARED = 230
MIB_PER_CELERY_PROCESS = 35
MIB_BEAT = 45  # its own Celery app, without Superset (superset_side/beat.py)
MIB_POSTGRES = 25
MIB_REDIS = 20
# A report's or thumbnail's browser (Chromium's browser, renderer and GPU processes); an instance
# renders one at a time (superset_side/reports.py).
MIB_RENDER = 650


def estimated_memory_mib(sizing: Sizing) -> int:
    """What an idle instance of this size holds in memory, before its caches fill."""
    return (MIB_WEB_SHARED + MIB_PER_WEB_WORKER * sizing.web_workers
            + MIB_CELERY_SHARED + MIB_PER_CELERY_PROCESS * sizing.celery_concurrency + MIB_BEAT
            + MIB_POSTGRES + sizing.pg_shared_buffers_mb + MIB_REDIS)


@dataclass(frozen=True)
class Limits:
    """What an instance may use of the host, enforced with cgroups."""

    memory_mb: int
    cpus: float | None  # a hard cap, in cores; None: every core the others leave idle
    pids: int
    cpu_weight: int = 1024  # its share of the CPU when instances compete for it (cpu.shares)


USERS_PER_CPU = 100
CPU_WEIGHT_PER_CORE = 1024  # the kernel's default weight of a group


def resource_limits(concurrent_users: int, memory_mb: int | None = None, cpus: float | None = None,
                    pids: int | None = None, cores: int | None = None) -> Limits:
    """The spec's limits, or defaults from the instance's size: twice its idle memory (room for
    queries and caches), and at least room for a render beside it; its PostgreSQL connections
    plus a thousand processes and threads.

    CPU: no cap unless the spec sets `resources.cpus`. A cap leaves cores idle that the instance
    could use, and throttles its requests whenever it bursts (a dashboard's charts arrive
    together). When instances compete, each gets CPU time in proportion to its weight: one core's
    worth (1024) per 100 users, at least one, at most the host's cores. Two CPU hogs in one
    instance therefore take at most their share from the others."""
    cores = cores or os.cpu_count() or 1
    sizing = size_instance(concurrent_users, cores)
    idle = estimated_memory_mib(sizing)
    default_memory = math.ceil(max(2 * idle, idle + MIB_RENDER) / 256) * 256
    size_cores = min(cores, max(1, math.ceil(concurrent_users / USERS_PER_CPU)))
    return Limits(memory_mb or default_memory, cpus, pids or sizing.pg_max_connections + 1000,
                  CPU_WEIGHT_PER_CORE * size_cores)


def cpu_text(limits: Limits) -> str:
    """The CPU an instance may use, for people: 'at most 0.5 core(s)' or 'every idle core, weight 1024'."""
    return f"at most {limits.cpus:g} core(s)" if limits.cpus else f"every idle core, weight {limits.cpu_weight}"
