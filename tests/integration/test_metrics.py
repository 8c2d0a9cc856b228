"""The host's Prometheus observes every instance from its first minute (checklist point 19),
with Superset's own events summed over all its processes, and none of it is reachable from
outside the host."""

import json
import smtplib
import subprocess
import time

import httpx
import pytest

from setpoint.checklist import run_scorecard
from setpoint.errors import SetpointError
from setpoint.net import http_client
from setpoint.observability import mailbox, notification
from setpoint.observability.monitoring import Prometheus, api_auth, monitoring_of, receivers_of
from setpoint.runtime.local import lifecycle
from setpoint.runtime.local.platform import load_platform
from tests.conftest import access_as, as_account, run_cli


def point_19(home):
    card = run_scorecard(lifecycle.managed_target(home, "alpha"), name="alpha")
    return next(r for r in card.results if r.check.id == 19)


def test_prometheus_scrapes_the_instance_the_host_and_caddy(home, instance):
    health = {(t.job, t.instance): t.health for t in Prometheus(monitoring_of(home)).targets()}
    assert health[("superset", "alpha")] == health[("redis", "alpha")] == health[("postgres", None)] == "up", health
    assert health[("node", None)] == health[("caddy", None)] == health[("prometheus", None)] == "up"


def test_prometheus_keeps_its_data_as_long_as_the_spec_asks(home, instance):
    flags = Prometheus(monitoring_of(home)).flags()
    assert flags["storage.tsdb.retention.time"] == f"{instance[0].metrics.retention_days}d"


def test_superset_events_reach_prometheus(home, admin):
    prometheus = Prometheus(monitoring_of(home))
    expression = 'sum(superset_events_total{setpoint_instance="alpha",event="ChartDataRestApi.data.success"})'

    def count() -> float:
        result = prometheus.query(expression)
        return float(result[0]["value"][1]) if result else 0.0

    before = count()
    chart = admin.find("chart", "slice_name", "Top countries")[0]
    query_context = admin.get(f"/api/v1/chart/{chart['id']}").json()["result"]["query_context"]
    for _ in range(3):
        admin.chart_data(query_context)
    deadline = time.monotonic() + 60  # a scrape every 15 s
    while count() < before + 3:
        assert time.monotonic() < deadline, f"Prometheus saw {count() - before:.0f} of 3 chart requests"
        time.sleep(2)


def test_a_failing_celery_task_is_counted(home, admin):
    """An asynchronous chart query on a column that does not exist fails in the worker: Prometheus
    counts it by task and outcome (the CeleryTasksFailing rule's input)."""
    prometheus = Prometheus(monitoring_of(home))
    expression = ('sum(superset_celery_tasks_total{setpoint_instance="alpha",'
                  'task="load_chart_data_into_cache",outcome="failure"})')

    def failures() -> float:
        result = prometheus.query(expression)
        return float(result[0]["value"][1]) if result else 0.0

    before = failures()
    chart = admin.find("chart", "slice_name", "Top countries")[0]
    query_context = json.loads(admin.get(f"/api/v1/chart/{chart['id']}").json()["result"]["query_context"])
    for query in query_context["queries"]:
        query["columns"] = ["no_such_column"]
    query_context["force"] = True
    with pytest.raises(SetpointError, match="the chart query failed"):
        admin.chart_data(query_context)
    deadline = time.monotonic() + 60
    while failures() < before + 1:
        assert time.monotonic() < deadline, "Prometheus counted no failed Celery task"
        time.sleep(2)


