"""Upgrades of an instance's Superset version that cannot leave it broken (point 25).

1. Preflight: the version is supported and newer, the disk has room for its virtualenv and a
   restore; the new version's virtualenv is installed while the instance still serves; a full
   backup taken now is the restore point.
2. Staging: a copy restored from that backup beside the instance runs the new version: its
   metadata is migrated, then smoke-tested (login, every dashboard's charts return data, a saved
   query runs, the API answers). The copy is removed; a failure there ends the upgrade with the
   instance untouched.
3. Production: Caddy serves a maintenance page, Superset's processes stop, the metadata is
   migrated, the processes start on the new version, and the same smoke test runs.
4. Any failure in 3 rolls back: the metadata is restored to the restore point, the instance
   converges on its previous version and configuration, and serves again.

`rollback` returns to the version before the last upgrade from its restore point (while it is
in the recovery window), which loses what changed since the upgrade.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path

from setpoint.backup.service import backup_report, now, read_record, take_backup, update_record
from setpoint.errors import InputError, SetpointError
from setpoint.home import Home, caddy_user, write_file
from setpoint.render import InstanceContext, instance_programs, render_site
from setpoint.runtime.local.platform import load_platform
from setpoint.services.postgres import cluster_of
from setpoint.services.superset import describe_migrations, last_migration_times
from setpoint.spec import InstanceSpec, supported_superset_versions, version_key

VENV_ROOM = 2 * 1024**3  # a Superset virtualenv is about 1.3 GiB


@dataclass
class UpgradeReport:
    """What an upgrade did, with its figures (also recorded as the instance's last_upgrade)."""

    name: str
    from_version: str
    to_version: str
    restore_point: dict
    started_at: str
    revisions: dict[str, str] = field(default_factory=dict)  # the metadata's alembic revision before and after
    migrations: int = 0
    # Each migration applied, with its time: {"staging": [...], "production": [...]}.
    migration_times: dict[str, list[dict]] = field(default_factory=dict)
    staging_s: float | None = None
    downtime_s: float | None = None
    rollback_s: float | None = None
    smoke: dict = field(default_factory=dict)
    ok: bool = False
    error: str | None = None
    log: str = ""


def staging_name(name: str) -> str:
    return f"{name[:23].rstrip('-')}-staging"


def revision(ctx: InstanceContext) -> str:
    return cluster_of(ctx).sql("SELECT version_num FROM alembic_version", database="superset")


def preflight(home: Home, ctx: InstanceContext, to: str) -> None:
    current = ctx.spec.superset_version
    supported = supported_superset_versions()
    if to not in supported:
        raise InputError(f"Superset {to} is not a version Setpoint supports", f"choose one of: {', '.join(supported)}")
    if version_key(to) <= version_key(current):
        raise InputError(f"{ctx.spec.name} runs Superset {current}: {to} is not newer",
                         f"to return to the version before the last upgrade: setpoint upgrade {ctx.spec.name} --rollback")
    if not ctx.managed_postgres:
        raise InputError(f"the metadata of {ctx.spec.name} is the spec's metadata_db.url, which Setpoint does not back up",
                         "upgrade it by hand after a backup of that database")
    needed = VENV_ROOM + 2 * _size(ctx.paths.pg_data)
    free = shutil.disk_usage(home.root).free
    if free < needed:
        raise SetpointError(f"the disk of {home.root} has {free / 1024**3:.1f} GiB free; an upgrade needs "
                            f"{needed / 1024**3:.1f} GiB (a virtualenv and a staging copy)",
                            "free some space (old backups, logs), then run the upgrade again")


def _size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def upgrade(home: Home, name: str, to: str, log=lambda m: None, step=lambda m: None) -> UpgradeReport:
    """Move instance `name` to Superset `to` through a staging copy, rolling back on failure."""
    from setpoint.runtime.local.instance import instance_lock

    with instance_lock(home, name, wait_s=300):  # no scheduled backup or drill in between
        return _upgrade(home, name, to, log, step)


def _upgrade(home: Home, name: str, to: str, log, step) -> UpgradeReport:
    from setpoint.runtime.local.instance import load_context
    from setpoint.services.superset import ensure_venv

    ctx = load_context(home, name)
    preflight(home, ctx, to)
    old_spec = ctx.spec
    new_spec = old_spec.model_copy(update={"superset_version": to})
    report = UpgradeReport(name, old_spec.superset_version, to, {}, now().isoformat(timespec="seconds"),
                           log=str(ctx.paths.logs / f"upgrade-{now():%Y%m%d-%H%M%S}.log"))
    step(f"installing Superset {to} (the instance keeps serving)")
    if ensure_venv(home, new_spec, on_progress=step):
        log(f"installed Superset {to}'s pinned packages")
    step("taking a full backup: the restore point")
    point = take_backup(ctx, "full")
    report.restore_point = {"label": point.label, "at": point.stopped.isoformat()}
    report.revisions["before"] = revision(ctx)
    log(f"took the restore point {point.label}")
    try:
        _rehearse(home, ctx, to, report, log, step)
        _apply(home, ctx, new_spec, report, log, step)
    except SetpointError as exc:
        report.error = exc.message
        _write_log(report, exc)
        _record(ctx, report)
        raise
    report.ok = True
    _write_log(report, None)
    _record(ctx, report)
    return report


def _rehearse(home: Home, ctx: InstanceContext, to: str, report: UpgradeReport, log, step) -> None:
    """The staging copy: restored from the restore point, migrated, smoke-tested, removed."""
    from setpoint.backup.restore import restore_as_new
    from setpoint.runtime.local import lifecycle
    from setpoint.runtime.local.instance import load_context

    staging = staging_name(ctx.spec.name)
    if home.instance(staging).exists():
        lifecycle.destroy(home, staging)  # left by an interrupted upgrade
    started = time.monotonic()
    try:
        step(f"staging: restoring a copy as {staging} and migrating it to Superset {to}")
        restore_as_new(home, ctx.spec.name, "latest", staging, step=step, superset_version=to, ephemeral=True)
        staged = load_context(home, staging)
        step("staging: smoke test")
        report.smoke["staging"] = smoke_test(home, staged)
        report.revisions["after"] = revision(staged)
        report.migrations = _migrations_between(staged, report.revisions["before"], report.revisions["after"])
        report.migration_times["staging"] = last_migration_times(staged)
    except SetpointError as exc:
        raise SetpointError(f"the staging copy of {ctx.spec.name} failed on Superset {to}: {exc.message}; "
                            f"{ctx.spec.name} was not touched and still runs {ctx.spec.superset_version}",
                            (exc.hint or "").replace("NAME", staging) or f"see the log {report.log}") from None
    finally:
        if home.instance(staging).exists():
            lifecycle.destroy(home, staging)
    report.staging_s = round(time.monotonic() - started, 1)
    log(f"staging passed in {report.staging_s} s: {describe_migrations(report.migration_times['staging'])}; "
        "the smoke test passed")


def _migrations_between(ctx: InstanceContext, before: str, after: str) -> int:
    """How many alembic revisions `after` has that `before` has not (from the new version's
    migration scripts; a merge revision has several parents)."""
    versions = sorted((ctx.venv / "lib").glob("python3*/site-packages/superset/migrations/versions"))
    if not versions or before == after:
        return 0
    parents: dict[str, list[str]] = {}
    for script in versions[0].glob("*.py"):
        text = script.read_text(errors="replace")
        revision = re.search(r'^revision\s*=\s*["\'](\w+)["\']', text, re.MULTILINE)
        down = re.search(r'^down_revision\s*=\s*(\([^)]*\)|["\']\w+["\'])', text, re.MULTILINE)
        if revision:
            parents[revision.group(1)] = re.findall(r'["\'](\w+)["\']', down.group(1)) if down else []

    def lineage(revision: str) -> set[str]:
        seen, todo = set(), [revision]
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(parents.get(current, []))
        return seen

    if before not in parents or after not in parents:
        return 0
    return len(lineage(after) - lineage(before))


def _apply(home: Home, ctx: InstanceContext, new_spec: InstanceSpec, report: UpgradeReport, log, step) -> None:
    """Production: behind the maintenance page, migrate and start on the new version; roll back on failure."""
    from setpoint.runtime.local import converge
    from setpoint.runtime.local.instance import load_context

    started = time.monotonic()
    maintenance(home, ctx, f"being upgraded to Superset {new_spec.superset_version}")
    step("production: stopping Superset's processes")
    _stop_app(home, ctx)
    try:
        step(f"production: migrating to Superset {new_spec.superset_version}")
        converge.up(home, new_spec, step=step, version_change=True)
        report.downtime_s = round(time.monotonic() - started, 1)  # it serves again, on the new version
        report.migration_times["production"] = last_migration_times(ctx)
        step("production: smoke test")
        report.smoke["production"] = smoke_test(home, load_context(home, ctx.spec.name))
    except SetpointError as exc:
        log(f"the upgrade failed in production ({exc.message}); rolling back")
        rolled = time.monotonic()
        restore_point(home, ctx, report.restore_point, step)
        report.rollback_s = round(time.monotonic() - rolled, 1)
        report.downtime_s = round(time.monotonic() - started, 1)
        raise SetpointError(
            f"the upgrade of {ctx.spec.name} to Superset {new_spec.superset_version} failed in production "
            f"({exc.message}); it was rolled back in {report.rollback_s} s to Superset {ctx.spec.superset_version} "
            "and serves again", f"see the log {report.log}") from None
    log(f"upgraded {ctx.spec.name} to Superset {new_spec.superset_version}: {report.downtime_s} s behind the maintenance page; "
        f"{describe_migrations(report.migration_times['production'])}")


def restore_point(home: Home, ctx: InstanceContext, point: dict, step=lambda m: None) -> None:
    """Return the instance to `point` (a restore point's label and time) on the version and
    configuration of `ctx`: the metadata rewound, then a converge that starts it again."""
    from setpoint.backup.restore import rewind_metadata
    from setpoint.runtime.local import converge

    maintenance(home, ctx, "being restored to its state before an upgrade")
    step(f"rolling back: restoring the metadata to the restore point {point['label']}")
    rewind_metadata(home, ctx, datetime.fromisoformat(point["at"]))
    state = ctx.paths.read_state()
    state["migrated"] = ctx.spec.superset_version
    ctx.paths.write_state(state)
    step(f"rolling back: starting on Superset {ctx.spec.superset_version}")
    converge.up(home, ctx.spec, step=step, version_change=True)
    # The rewound cluster writes a new timeline: the newest backup must be on it.
    take_backup(ctx, "full")


def rollback(home: Home, name: str, log=lambda m: None, step=lambda m: None) -> dict:
    """Return to the version before the last upgrade, from its restore point (what changed since is lost)."""
    from setpoint.runtime.local.instance import instance_lock, load_context

    ctx = load_context(home, name)
    last = read_record(ctx.paths).get("last_upgrade")
    if not last or not last.get("ok"):
        raise InputError(f"{name} has no upgrade to roll back", f"see its versions with: setpoint versions {name}")
    point_at = datetime.fromisoformat(last["restore_point"]["at"])
    window = backup_report(ctx).window
    if not window.contains(point_at):
        raise InputError(f"the restore point of the last upgrade ({point_at:%Y-%m-%d %H:%M}) is outside the recovery window",
                         f"restore another time with: setpoint restore {name} --to TIME --as {name}-old")
    started = time.monotonic()
    old = ctx.spec.model_copy(update={"superset_version": last["from_version"]})
    with instance_lock(home, name, wait_s=300):
        restore_point(home, replace(ctx, spec=old), last["restore_point"], step)
    seconds = round(time.monotonic() - started, 1)
    update_record(ctx.paths, last_upgrade={**last, "rolled_back_at": now().isoformat(timespec="seconds"),
                                           "rollback_s": seconds})
    log(f"rolled {name} back to Superset {last['from_version']} (restore point {last['restore_point']['label']}) in {seconds} s")
    return {"name": name, "version": last["from_version"], "seconds": seconds}


def maintenance(home: Home, ctx: InstanceContext, doing: str) -> None:
    """Have Caddy answer the instance's URL with a 503 maintenance page (the next converge ends it)."""
    site = home.caddy_dir / "sites" / f"{ctx.spec.name}.caddy"
    if write_file(site, render_site(ctx, maintenance=doing), mode=0o600, owner=caddy_user()):
        load_platform(home).caddy.reload()


def _stop_app(home: Home, ctx: InstanceContext) -> None:
    """Stop web, worker and beat (the worker finishes its running tasks within its stop time)."""
    load_platform(home).supervisor.stop(*[f"{ctx.spec.name}-{p.component}" for p in instance_programs(ctx)
                                          if p.component in ("web", "worker", "beat")])


def smoke_test(home: Home, ctx: InstanceContext) -> dict:
    """What users do first, through the instance's URL: log in, open every dashboard (each chart
    returns data), run a saved query, call the API. A SetpointError names what failed."""
    from setpoint.runtime.local.converge import admin_client
    from setpoint.secret import SecretStore

    secrets = SecretStore(ctx.paths.secrets_file).load()
    found = {"dashboards": 0, "charts": 0, "saved_queries": 0}
    with admin_client(ctx.spec, load_platform(home), secrets) as api:
        api.get("/api/v1/security/csrf_token/")  # the login's token is accepted (not /me/: before 6.1 it ignores tokens)
        for dashboard in api.get("/api/v1/dashboard/", params={"q": "(page_size:100)"}).json()["result"]:
            found["dashboards"] += 1
            for chart in api.get(f"/api/v1/dashboard/{dashboard['id']}/charts").json()["result"]:
                query_context = api.get(f"/api/v1/chart/{chart['id']}").json()["result"].get("query_context")
                if query_context:
                    api.chart_data(query_context, timeout=120)
                    found["charts"] += 1
        saved = api.get("/api/v1/saved_query/", params={"q": "(page_size:1)"}).json()["result"]
        if saved:
            query = saved[0]
            answer = api.call("POST", "/api/v1/sqllab/execute/", json={
                "database_id": query["database"]["id"], "sql": query["sql"], "runAsync": False,
                "client_id": f"smk{int(time.time()) % 10**7}", "schema": query.get("schema")})
            if answer.status_code not in (200, 202):
                raise SetpointError(f"the saved query '{query['label']}' does not run ({answer.status_code}: {answer.text[:200]})",
                                    f"see: setpoint logs {ctx.spec.name} web")
            found["saved_queries"] += 1
    return found


def _write_log(report: UpgradeReport, exc: SetpointError | None) -> None:
    text = json.dumps(asdict(report), indent=2) + "\n"
    if exc is not None:
        text += f"\nerror: {exc.message}\nhint: {exc.hint}\n"
    write_file(Path(report.log), text, mode=0o600)


def _record(ctx: InstanceContext, report: UpgradeReport) -> None:
    update_record(ctx.paths, last_upgrade=asdict(report))
