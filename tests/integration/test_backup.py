"""Backups proven by restores, on a real instance: pgBackRest, PITR, drills, dashboards as code."""

import json
import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pytest

from setpoint.backup import export
from setpoint.backup.pgbackrest import PgBackRest
from setpoint.backup.restore import restore_as_new, restore_in_place
from setpoint.backup.service import read_record
from setpoint.checklist import run_scorecard
from setpoint.errors import InputError
from setpoint.net import http_client
from setpoint.runtime.local import lifecycle
from setpoint.runtime.local.instance import load_context
from setpoint.services.postgres import cluster_of
from setpoint.services.supervisor import Supervisor
from setpoint.superset_api import SupersetClient
from tests.conftest import run_cli


def point(home, number):
    card = run_scorecard(lifecycle.managed_target(home, "alpha"), name="alpha")
    return next(r for r in card.results if r.check.id == number)


def test_first_converge_backs_up_drills_exports_and_plans(home, instance):
    ctx = load_context(home, "alpha")
    assert [b.type for b in PgBackRest(ctx).backups()][:1] == ["full"]
    record = read_record(ctx.paths)
    assert record["last_drill"]["ok"] and record["last_drill"]["restored"] == record["last_drill"]["live"]
    assert record["last_export"]["dashboards"] == 1
    plan = (ctx.paths.root / "docs" / "disaster-recovery.md").read_text()
    assert str(ctx.paths.secrets_file) in plan and "setpoint restore alpha" in plan and "4 h" in plan
    assert "No off-site copy yet" in plan


def test_backups_lists_the_recovery_window(home, instance):
    # The window reaches past the first backup once a later WAL segment is archived: on a fresh
    # instance whose only backup just ended, both ends are the same second.
    time.sleep(1.5)
    cluster_of(load_context(home, "alpha")).sql("SELECT pg_logical_emit_message(false, 'setpoint-test', 'mark'); "
                                                "SELECT pg_switch_wal();")
    deadline = time.monotonic() + 60
    while True:
        result = run_cli("backups", "alpha", "--format", "json", home=home)
        assert result.returncode == 0, result.stderr
        payload = json.loads(result.stdout)
        window = payload["recovery_window"]
        if window["earliest"] < window["latest"] or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert window["earliest"] < window["latest"], window
    assert payload["backups"][0]["type"] == "full" and payload["backups"][0]["repo"] == 1
    room = payload["local_repository"]
    assert room["free_bytes"] > 0 and room["full_backups_that_fit"] >= 2


def test_point_in_time_restore_into_a_new_instance(home, instance, admin):
    admin.post("/api/v1/dashboard/", json={"dashboard_title": "Before T"})
    time.sleep(2)
    moment = datetime.now(timezone.utc)
    time.sleep(2)
    admin.post("/api/v1/dashboard/", json={"dashboard_title": "After T"})
    report = restore_as_new(home, "alpha", moment.isoformat(), "alpha-pitr")
    try:
        creds = lifecycle.credentials(home, "alpha-pitr")
        with http_client(report.url, ca_file=report.ca_root) as client:
            api = SupersetClient(client)
            assert api.login(creds["username"], creds["password"]).status_code == 200
            titles = {d["dashboard_title"] for d in api.get("/api/v1/dashboard/").json()["result"]}
            rules = {r["name"] for r in api.get("/api/v1/rowlevelsecurity/?q=(page_size:100)").json()["result"]}
        assert "Before T" in titles and "After T" not in titles
        assert "Sales Overview" in titles
        # The copy's sample data keeps its row-level security: a copy without its rules would show
        # every region to sales_europe.
        assert {"setpoint: sales for sales_europe", "setpoint: sales for every other role"} <= rules, rules
        # The original is untouched.
        assert admin.find("dashboard", "dashboard_title", "After T")
    finally:
        lifecycle.destroy(home, "alpha-pitr")