def test_metrics_are_reachable_from_this_host_only(home, instance, http):
    """Anonymous, from outside: the instance's metrics are not served through Caddy, nor to a
    request Caddy forwarded; the monitoring services listen on loopback only."""
    assert http.get("/setpoint/metrics").status_code == 404
    web = home.instance("alpha").read_state()["ports"]["web"]
    auth = api_auth(monitoring_of(home))
    direct = httpx.get(f"http://127.0.0.1:{web}/setpoint/metrics", timeout=10, auth=auth)
    assert direct.status_code == 200 and "superset_events_total" in direct.text
    # A request Caddy forwarded (it proves so with the instance's proxy secret) gets 404, password
    # or not; forwarded headers without the secret count for nothing (superset_side/proxy.py).
    secret = json.loads(home.instance("alpha").superset_secrets_file.read_text())["proxy_secret"]
    forwarded = httpx.get(f"http://127.0.0.1:{web}/setpoint/metrics", timeout=10, auth=auth,
                          headers={"X-Forwarded-For": "203.0.113.9", "X-Setpoint-Proxy": secret})
    assert forwarded.status_code == 404
    monitoring = monitoring_of(home)
    listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=True).stdout
    for port in (monitoring.prometheus_port, monitoring.node_exporter_port, monitoring.caddy_metrics_port,
                 monitoring.postgres_exporter_port, monitoring.redis_exporter_port):
        addresses = {line.split()[3].rsplit(":", 1)[0] for line in listening.splitlines()
                     if line.split()[3].endswith(f":{port}")}
        assert addresses == {"127.0.0.1"}, (port, addresses)


@pytest.mark.parametrize("account", ["nobody", "sp-alpha"])
def test_a_local_account_reads_no_metrics_on_loopback(home, instance, account):
    """As any local account (`nobody`, or the instance's own Superset account), straight to
    gunicorn and to Caddy's metrics port on loopback, without the monitoring password and with a
    guessed one: no metrics. The password file is closed to that account; Prometheus, which holds
    it, still scrapes both (test_prometheus_scrapes_the_instance_the_host_and_caddy)."""
    from setpoint.home import superset_account

    account = superset_account(home.root, "alpha") if account == "sp-alpha" else account
    monitoring = monitoring_of(home)
    web = home.instance("alpha").read_state()["ports"]["web"]
    assert access_as(account, [monitoring.password_file]) == {str(monitoring.password_file): "EACCES"}
    urls = {"superset": f"http://127.0.0.1:{web}/setpoint/metrics",
            "caddy": f"http://127.0.0.1:{monitoring.caddy_metrics_port}/metrics"}
    for login in ([], ["--user", "setpoint:guessed"]):
        for name, url in urls.items():
            result = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", *login, url],
                                    **as_account(account), capture_output=True, text=True, timeout=30)
            assert result.stdout == ("404" if name == "superset" else "401"), (account, name, login, result.stdout)
    # The same requests with the password answer: the refusals above are the password's doing.
    for url in urls.values():
        scraped = httpx.get(url, auth=api_auth(monitoring), timeout=10)
        assert scraped.status_code == 200 and "# TYPE" in scraped.text, url


def test_the_instances_postgres_and_redis_reach_prometheus(home, instance):
    """Through the host's exporters, labelled with the instance: its PostgreSQL's settings and
    connections, its Redis and the length of its Celery queue."""
    from setpoint.runtime.local.instance import load_context

    ctx = load_context(home, "alpha")
    prometheus = Prometheus(monitoring_of(home))
    limit = prometheus.query('pg_settings_max_connections{setpoint_instance="alpha"}')
    assert [float(r["value"][1]) for r in limit] == [ctx.sizing.pg_max_connections], limit
    assert prometheus.query('sum(pg_stat_activity_count{setpoint_instance="alpha",datname="superset"}) > 0')
    assert [r["value"][1] for r in prometheus.query('redis_up{setpoint_instance="alpha"}')] == ["1"]
    assert prometheus.query('redis_key_size{setpoint_instance="alpha",db="db0",key="celery"}')
    # The connection strings and Redis passwords are the monitoring account's alone.
    monitoring = monitoring_of(home)
    secrets = [home.monitoring_dir / "postgres-exporter.dsn", home.monitoring_dir / "redis-passwords.json"]
    assert access_as("nobody", secrets) == {str(path): "EACCES" for path in secrets}
    assert access_as(ctx.superset_user, secrets) == {str(path): "EACCES" for path in secrets}
    # The PostgreSQL exporter answers no one without the password.
    assert httpx.get(f"http://127.0.0.1:{monitoring.postgres_exporter_port}/metrics", timeout=10).status_code == 401


