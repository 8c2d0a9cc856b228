"""Day-2 operations on the shared instance: every command of its incident runbook runs and
succeeds, the runbook's copies outside the instance are current, and an emergency admin works
until its time is over, then is shut out by the host's scheduler, old token included."""

import json
import shlex
import subprocess
import time
from datetime import datetime, timedelta

import pytest

from setpoint import examples
from setpoint.backup import escrow, repositories
from setpoint.backup.drill import run_drill
from setpoint.backup.service import read_record
from setpoint.checklist import run_scorecard
from setpoint.net import http_client
from setpoint.observability import logstore
from setpoint.operations import documents, rotation, runbook
from setpoint.readiness import wait_until
from setpoint.runtime.local import lifecycle
from setpoint.runtime.local.instance import load_context
from setpoint.secret import SecretStore
from setpoint.superset_api import SupersetClient
from tests.conftest import report_figure, run_cli
from tests.integration.test_logins import form_login

SHORT_TTL = "30s"


@pytest.fixture(scope="module")
def emergency(home, instance):
    """An emergency admin with a short life, granted first so that its expiry passes while the
    runbook's commands run: (username, password, its API token while it lived)."""
    granted = run_cli("emergency-access", "alpha", "--ttl", SHORT_TTL, "--reason", "test: IdP down", "--format", "json")
    assert granted.returncode == 0, granted.stderr
    answer = json.loads(granted.stdout)
    with http_client(instance[0].url, ca_file=instance[1].ca_root) as http:
        login = SupersetClient(http).login(answer["username"], answer["password"])
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        me = http.get("/api/v1/me/roles/", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200 and "Admin" in me.text
    return answer["username"], answer["password"], token


def point(card, number: int):
    return next(r for r in card.results if r.check.id == number)


def revoked_at(home, username: str) -> str | None:
    grants = read_record(home.instance("alpha")).get("emergency_access", [])
    return next((g.get("revoked_at") for g in grants if g["username"] == username), None)


def test_every_runbook_command_succeeds(home, instance, emergency):
    text = runbook.render_runbook(load_context(home, "alpha"))
    commands = runbook.commands(text)
    assert len(commands) >= 20, commands
    for needed in ("restart alpha", "clear-cache alpha", "emergency-access alpha --ttl", "restore alpha --to latest"):
        assert any(needed in c for c in commands), needed
    timings = []
    for command in commands:
        words = shlex.split(command)
        assert words[0] == "setpoint", command
        if "--revoke" in words:  # it would end the short-lived admin too: its expiry is tested below
            wait_until(lambda: revoked_at(home, emergency[0]), 150, AssertionError("the scheduler did not revoke it"), 2)
        started = time.monotonic()
        result = run_cli(*words[1:])
        assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        timings.append((time.monotonic() - started, command))
    assert lifecycle.instance_status(home, "alpha").health == "ok"
    assert "alpha-runbook" not in home.instance_names()  # the restored copy was removed by its own step
    report_figure(f"runbook of alpha: {len(commands)} commands ran in {sum(t for t, _ in timings):.0f} s; "
                  f"slowest: " + ", ".join(f"{c.split(' ', 1)[1]} {t:.0f} s" for t, c in sorted(timings)[-3:]))


def test_the_runbook_outside_the_instance_is_current(home, instance):
    ctx = load_context(home, "alpha")
    copies = documents.copies(ctx, runbook.FILE)
    assert len(copies) == 2, copies  # the backup repository and the dashboards' git repository
    for place, text in copies.items():
        assert text is not None, place
        assert runbook.gaps(ctx, text) == [], place
    # The git repository holds it committed, not only written.
    repo = home.instance("alpha").root / "export"
    log = subprocess.run(["git", "-C", repo, "log", "--format=%s", "--", "docs/runbook.md"],
                         capture_output=True, text=True, check=True).stdout
    assert "runbook" in log
    # Point 24 passes on them, and fails as soon as one is missing.
    card = run_scorecard(lifecycle.managed_target(home, "alpha"), name="alpha")
    assert point(card, 24).status.value == "PASS", point(card, 24).evidence
    copy = home.instance("alpha").backup / "repo" / "docs" / "alpha" / "runbook.md"
    saved = copy.read_bytes()
    copy.unlink()
    try:
        card = run_scorecard(lifecycle.managed_target(home, "alpha"), name="alpha")
        assert point(card, 24).status.value == "FAIL" and str(copy) in point(card, 24).evidence
    finally:
        copy.write_bytes(saved)


def test_an_emergency_admin_is_shut_out_at_expiry(home, instance, emergency):
    username, password, token = emergency
    paths = home.instance("alpha")
    wait_until(lambda: revoked_at(home, username), 150, AssertionError("the scheduler did not revoke it"), 2)
    grant = next(g for g in read_record(paths)["emergency_access"] if g["username"] == username)
    late = (datetime.fromisoformat(grant["revoked_at"]) - datetime.fromisoformat(grant["expires_at"])).total_seconds()
    report_figure(f"emergency admin with a {SHORT_TTL} life: revoked {late:.0f} s after its expiry")
    assert 0 <= late <= 75
    with http_client(instance[0].url, ca_file=instance[1].ca_root) as http:
        # As whoever kept the password or the token: both are refused now (the token also by the
        # runbook's rotation of the SECRET_KEY; the password by the deactivation alone).
        assert SupersetClient(http).login(username, password).status_code == 401
        assert http.get("/api/v1/me/roles/", headers={"Authorization": f"Bearer {token}"}).status_code in (401, 422)
    def events() -> dict[str, dict]:
        return {e["event"]: e for e in logstore.audit_records(home, "alpha", user=username)}

    wait_until(lambda: "emergency_access_revoked" in events(), 30, AssertionError("no audit record of the revocation"))
    events = events()
    assert events["emergency_access_granted"]["reason"] == "test: IdP down"
    assert events["emergency_access_revoked"]["reason"] == "expired"
    # The password was shown once and is kept nowhere: not in the instance's files, not in the logs.
    found = subprocess.run(["grep", "-rlF", password, str(paths.root), str(home.logstore_dir)], capture_output=True, text=True)
    assert found.stdout == "", found.stdout


def test_up_deactivates_an_ended_emergency_admin_a_restore_brought_back(home, instance, emergency):
    """A restore brings back the users of its moment as they were: an emergency admin revoked since
    is active again in the rewound metadata (set so here in SQL, as the restore leaves it). `up`
    deactivates it again, with no current grant and beside one, which it leaves active."""
    from setpoint.runtime.local import converge
    from setpoint.runtime.local.instance import saved_spec
    from setpoint.services.postgres import cluster_of

    ended = emergency[0]
    wait_until(lambda: revoked_at(home, ended), 150, AssertionError("the scheduler did not revoke it"), 2)
    cluster = cluster_of(load_context(home, "alpha"))

    def active(username: str) -> str:
        return cluster.sql(f"SELECT active FROM ab_user WHERE username = '{username}'", database="superset")

    def restored_then_up() -> list[str]:
        cluster.sql(f"UPDATE ab_user SET active = true WHERE username = '{ended}'", database="superset")
        # With the spec alpha has now: another module may have changed it (single sign-on) meanwhile.
        report = converge.up(home, saved_spec(home.instance("alpha")))
        assert active(ended) == "f"
        return [action for action in report.actions if ended in action]

    assert restored_then_up(), "up said nothing of the admin it deactivated"
    granted = run_cli("emergency-access", "alpha", "--ttl", "1h", "--reason", "test: a current grant", "--format", "json")
    assert granted.returncode == 0, granted.stderr
    current = json.loads(granted.stdout)["username"]
    try:
        said = restored_then_up()
        assert said and current not in said[0] and active(current) == "t"
    finally:
        assert run_cli("emergency-access", "alpha", "--revoke").returncode == 0
    assert active(current) == "f"


def test_a_rotated_secret_key_keeps_stored_passwords_and_ends_every_session(home, instance, admin, secrets):
    """After `setpoint rotate-secret`: a browser session and an API token from before are refused,
    the sample database's stored password still opens it, the backups' escrow holds the new key
    (a DR rebuild gets it) and a restore drill of the backup taken after it passes."""
    paths = home.instance("alpha")
    before = SecretStore(paths.secrets_file).load()
    with http_client(instance[0].url, ca_file=instance[1].ca_root) as browser:
        assert form_login(browser, "admin", secrets["admin_password"]).status_code == 302
        assert browser.get("/api/v1/me/").status_code == 200
        api = SupersetClient(browser)
        token = api.login("admin", secrets["admin_password"]).json()["access_token"]
        started = time.monotonic()
        rotated = run_cli("rotate-secret", "alpha", "--format", "json")
        assert rotated.returncode == 0, rotated.stderr
        answer = json.loads(rotated.stdout)
        assert answer["values_re_encrypted"] >= 1  # the sample database's password at least
        report_figure(f"rotate-secret: {time.monotonic() - started:.0f} s, {answer['values_re_encrypted']} stored "
                      f"secret(s) re-encrypted, {answer['sessions_ended']} session(s) ended")
        after = SecretStore(paths.secrets_file).load()
        assert after["secret_key"] != before["secret_key"] and after["previous_secret_key"] == before["secret_key"]
        # Every retired key is kept, numbered by its rotation (the runbook's test rotated before).
        rotations = rotation.rotations_of(load_context(home, "alpha"))
        assert after[rotation.retired_key_name(len(rotations))] == before["secret_key"]
        assert rotation.key_at(load_context(home, "alpha"), rotations[-1] - timedelta(seconds=1)) == before["secret_key"]
        assert before["secret_key"] not in rotated.stdout + rotated.stderr
        assert browser.get("/api/v1/me/").status_code == 401  # the session cookie from before
        # Flask-JWT-Extended answers a token signed with another key 422.
        assert browser.get("/api/v1/me/", headers={"Authorization": f"Bearer {token}"}).status_code in (401, 422)
    sales = next(d["id"] for d in admin.get("/api/v1/dataset/?q=(page_size:100)").json()["result"] if d["table_name"] == "sales")
    answer = admin.chart_data({  # the admin client logs in again by itself; the worker runs it
        "datasource": {"id": sales, "type": "table"}, "force": True, "result_format": "json", "result_type": "full",
        "queries": [{"columns": [], "metrics": [{"expressionType": "SQL", "sqlExpression": "count(*)", "label": "n"}]}]})
    assert answer[0]["data"] == [{"n": examples.ROWS}]
    [bundle] = [data for data in repositories.read_all(escrow.bundle_path("alpha"), paths.backup / "repo", None, after).values()
                if data is not None]
    assert escrow.unseal(bundle, after["recovery_key"])["secrets"]["secret_key"] == after["secret_key"]
    assert run_drill(load_context(home, "alpha"))["ok"]


def test_emergency_access_refuses_bad_requests(instance):
    too_long = run_cli("emergency-access", "alpha", "--ttl", "3d", "--reason", "x")
    assert too_long.returncode != 0 and "runbook.emergency_access_max_h" in too_long.stderr
    no_reason = run_cli("emergency-access", "alpha", "--ttl", "1h")
    assert no_reason.returncode != 0 and "--reason" in no_reason.stderr
    assert "Traceback" not in too_long.stderr + no_reason.stderr