def test_in_place_restore_rewinds_after_a_safety_backup(home, instance, admin, ca_root, secrets):
    admin.post("/api/v1/dashboard/", json={"dashboard_title": "In place: kept"})
    time.sleep(2)
    moment = datetime.now(timezone.utc)
    time.sleep(2)
    admin.post("/api/v1/dashboard/", json={"dashboard_title": "In place: undone"})
    ctx = load_context(home, "alpha")
    before = len(PgBackRest(ctx).backups())
    restore_in_place(home, "alpha", moment.isoformat())
    assert len(PgBackRest(ctx).backups()) == before + 2  # the safety backup, and one on the new timeline
    with http_client(instance[0].url, ca_file=ca_root) as client:
        api = SupersetClient(client)
        assert api.login("admin", secrets["admin_password"]).status_code == 200
        titles = {d["dashboard_title"] for d in api.get("/api/v1/dashboard/", params={"q": "(page_size:100)"}).json()["result"]}
    assert "In place: kept" in titles and "In place: undone" not in titles
    assert lifecycle.instance_status(home, "alpha").health == "ok"


def test_restore_outside_the_window_or_onto_a_taken_name_is_refused(home, instance):
    with pytest.raises(InputError, match="outside the recovery window"):
        restore_as_new(home, "alpha", "2001-01-01T00:00:00Z", "alpha-old")
    assert not home.instance("alpha-old").root.exists()
    with pytest.raises(InputError, match="already exists"):
        restore_as_new(home, "alpha", "latest", "alpha")
    bad = run_cli("restore", "alpha", "--to", "yesterday", "--as", "alpha-x", home=home)
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr and "Traceback" not in bad.stderr


def test_drill_records_the_measured_rto(home, instance):
    result = run_cli("backup", "verify", "alpha", home=home)
    assert result.returncode == 0, result.stderr
    drill = read_record(home.instance("alpha")).get("last_drill")
    assert drill["ok"] and drill["seconds"] > 0
    assert f"{drill['seconds']} s" in (home.instance("alpha").root / "docs" / "disaster-recovery.md").read_text()


def test_drill_opens_the_restore_with_superset_and_catches_a_key_that_does_not_fit(home, instance):
    paths = home.instance("alpha")
    drill = read_record(paths)["last_drill"]
    assert drill["superset"]["revision_is_head"] and drill["superset"]["passwords_decrypted"] == 1
    # A SECRET_KEY rotated without `superset re-encrypt-secrets`: the running processes keep the
    # old key in memory, the restored metadata would be useless, and the drill says so.
    # (The key Superset reads: superset-secrets.json, written by `up` from the secret store.)
    original = paths.superset_secrets_file.read_text()
    rotated = json.loads(original) | {"secret_key": "rotated-" + "k" * 40}
    paths.superset_secrets_file.write_text(json.dumps(rotated))
    try:
        failed = run_cli("backup", "verify", "alpha", home=home)
    finally:
        paths.superset_secrets_file.write_text(original)
    assert failed.returncode == 1 and "do not decrypt with the instance's SECRET_KEY" in failed.stderr
    assert point(home, 14).status.value == "FAIL"
    assert run_cli("backup", "verify", "alpha", home=home).returncode == 0
    assert point(home, 14).status.value == "PASS"


def test_failed_backup_fails_loudly_and_recovers(home, instance):
    repo = home.instance("alpha").backup / "repo"
    repo.chmod(0o000)
    try:
        failed = run_cli("backup", "alpha", home=home)
        assert failed.returncode == 1 and "error:" in failed.stderr and "Traceback" not in failed.stderr
        assert not read_record(home.instance("alpha"))["last_backup"]["ok"]
        assert point(home, 14).status.value == "FAIL"
    finally:
        repo.chmod(0o750)
    assert run_cli("backup", "alpha", "--type", "diff", home=home).returncode == 0
    assert point(home, 14).status.value == "PASS"