def test_prometheus_and_alertmanager_answer_no_one_without_the_password(home, instance):
    """Any local account can reach loopback: without the password (0640 to their account), the
    APIs answer 401, so no one reads the host's metrics or Setpoint's facts (the node exporter's),
    silences an instance's alerts or has the host's probe point fetch a URL."""
    monitoring = monitoring_of(home)
    for port, path in ((monitoring.prometheus_port, "/api/v1/query?query=up"),
                       (monitoring.alertmanager_port, "/api/v2/status"),
                       (monitoring.node_exporter_port, "/metrics"), (monitoring.blackbox_port, "/metrics")):
        assert httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10).status_code == 401
        assert httpx.get(f"http://127.0.0.1:{port}{path}", auth=("setpoint", "guess"), timeout=10).status_code == 401
        silence = httpx.post(f"http://127.0.0.1:{port}/api/v2/silences", json={}, timeout=10)
        assert silence.status_code == 401
        password = monitoring.password_file.read_text()
        assert httpx.get(f"http://127.0.0.1:{port}{path}", auth=("setpoint", password), timeout=10).status_code == 200
    assert access_as("nobody", [monitoring.password_file])[str(monitoring.password_file)] == "EACCES"


def test_the_consoles_are_served_through_caddy_to_the_monitoring_login_only(home, instance, ca_root):
    """Prometheus's and Alertmanager's UIs and APIs at https://localhost on the instances' port:
    anonymous visitors and a wrong password get 401, the login of `credentials --monitoring` gets in."""
    shown = run_cli("credentials", "--monitoring", "--format", "json", home=home)
    assert shown.returncode == 0, shown.stderr
    login = json.loads(shown.stdout)
    base = login["url"].removesuffix("/prometheus/")
    assert base == f"https://localhost:{instance[0].https_port}"
    with http_client(base, ca_file=ca_root) as client:
        for path in ("/prometheus/classic/graph", "/prometheus/api/v1/targets", "/alertmanager/api/v2/status"):
            assert client.get(path).status_code == 401, path
            assert client.get(path, auth=(login["username"], "guess")).status_code == 401, path
            assert client.get(path, auth=(login["username"], login["password"])).status_code == 200, path
        page = client.get("/prometheus/", auth=(login["username"], login["password"]), follow_redirects=True)
        # The page's links carry the prefix Caddy serves it under.
        assert page.status_code == 200 and 'PATH_PREFIX = "\\/prometheus"' in page.text
        assert client.get("/elsewhere").status_code == 404


def test_point_19_fails_while_prometheus_is_down(home, instance):
    supervisor = load_platform(home).supervisor
    assert point_19(home).status.value == "PASS"
    supervisor.stop("prometheus")
    try:
        finding = point_19(home)
        assert finding.status.value == "FAIL" and "does not answer" in finding.evidence
    finally:
        supervisor.ctl("start", "prometheus")
    supervisor.wait_running(["prometheus"], timeout=30)


def test_setpoint_facts_reach_prometheus(home, instance):
    """The scheduler's facts (every minute) through the node exporter: alpha's first backup, taken
    by `up`, succeeded."""
    prometheus = Prometheus(monitoring_of(home))
    expression = 'setpoint_task_last_run_success{setpoint_instance="alpha",task="backup"}'
    deadline = time.monotonic() + 120
    while not prometheus.query(expression):
        assert time.monotonic() < deadline, "no backup fact of alpha in Prometheus"
        time.sleep(3)
    assert float(prometheus.query(expression)[0]["value"][1]) == 1
    # A test before this one may have stopped alpha: the scheduler's next minute says it is wanted up.
    desired = 'setpoint_instance_desired_up{setpoint_instance="alpha"}'
    deadline = time.monotonic() + 150
    while [r["value"][1] for r in prometheus.query(desired)] != ["1"] and time.monotonic() < deadline:
        time.sleep(3)
    assert prometheus.query(desired)[0]["value"][1] == "1"


