"""The lifecycle of real instances: converge, faults, restarts, bad input, a second instance."""

import json
import os
import signal
import socket
from pathlib import Path

import pytest

from setpoint.errors import InputError, SetpointError
from setpoint.runtime.local import converge, lifecycle
from setpoint.runtime.local.instance import instance_lock
from setpoint.services.supervisor import Supervisor
from tests.conftest import component_state, make_spec, run_cli, wait_until


def test_up_twice_changes_nothing(home, instance):
    spec, first = instance
    assert first.changed
    before = {c.component: c.pid for c in lifecycle.instance_status(home, "alpha").components}
    second = converge.up(home, spec)
    assert second.actions == []
    after = {c.component: c.pid for c in lifecycle.instance_status(home, "alpha").components}
    assert after == before  # nothing was restarted


def test_status_and_credentials_as_json(home, instance, secrets):
    status = run_cli("status", "alpha", "--format", "json", home=home)
    assert status.returncode == 0, status.stderr
    payload = json.loads(status.stdout)
    assert payload["health"] == "ok"
    assert {c["component"]: c["state"] for c in payload["components"]} == {
        "postgres": "RUNNING", "redis": "RUNNING", "web": "RUNNING", "worker": "RUNNING", "beat": "RUNNING"
    }
    assert payload["ca_certificate"].endswith("root.crt")
    creds = run_cli("credentials", "alpha", "--format", "json", home=home)
    assert json.loads(creds.stdout)["password"] == secrets["admin_password"]
    # Only `credentials` shows a secret.
    assert secrets["admin_password"] not in status.stdout + status.stderr


def test_cli_up_reports_url_credentials_and_scorecard(home, instance):
    result = run_cli("up", "alpha", "--spec", str(home.instance("alpha").spec_file), home=home)
    assert result.returncode == 0, result.stderr
    assert "nothing changed" in result.stderr
    assert instance[0].url in result.stdout
    assert "credentials alpha" in result.stdout
    assert "root.crt" in result.stdout
    assert "scorecard: 21/25 (solid production)" in result.stdout
    assert " 4. users log in through an OIDC or SAML provider" in result.stdout
    as_json = run_cli("up", "alpha", "--spec", str(home.instance("alpha").spec_file), "--format", "json", home=home)
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert (report["url"], report["changed"], report["actions"]) == (instance[0].url, False, [])
    assert report["credentials"].endswith("credentials alpha") and report["ca_root"].endswith("root.crt")
    assert report["scorecard"]["score"] == 21 and len(report["scorecard"]["checks"]) == 25


def test_logs_and_doctor(home, instance):
    logs = run_cli("logs", "alpha", "web", "-n", "5", home=home)
    assert logs.returncode == 0 and logs.stdout.strip()
    unknown = run_cli("logs", "alpha", "nginx", home=home)
    assert unknown.returncode == 2 and "choose one of" in unknown.stderr
    doctor = run_cli("doctor", home=home)
    assert doctor.returncode == 0 and "everything Setpoint needs is installed" in doctor.stdout


@pytest.mark.parametrize("component", ["web", "worker", "postgres", "redis"])
def test_killed_process_comes_back(home, instance, ca_root, component):
    old = component_state(home, "alpha", component)
    os.kill(old.pid, signal.SIGKILL)
    assert wait_until(
        lambda: (s := component_state(home, "alpha", component)).state == "RUNNING" and s.pid != old.pid
    ), f"{component} did not come back"
    assert wait_until(lambda: lifecycle.probe_health(instance[0].url, ca_root) == "ok")


def test_data_and_queries_survive_the_kills(admin):
    # The metadata (after PostgreSQL's crash recovery) and the worker both still serve a chart.
    chart = admin.find("chart", "slice_name", "Revenue by product line")[0]
    query_context = admin.get(f"/api/v1/chart/{chart['id']}").json()["result"]["query_context"]
    assert wait_until(lambda: admin.chart_data(query_context)[0]["rowcount"] == 6, timeout=60)


