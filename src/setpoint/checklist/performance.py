"""Probes of the checklist's performance points (9-13)."""

from __future__ import annotations

import math

from setpoint.checklist.evidence import Evidence
from setpoint.checklist.model import Finding, combine, failed, passed, unverified

FAST_CACHES = ("Redis", "Memcached")
MIN_POSTGRES = 140000
MIN_TIMEOUT_S = 300
USERS_PER_WORKER = 50


def probe_redis_cache(ev: Evidence) -> Finding:
    caches = ev.config_section("caches")
    if caches is None:
        return unverified("cache configuration unknown: give --config")
    slow = [n for n, c in caches.items() if n != "RESULTS_BACKEND" and not any(k in str(c["type"]) for k in FAST_CACHES)]
    if slow:
        listed = ", ".join(f"{n} ({caches[n]['type']})" for n in slow)
        return failed(f"not in Redis or Memcached: {listed}")
    unreachable = [n for n, c in caches.items() if c.get("reachable") is False]
    if unreachable:
        return failed(f"cache server unreachable for {', '.join(unreachable)}: {caches[unreachable[0]].get('error')}")
    return passed(f"{len(caches) - 1} caches in {caches['CACHE_CONFIG']['type']}, reachable; results backend {caches['RESULTS_BACKEND']['type']}")


def expected_users(ev: Evidence) -> int | None:
    managed = ev.target.managed
    return managed.spec.concurrent_users if managed else None


def probe_celery(ev: Evidence) -> Finding:
    celery = ev.config_section("celery")
    parts = []
    if celery is None:
        return unverified("Celery configuration unknown: give --config")
    if not celery.get("configured"):
        return failed("CELERY_CONFIG is None: no workers")
    processes = sum(celery["workers"].values())
    users = expected_users(ev)
    if not celery["workers"]:
        parts.append(failed(f"no Celery worker answers on the {celery['broker_scheme']} broker"))
    elif users is None:
        parts.append(passed(f"{len(celery['workers'])} worker(s), {processes} processes answer"))
    else:
        needed = max(1, math.ceil(users / USERS_PER_WORKER))
        verdict = passed if processes >= needed else failed
        parts.append(verdict(f"{processes} worker processes for {users} expected users ({needed} needed)"))
    managed = ev.target.managed
    if managed is not None:
        states = managed.platform.supervisor.states(managed.spec.name)
        beats = [s for n, s in states.items() if n.endswith("-beat") and s.is_running]
        verdict = passed if len(beats) == 1 else failed
        parts.append(verdict(f"{len(beats)} Celery beat running"))
        gunicorn = managed.context.spec.web_timeout_s
        parts.append((passed if gunicorn >= MIN_TIMEOUT_S else failed)(f"gunicorn timeout {gunicorn} s"))
    else:
        parts.append(unverified("how many Celery beats run is not visible from outside"))
    web = ev.config_section("webserver")
    if web is not None:
        verdict = passed if web["timeout"] >= MIN_TIMEOUT_S else failed
        parts.append(verdict(f"SUPERSET_WEBSERVER_TIMEOUT {web['timeout']} s"))
    return combine(parts)


def probe_metadata_postgres(ev: Evidence) -> Finding:
    meta = ev.metadata
    if meta is None:
        return unverified("the metadata database is unknown or unreachable: give --config or --metadata-uri")
    if meta["dialect"] != "postgresql":
        return failed(f"the metadata database is {meta['dialect']}, not PostgreSQL")
    version = meta["server_version_num"]
    shown = f"{version // 10000}.{version % 10000}"
    if version < MIN_POSTGRES:
        return failed(f"PostgreSQL {shown} (14 or newer needed)")
    return passed(f"PostgreSQL {shown}, reachable; {meta['dashboards']} dashboards, {meta['datasets']} datasets")


def probe_pool(ev: Evidence) -> Finding:
    meta = ev.facts.get("metadata_db") if ev.config else None
    if not isinstance(meta, dict) or "engine_options" not in meta:
        return unverified("SQLALCHEMY_ENGINE_OPTIONS unknown: give --config")
    options = meta["engine_options"]
    missing = [k for k in ("pool_size", "pool_recycle") if k not in options]
    if missing:
        return failed(f"SQLALCHEMY_ENGINE_OPTIONS lacks {', '.join(missing)}")
    return passed(f"pool_size {options['pool_size']}, pool_recycle {options['pool_recycle']} s")


def probe_async_queries(ev: Evidence) -> Finding:
    gaq = ev.config_section("async_queries")
    if gaq is None:
        page = ev.login_page
        hint = " (the site sets an async-token cookie)" if page is not None and "async-token" in page.headers.get("set-cookie", "") else ""
        return unverified(f"feature flags unknown: give --config{hint}")
    if not gaq["enabled"]:
        return failed("GLOBAL_ASYNC_QUERIES is off")
    parts = [passed("GLOBAL_ASYNC_QUERIES is on")]
    if gaq["jwt_secret_is_default"] or gaq["jwt_secret_length"] < 32 or gaq["jwt_secret_equals_secret_key"]:
        parts.append(failed("its JWT secret is the default, shorter than 32 characters, or the SECRET_KEY"))
    else:
        parts.append(passed(f"its own JWT secret of {gaq['jwt_secret_length']} characters"))
    celery = ev.config_section("celery") or {}
    parts.append(passed("a worker serves them") if celery.get("workers") else failed("no Celery worker to run them"))
    return combine(parts)
