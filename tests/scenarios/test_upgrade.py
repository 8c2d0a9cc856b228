"""Upgrades that cannot leave an instance broken, on an instance created on Superset 4.1.4 with
content (the sample dashboard, a user, a saved query, a dashboard of its own):
- a migration that fails in staging (a conflicting table in the metadata) stops the upgrade with
  the instance untouched;
- the upgrade to 5.0.0, then to 6.0.0, then to 6.1.0, keeps every object, with equal counts and
  content hashes (every supported version runs here: created on the oldest, upgraded through each);
- --rollback returns to 6.0.0 and the same content;
- the production migration killed (kill -9) rolls back by itself to identical content, on 6.0.0."""

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from setpoint.checklist import run_scorecard
from setpoint.net import http_client
from setpoint.operations import upgrade
from setpoint.runtime.local import converge, lifecycle
from setpoint.runtime.local.instance import load_context
from setpoint.services.postgres import cluster_of
from setpoint.services.superset import describe_migrations
from tests.conftest import make_spec, report_figure, run_cli

NAME, OLD, MIDDLE, NEW = "vold", "4.1.4", "6.0.0", "6.1.0"
# What an upgrade must keep: each table's rows, as a count and a hash of the columns people made.
CONTENT = {
    "dashboards": "dashboard_title || coalesce(slug, '') || coalesce(position_json, '')",
    "slices": "slice_name || viz_type || datasource_id",
    "tables": "table_name || coalesce(schema, '') || coalesce(sql, '')",
    "dbs": "database_name",
    "ab_user": "username || email || active",
    "saved_query": "label || sql",
}


def content(home) -> dict[str, str]:
    cluster = cluster_of(load_context(home, NAME))
    query = " UNION ALL ".join(f"SELECT '{table}', count(*) || ':' || coalesce(md5(string_agg({columns}, '|' ORDER BY id)), '') "
                               f"FROM {table}" for table, columns in CONTENT.items())
    return dict(line.split("|", 1) for line in cluster.sql(query, database="superset").splitlines())


def running_version(home) -> str:
    ctx = load_context(home, NAME)
    with http_client(ctx.spec.url, ca_file=home.caddy_dir / "data" / "pki" / "authorities" / "local" / "root.crt") as http:
        assert http.get("/health").text == "OK"
    return ctx.spec.superset_version


@pytest.fixture(scope="module")
def old_instance(home):
    spec = make_spec(NAME, superset_version=OLD, concurrent_users=10)
    converge.up(home, spec, log=lambda s: print(f"  {NAME}:", s))
    from setpoint.runtime.local.converge import admin_client
    from setpoint.runtime.local.platform import load_platform
    from setpoint.secret import SecretStore

    ctx = load_context(home, NAME)
    with admin_client(spec, load_platform(home), SecretStore(ctx.paths.secrets_file).load()) as api:
        api.post("/api/v1/dashboard/", json={"dashboard_title": f"Made on {OLD}", "slug": "made-on-old"})
        database = api.get("/api/v1/database/", params={"q": "(page_size:1)"}).json()["result"][0]["id"]
        api.post("/api/v1/saved_query/", json={"db_id": database, "label": "kept", "sql": "SELECT 42 AS answer"})
    from setpoint.services.superset import SupersetCommands

    SupersetCommands(ctx).ensure_user("analyst", "Analyst-password-1", ["Gamma"], "Ana", "Lyst", "analyst@example.com")
    yield spec
    if home.instance(NAME).exists():
        lifecycle.destroy(home, NAME)


def test_a_migration_failing_in_staging_leaves_the_instance_untouched(home, old_instance):
    before = content(home)
    cluster = cluster_of(load_context(home, NAME))
    # Superset 6.1 creates the table `tasks`: one already there makes its migration fail.
    cluster.sql("CREATE TABLE tasks (id integer)", database="superset")
    try:
        answer = run_cli("upgrade", NAME, "--to", NEW)
    finally:
        cluster.sql("DROP TABLE tasks", database="superset")
    assert answer.returncode == 1, answer.stdout + answer.stderr
    assert "staging copy" in answer.stderr and f"still runs {OLD}" in answer.stderr and "Traceback" not in answer.stderr
    assert running_version(home) == OLD and content(home) == before
    assert upgrade.staging_name(NAME) not in home.instance_names()  # the copy was removed


