"""The central log store and the audit trail of a real instance, read as an operator and an auditor
do (`setpoint logs`, `setpoint audit`), and attacked as a user who wants a forged or a missing
record would."""

import json
import re
import stat
import subprocess
import textwrap
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from setpoint import examples, proc
from setpoint.home import Home, logstore_user
from setpoint.net import http_client, is_port_free
from setpoint.observability import logstore
from setpoint.readiness import wait_until
from setpoint.runtime.local import converge
from setpoint.runtime.local.instance import load_context
from setpoint.superset_api import SupersetClient
from tests.conftest import report_figure, run_cli
from tests.s3_server import free_port

DOWN_S = 120  # how long the remote log store is down


def audit_json(home: Home, *args: str) -> list[dict]:
    result = run_cli("audit", "alpha", "--since", "10m", "--format", "json", *args, home=home)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def wait_for_audit(home: Home, found, timeout: float = 15) -> list[dict]:
    """The audit trail once `found(records)` holds for it (the store reads the file as it grows)."""
    wait_until(lambda: found(audit_json(home)), timeout, AssertionError("record not in the audit trail"), interval=0.5)
    return audit_json(home)


def run_sql(admin: SupersetClient, sql: str):
    database = admin.find("database", "database_name", examples.DATABASE_NAME)[0]
    return admin.call("POST", "/api/v1/sqllab/execute/", json={"database_id": database["id"], "sql": sql, "runAsync": False})


def test_queries_logins_and_access_changes_reach_the_audit_trail(home, admin, instance, ca_root):
    role = f"auditors-{uuid.uuid4().hex[:8]}"
    assert run_sql(admin, "SELECT 1 AS audited").status_code == 200
    created = admin.call("POST", "/api/v1/security/roles/", json={"name": role})
    assert created.status_code == 201, created.text
    assert admin.call("DELETE", f"/api/v1/security/roles/{created.json()['id']}").status_code == 200
    stranger = f"stranger-{uuid.uuid4().hex[:8]}"
    with http_client(instance[0].url, ca_file=ca_root) as client:
        assert SupersetClient(client).login(stranger, "not-the-password").status_code == 401

    def complete(records):
        events = {(r.get("event"), r.get("user")) for r in records}
        return ({("login_failed", stranger), ("access_change", "admin")} <= events
                and any(r.get("event") == "execute_sql" and r.get("user") == "admin" for r in records))

    trail = wait_for_audit(home, complete)
    query = next(r for r in trail if r["event"] == "execute_sql" and r.get("user") == "admin")
    assert query["database_id"] and query["engine"] == "postgresql"
    changes = [r for r in trail if r["event"] == "access_change" and r["user"] == "admin"]
    assert {(r["method"], r["status"]) for r in changes} >= {("POST", 201), ("DELETE", 200)}
    assert next(r for r in trail if r.get("user") == stranger)["status"] == 401
    # `--user` keeps one person's records.
    assert {r.get("user") for r in audit_json(home, "--user", stranger)} == {stranger}


def test_the_audit_file_is_the_stores_appended_by_the_instances_account_and_stays_out_of_the_logs(home, instance):
    ctx = load_context(home, "alpha")
    audit_file = ctx.paths.audit_log
    assert (audit_file.owner(), audit_file.group()) == (logstore_user(), ctx.superset_user)
    assert stat.S_IMODE(audit_file.stat().st_mode) == 0o420
    assert (ctx.paths.audit_dir.owner(), stat.S_IMODE(ctx.paths.audit_dir.stat().st_mode)) == ("root", 0o750)
    # Records go to their own file, not into the components' logs (nor the store's records of them).
    for log in ctx.paths.logs.glob("*.log"):
        assert '"event":"execute_sql"' not in log.read_text(errors="replace"), log.name


def test_a_user_cannot_forge_an_audit_record(home, admin, instance, ca_root):
    forged = f"forged-{uuid.uuid4().hex[:8]}"
    fake = json.dumps({"time": "2026-01-01T00:00:00.000+00:00", "event": "login", "user": forged})
    # A username and a query that carry a whole record after a line break, as an attacker would
    # try to start a line of their own in a log or in the trail.
    with http_client(instance[0].url, ca_file=ca_root) as client:
        assert SupersetClient(client).login(f"x\n{fake}", "wrong").status_code == 401
    assert run_sql(admin, f"SELECT '\n{fake}\n' AS x FROM no_such_table_{forged[7:]}").status_code >= 400
    trail = wait_for_audit(home, lambda records: any(forged in str(r.get("user")) for r in records))
    assert not [r for r in trail if r.get("user") == forged]  # the text is inside a record, never one of its own
    assert [r for r in trail if r.get("event") == "login_failed" and forged in r.get("user", "")]