@contextmanager
def repository_on_a_small_disk(home, name):
    """Move the instance's local repository onto a tmpfs of its own, the size of what it holds
    plus a little. PostgreSQL is stopped while files move, so no WAL is archived mid-copy."""
    ctx = load_context(home, name)
    repo, supervisor = ctx.paths.backup / "repo", Supervisor(home)
    stash = Path(tempfile.mkdtemp(prefix="repo-", dir="/tmp"))

    def move(source: Path, target: Path) -> None:
        subprocess.run(["cp", "-a", f"{source}/.", str(target)], check=True)

    supervisor.stop(f"{name}-postgres")
    move(repo, stash)
    used = sum(f.stat().st_size for f in stash.rglob("*") if f.is_file())
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={used + 32 * 2**20},mode=0750", "tmpfs", str(repo)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        move(stash, repo)
        supervisor.start(f"{name}-postgres")
        pytest.fail(f"a full disk is simulated with a tmpfs, which needs root with CAP_SYS_ADMIN: {mounted.stderr.strip()}")
    try:
        move(stash, repo)
        shutil.chown(repo, ctx.data_user, ctx.data_user)
        supervisor.start(f"{name}-postgres")
        cluster_of(ctx).wait_ready()
        yield repo
    finally:
        supervisor.stop(f"{name}-postgres")
        shutil.rmtree(stash)
        stash.mkdir()
        move(repo, stash)
        subprocess.run(["umount", str(repo)], check=True)
        shutil.rmtree(repo)
        repo.mkdir()
        move(stash, repo)
        shutil.chown(repo, ctx.data_user, ctx.data_user)
        repo.chmod(0o750)
        shutil.rmtree(stash)
        supervisor.start(f"{name}-postgres")
        cluster_of(ctx).wait_ready()


def test_full_repository_fails_the_backup_with_the_fix_and_keeps_the_instance(home, instance, admin):
    with repository_on_a_small_disk(home, "alpha") as repo:
        filler = repo / "filler"
        free = os.statvfs(repo).f_bavail * os.statvfs(repo).f_frsize
        with open(filler, "wb") as handle:
            handle.write(b"\0" * (free - 64 * 1024))
        failed = run_cli("backup", "alpha", "--type", "full", home=home)
        assert failed.returncode == 1 and "Traceback" not in failed.stderr
        assert "is full" in failed.stderr and str(repo) in failed.stderr and "df -h" in failed.stderr
        assert not read_record(home.instance("alpha"))["last_backup"]["ok"]
        found = point(home, 14)
        assert found.status.value == "FAIL" and "room for 0 more full backup" in found.evidence, found.evidence
        # The instance serves on, its data intact.
        assert lifecycle.instance_status(home, "alpha").health == "ok"
        assert admin.find("dashboard", "dashboard_title", "Sales Overview")
        filler.unlink()
        passed = run_cli("backup", "alpha", "--type", "diff", home=home)
        assert passed.returncode == 0, passed.stderr
    assert point(home, 14).status.value == "PASS"


def test_dashboards_round_trip_through_git(home, instance, admin, secrets, tmp_path):
    repo = tmp_path / "dashboards"
    first = run_cli("export", "alpha", "--git", str(repo), home=home)
    assert first.returncode == 0 and "Export" in first.stdout
    again = run_cli("export", "alpha", "--git", str(repo), home=home)
    assert "no change" in again.stdout
    exported = "\n".join(p.read_text() for p in repo.rglob("*.yaml"))
    for key, value in secrets.items():
        assert value not in exported, f"{key} leaked into the export"
    sample = repo / "dashboards" / "Sales_Overview.yaml"
    before = sample.read_text()
    dashboard = admin.find("dashboard", "dashboard_title", "Sales Overview")[0]
    admin.delete(f"/api/v1/dashboard/{dashboard['id']}")
    assert not admin.find("dashboard", "dashboard_title", "Sales Overview")
    loaded = run_cli("import", "alpha", "--git", str(repo), home=home)
    assert loaded.returncode == 0, loaded.stderr
    back = admin.find("dashboard", "dashboard_title", "Sales Overview")
    assert len(back) == 1
    charts = admin.get(f"/api/v1/dashboard/{back[0]['id']}/charts").json()["result"]
    assert len(charts) == 6
    ctx = load_context(home, "alpha")
    from setpoint.runtime.local.converge import admin_client
    from setpoint.runtime.local.platform import load_platform

    with admin_client(ctx.spec, load_platform(home), secrets) as api:
        export.export_dashboards(api, str(repo), tmp_path / "clones")
    assert sample.read_text() == before  # lossless: the re-export is identical