@pytest.mark.parametrize("version", ["5.0.0", MIDDLE, NEW])
def test_the_upgrade_keeps_every_object(home, old_instance, version):
    before, since = content(home), running_version(home)
    report = upgrade.upgrade(home, NAME, version)
    assert report.ok and report.migrations >= 1 and report.smoke["production"]["charts"] >= 1
    # Each migration timed, in staging and again in production: the revisions between the two versions.
    for where in ("staging", "production"):
        times = report.migration_times[where]
        assert len(times) == report.migrations and all(t["seconds"] >= 0 and t["revision"] for t in times), times
    assert report.migration_times["production"][-1]["revision"] == upgrade.revision(load_context(home, NAME))
    report_figure(f"upgrade {since} -> {version} ({report.migrations} migrations): staging {report.staging_s} s, "
                  f"downtime {report.downtime_s} s (maintenance page, migration, start); in production "
                  f"{describe_migrations(report.migration_times['production'])}")
    assert running_version(home) == version and content(home) == before
    ctx = load_context(home, NAME)
    assert (ctx.paths.root.parent.parent / "venvs").exists() and ctx.venv.name == f"superset-{version}"
    card = run_scorecard(lifecycle.managed_target(home, NAME), name=NAME)
    point = next(r for r in card.results if r.check.id == 25)
    if version == NEW:  # the newest supported release, reached through staging
        assert point.status.value == "PASS" and "through staging" in point.evidence, point.evidence
    else:
        assert point.status.value == "FAIL" and f"setpoint upgrade {NAME} --to {NEW}" in (point.remedy or ""), point
    versions = json.loads(run_cli("versions", NAME, "--format", "json").stdout)
    assert next(v for v in versions if v["version"] == version)["instances"] == [NAME]


def test_rollback_returns_to_the_previous_version(home, old_instance):
    before = content(home)
    started = time.monotonic()
    answer = run_cli("upgrade", NAME, "--rollback")
    assert answer.returncode == 0, answer.stderr
    report_figure(f"rollback {NEW} -> {MIDDLE} from the restore point: {time.monotonic() - started:.0f} s")
    assert running_version(home) == MIDDLE and content(home) == before


def kill_production_migration(home, stop: threading.Event, killed: list[int]) -> None:
    """As a crash would: kill -9 the `superset db upgrade` of the instance itself (not of its
    staging copy), the moment it starts."""
    production = str(home.instance(NAME).superset_home)
    while not stop.is_set():
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if b"upgrade" in argv and b"db" in argv and os.readlink(f"/proc/{pid}/cwd") == production:
                    os.kill(int(pid), signal.SIGKILL)
                    killed.append(int(pid))
                    return
            except OSError:
                continue
        time.sleep(0.02)


def test_a_migration_killed_in_production_rolls_back_by_itself(home, old_instance):
    before, revision = content(home), upgrade.revision(load_context(home, NAME))
    stop, killed = threading.Event(), []
    watcher = threading.Thread(target=kill_production_migration, args=(home, stop, killed), daemon=True)
    watcher.start()
    try:
        answer = run_cli("upgrade", NAME, "--to", NEW)
    finally:
        stop.set()
    assert killed, "the production migration was never seen"
    assert answer.returncode == 1 and "rolled back" in answer.stderr and "Traceback" not in answer.stderr, answer.stderr
    assert running_version(home) == MIDDLE and content(home) == before
    assert upgrade.revision(load_context(home, NAME)) == revision
    record = json.loads(Path(answer.stderr.split("see the log ")[1].split()[0]).read_text().split("\n\nerror:")[0])
    assert record["rollback_s"] and not record["ok"]
    report_figure(f"production migration killed: rolled back in {record['rollback_s']} s, "
                  f"{record['downtime_s']} s behind the maintenance page in all")