def test_the_alert_rules_are_loaded_and_alerts_reach_the_hosts_mailbox(home, instance):
    """alpha's spec names no receiver: its alerts go to the host's mailbox, and up proved it with
    a test notification that is in the mailbox."""
    prometheus = Prometheus(monitoring_of(home))
    groups = prometheus.alert_rules()
    assert set(groups["host"]) == {"HostCpuSaturated", "HostDiskFull"}
    assert set(groups["instance alpha"]) == {
        "InstanceDown", "InstanceUnreachable", "SupersetErrorRate", "BackupFailed", "BackupStale", "RestoreDrillFailedOrOverdue",
        "WalArchivingFailing", "PostgresDown", "PostgresConnectionsNearLimit", "RedisDown", "RedisMemoryNearLimit",
        "CeleryBacklogGrowing", "CeleryTasksFailing", "ReportsFailing", "ScreenshotsFailing", "ChartCheckFailing"}  # a local name: no certificate rule (Caddy's own CA renews every few hours)
    # alpha answers and its backups are fine: every rule settles inactive (a test before this one
    # may have restarted alpha, which leaves a rule pending until the next scrape finds it up).
    # The error-rate rule looks back 5 minutes: a module before this one that killed workers may
    # have left it pending, which is right only while the errors' share is above the threshold.
    error_ratio = ('sum(rate(superset_http_responses_total{setpoint_instance="alpha",status="5xx"}[5m])) / '
                   'sum(rate(superset_http_responses_total{setpoint_instance="alpha"}[5m]))')

    def settled(states: dict[str, str]) -> bool:
        errors = [float(r["value"][1]) for r in prometheus.query(error_ratio)]
        return all(state == "inactive" or (rule == "SupersetErrorRate" and errors and errors[0] > instance[0].alerts.error_ratio)
                   for rule, state in states.items())

    deadline = time.monotonic() + 90
    while not settled(states := prometheus.alert_rules()["instance alpha"]) and time.monotonic() < deadline:
        time.sleep(3)
    assert settled(states), states
    card = run_scorecard(lifecycle.managed_target(home, "alpha"), name="alpha")
    finding = next(r for r in card.results if r.check.id == 20)
    assert finding.status.value == "PASS", finding.evidence
    assert "a rule for CPU at 99% for 5 min" in finding.evidence
    assert "sends alpha's alerts to the host's mailbox (setpoint alerts alpha --mailbox)" in finding.evidence
    assert "the test notification of " in finding.evidence and "reached them" in finding.evidence
    listed = json.loads(run_cli("alerts", "alpha", "--mailbox", "--format", "json", home=home).stdout)
    assert any(m["subject"].startswith("[FIRING:1] SetpointTestNotification alpha") for m in listed), listed


def test_the_hosts_mailbox_takes_mail_from_alertmanager_only(home, instance):
    """Any local account reaches its port: without the monitoring password it refuses a forged
    alert, and that password is closed to other accounts."""
    monitoring = monitoring_of(home)
    with smtplib.SMTP("127.0.0.1", monitoring.mailbox_port) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail("attacker@example.com", [mailbox.address("alpha")], b"Subject: [FIRING:1] forged\r\n\r\nx")
    assert refused.value.smtp_code == 530
    assert not [m for m in mailbox.messages(home.monitoring_dir / "mailbox", "alpha") if "forged" in m.subject]
    assert access_as("nobody", [monitoring.password_file, home.monitoring_dir / "mailbox"]) == {
        str(monitoring.password_file): "EACCES", str(home.monitoring_dir / "mailbox"): "EACCES"}


def test_a_test_notification_that_cannot_arrive_is_told(home, instance):
    """The mailbox stopped (an unreachable receiver): the test notification fails, naming
    Alertmanager's log, and point 20 would not count it."""
    spec, supervisor = instance[0], load_platform(home).supervisor
    supervisor.stop("mailbox")
    try:
        outcome = notification.send(home, spec, receivers_of(home, spec), timeout=30)
    finally:
        supervisor.start("mailbox")
    assert not outcome.delivered
    assert outcome.detail.endswith(f"see {home.monitoring_dir}/alertmanager.log"), outcome.detail