def test_logs_finds_one_request_across_components(home, admin, http):
    marker = f"setpoint-grep-{uuid.uuid4().hex[:8]}"
    assert http.get(f"/health?{marker}").status_code == 200
    run_sql(admin, f"SELECT * FROM {marker.replace('-', '_')}")  # PostgreSQL logs the failed statement

    def grep(*components: str) -> list[dict]:
        result = run_cli("logs", "alpha", *components, "--since", "10m", "--grep", marker.replace("-", "_")
                         if components == ("postgres",) else marker, "--format", "json", home=home)
        assert result.returncode == 0, result.stderr
        return [json.loads(line) for line in result.stdout.splitlines()]

    wait_until(lambda: grep("postgres") and grep("access"), 15, AssertionError("records not in the store"),
               interval=0.5)
    assert {r["component"] for r in grep("web", "access")} == {"web", "access"}
    errors = grep("postgres")
    assert any(r["level"] == "error" for r in errors), errors
    assert run_cli("logs", "alpha", "nonsense", home=home).returncode != 0


def test_a_clients_mistake_is_one_warning_not_a_traceback(home, http):
    web_log = load_context(home, "alpha").paths.logs / "web.log"
    tracebacks = web_log.read_text(errors="replace").count("Traceback")
    started = datetime.now(timezone.utc)
    assert http.post("/api/v1/dashboard/", json={}).status_code == 400  # no CSRF token, as a stray client sends it
    refused = "400 Bad Request: The CSRF token is missing"  # Superset's error handler's line
    wait_until(lambda: any(logstore.read(home, "alpha", ["web"], started, grep=refused)), 15,
               AssertionError("the refusal is not in the log store"), interval=0.5)
    refusal = next(logstore.read(home, "alpha", ["web"], started, grep=refused))
    assert refusal.level == "warning", refusal
    assert web_log.read_text(errors="replace").count("Traceback") == tracebacks


class SyslogReceiver:
    """A remote log store: a second rsyslog, on a loopback TCP port, that writes what it receives."""

    def __init__(self, directory: Path) -> None:
        self.directory, self.port = directory, free_port()
        self.received = directory / "received.log"
        (directory / "state").mkdir(parents=True, exist_ok=True)
        self.config = directory / "receiver.conf"
        self.config.write_text(textwrap.dedent(f"""\
            global(workDirectory="{directory}/state")
            module(load="imtcp")
            input(type="imtcp" address="127.0.0.1" port="{self.port}")
            template(name="message" type="string" string="%msg%\\n")
            action(type="omfile" file="{self.received}" template="message")
            """))
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([proc.find_binary("rsyslogd"), "-n", "-f", str(self.config), "-i",
                                         str(self.directory / "receiver.pid")])
        wait_until(lambda: not is_port_free(self.port, "127.0.0.1"), 10, AssertionError("receiver not listening"))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)

    def text(self) -> str:
        return self.received.read_text() if self.received.exists() else ""


def test_the_remote_store_down_for_two_minutes_loses_no_record(home, instance, http, tmp_path):
    receiver = SyslogReceiver(tmp_path)
    receiver.start()
    forwarding = instance[0].model_copy(update={"logs": instance[0].logs.model_copy(
        update={"remote": f"tcp://127.0.0.1:{receiver.port}"})})
    converge.up(home, forwarding)
    marker = f"setpoint-remote-{uuid.uuid4().hex[:8]}"
    sent: list[int] = []

    def send(seconds: float) -> None:  # a request every 0.5 s, each one record of Caddy's access log
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            sent.append(len(sent))
            assert http.get(f"/health?{marker}-{sent[-1]}-").status_code == 200
            time.sleep(0.5)

    def received() -> set[int]:
        return {int(n) for n in re.findall(rf"{marker}-(\d+)-", receiver.text())}

    try:
        send(5)
        wait_until(lambda: 0 in received(), 30, AssertionError("the remote store receives nothing"))
        receiver.stop()
        send(DOWN_S)  # the remote store is down; records keep coming, through the moment it stopped
        receiver.start()
        send(5)
        wait_until(lambda: received() >= set(sent), 120, AssertionError("records lost"), interval=1)
    finally:
        if receiver.process.poll() is None:
            receiver.stop()
        converge.up(home, instance[0])
    missing = set(sent) - received()
    assert not missing, sorted(missing)
    report_figure(f"remote log store down {DOWN_S} s: {len(sent)} requests logged across it, none lost")