def test_changed_spec_converges_and_restarts_only_what_changed(home, instance):
    spec = instance[0]
    before = {c.component: c.pid for c in lifecycle.instance_status(home, "alpha").components}
    bigger = spec.model_copy(update={"concurrent_users": 120})
    report = converge.up(home, bigger)
    try:
        after = {c.component: c.pid for c in lifecycle.instance_status(home, "alpha").components}
        assert after["redis"] == before["redis"]  # its configuration did not change
        assert after["worker"] != before["worker"]
        # gunicorn keeps its master (and socket) and replaces its workers: no request is dropped.
        assert after["web"] == before["web"]
        assert any(a.startswith("reloaded alpha-web gracefully") for a in report.actions)
        assert "--concurrency=3" in (home.supervisor_dir / "conf.d" / "alpha.conf").read_text()
        assert "workers = 4" in (home.instance("alpha").config / "gunicorn.conf.py").read_text()
        assert any("wrote gunicorn.conf.py" in a for a in report.actions)
        assert lifecycle.instance_status(home, "alpha").health == "ok"
    finally:
        converge.up(home, spec)


def test_concurrent_converge_is_refused(home, instance):
    with instance_lock(home, "alpha"):
        with pytest.raises(SetpointError, match="already changing instance 'alpha'"):
            converge.up(home, instance[0], wait_lock_s=1)


def test_dashboard_survives_down_and_up(home, instance, admin, ca_root, secrets):
    created = admin.post("/api/v1/dashboard/", json={"dashboard_title": "Kept across restarts"}).json()
    lifecycle.down(home, "alpha")
    assert all(c.state == "STOPPED" for c in lifecycle.instance_status(home, "alpha").components)
    report = converge.up(home, instance[0])
    assert report.changed  # the processes were started again
    from setpoint.net import http_client
    from setpoint.superset_api import SupersetClient

    with http_client(instance[0].url, ca_file=ca_root) as client:
        api = SupersetClient(client)
        assert api.login("admin", secrets["admin_password"]).status_code == 200
        kept = api.get(f"/api/v1/dashboard/{created['id']}").json()["result"]
    assert kept["dashboard_title"] == "Kept across restarts"


def test_second_instance_runs_beside_the_first(home, instance):
    spec = make_spec("beta", examples=False, concurrent_users=10)
    report = converge.up(home, spec)
    try:
        assert lifecycle.probe_health(spec.url, Path(report.ca_root)) == "ok"
        assert lifecycle.instance_status(home, "alpha").health == "ok"
        alpha_ports = set(home.instance("alpha").read_state()["ports"].values())
        beta_ports = set(home.instance("beta").read_state()["ports"].values())
        assert not alpha_ports & beta_ports
        alpha_secrets = json.loads(home.instance("alpha").secrets_file.read_text())
        beta_secrets = json.loads(home.instance("beta").secrets_file.read_text())
        assert alpha_secrets["secret_key"] != beta_secrets["secret_key"]
    finally:
        lifecycle.destroy(home, "beta")
    assert not home.instance("beta").root.exists()
    assert "beta-web" not in Supervisor(home).states()


def test_invalid_spec_is_one_clear_error(home, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("concurrent_users: lots\ncache:\n  maxmemory_mb: 8\n")
    result = run_cli("up", "gamma", "--spec", str(bad), home=home)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "concurrent_users" in result.stderr and "cache.maxmemory_mb" in result.stderr
    assert not home.instance("gamma").exists()


def test_port_in_use_is_refused_and_instance_kept(home, instance):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        with pytest.raises(InputError, match=f"port {port} for web is already in use"):
            converge.up(home, make_spec("gamma", examples=False, web_port=port))
    assert lifecycle.instance_status(home, "alpha").health == "ok"


def test_hostname_taken_is_refused(home, instance):
    with pytest.raises(InputError, match="already served by instance 'alpha'"):
        converge.up(home, make_spec("delta", hostname="alpha.localhost"))


def test_failed_migration_is_reported_and_others_untouched(home, instance):
    spec = make_spec("gamma", examples=False, metadata_db={"url": "postgresql://nobody:wrong@127.0.0.1:1/none"})
    with pytest.raises(SetpointError, match="migrating the metadata database"):
        converge.up(home, spec)
    assert lifecycle.instance_status(home, "alpha").health == "ok"
    lifecycle.destroy(home, "gamma")


def test_destroy_needs_confirmation(home, instance):
    result = run_cli("destroy", "alpha", home=home)
    assert result.returncode == 1
    assert "--yes" in result.stderr
    assert home.instance("alpha").exists()
