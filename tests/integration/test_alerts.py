"""Alerts reach someone: alpha's spec names a webhook (a real HTTP server on loopback) and an
e-mail address (through a real SMTP server on loopback), its Superset stops, and the
instance-down alert arrives both ways, then its resolution when it answers again. The delay comes
from the spec (alerts.instance_down_after_s), not from patched code."""

import email
import io
import json
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from PIL import Image

from setpoint import examples
from setpoint.backup.service import take_backup
from setpoint.checklist import run_scorecard
from setpoint.errors import SetpointError
from setpoint.runtime.local import converge, lifecycle
from setpoint.runtime.local.instance import load_context
from setpoint.runtime.local.platform import load_platform
from setpoint.home import monitor_user
from setpoint.host.capacity import process_tree, pss_mib
from setpoint.services import screenshots
from setpoint.spec.model import Smtp
from tests.conftest import access_as, component_state, report_figure, run_cli
from tests.s3_server import free_port


class Receiver(ThreadingHTTPServer):
    """An Alertmanager webhook receiver: keeps every alert it is sent, with its arrival time."""

    def __init__(self):
        self.alerts: list[tuple[float, dict]] = []
        received = self.alerts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                received.extend((time.monotonic(), alert) for alert in body["alerts"])
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    def wait_for(self, name: str, status: str, since: float, timeout: float) -> float:
        """Seconds from `since` until an alert `name` with `status` for alpha arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, alert in self.alerts:
                labels = alert["labels"]
                if at >= since and labels.get("alertname") == name and labels.get("setpoint_instance") == "alpha" \
                        and alert["status"] == status:
                    return at - since
            time.sleep(1)
        raise AssertionError(f"no {status} {name} alert for alpha within {timeout:.0f} s: {self.alerts}")


class Mailbox:
    """aiosmtpd's handler: keeps the subject of every e-mail it receives, with its arrival time."""

    def __init__(self) -> None:
        self.subjects: list[tuple[float, str]] = []
        self.messages: list[tuple[float, list[str], email.message.Message]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("refused@"):
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content)
        self.subjects.append((time.monotonic(), str(message["Subject"])))
        self.messages.append((time.monotonic(), list(envelope.rcpt_tos), message))
        return "250 OK"

    def to(self, address: str) -> list[email.message.Message]:
        return [message for _, recipients, message in self.messages if address in recipients]

    def wait_to(self, address: str, timeout: float) -> email.message.Message:
        deadline = time.monotonic() + timeout
        while not self.to(address):
            assert time.monotonic() < deadline, f"no e-mail to {address} within {timeout:.0f} s: {self.subjects}"
            time.sleep(1)
        return self.to(address)[0]

    def wait_for(self, words: tuple[str, ...], since: float, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, subject in self.subjects:
                if at >= since and all(word in subject for word in words):
                    return at - since
            time.sleep(1)
        raise AssertionError(f"no e-mail with {words} within {timeout:.0f} s: {self.subjects}")


class WorkerMemory:
    """The proportional memory of a process and all below it (a worker and its browsers), sampled
    twice a second from now until `stop`: the first sample and the peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.base = self.peak = self.sample()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def sample(self) -> float:
        return sum(pss_mib(pid) for pid in process_tree([self.pid]))

    def run(self) -> None:
        while not self.done.wait(0.5):
            self.peak = max(self.peak, self.sample())

    def stop(self) -> None:
        self.done.set()
        self.thread.join()


@pytest.fixture(scope="module")
def mailbox():
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield box, controller.port
    controller.stop()


@pytest.fixture(scope="module")
def receiver(home, instance, mailbox):
    server = Receiver()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    spec = instance[0]
    alerting = spec.model_copy(update={
        "alerts": spec.alerts.model_copy(update={"webhooks": [f"http://127.0.0.1:{server.server_port}/alerts"],
                                                 "emails": ["oncall@example.com"], "instance_down_after_s": 15,
                                                 "error_for_s": 60}),
        "smtp": Smtp(host="127.0.0.1", port=mailbox[1], security="none", from_address="setpoint@example.com")})
    report = converge.up(home, alerting)
    assert "routed alpha's alerts to 1 webhook(s) and 1 e-mail address(es)" in report.actions
    assert any(a.startswith("sent a test alert to alpha's receivers: delivered in ") for a in report.actions), report.actions
    # up counts deliveries per integration (all Alertmanager 0.25 tells): another of alpha's alerts
    # sent at the same moment can complete the count a second before the test itself arrives.
    server.wait_for("SetpointTestNotification", "firing", since=0, timeout=30)
    mailbox[0].wait_for(("SetpointTestNotification",), since=0, timeout=30)
    yield server
    converge.up(home, spec)
    server.shutdown()


def test_point_20_passes_with_a_receiver(home, receiver):
    card = run_scorecard(lifecycle.managed_target(home, "alpha"), name="alpha")
    finding = next(r for r in card.results if r.check.id == 20)
    assert finding.status.value == "PASS", finding.evidence
    assert "sends alpha's alerts to 1 webhook(s) and 1 e-mail(s)" in finding.evidence
    assert "reached them" in finding.evidence


def test_alertmanagers_configuration_is_closed_to_other_accounts(home, receiver):
    config = home.monitoring_dir / "alertmanager.yml"  # it holds mail passwords when a server asks for one
    assert stat.S_IMODE(config.stat().st_mode) == 0o640 and config.group() == monitor_user()
    assert access_as("nobody", [config])[str(config)] == "EACCES"


def test_instance_down_alert_arrives_and_resolves(home, receiver, mailbox):
    supervisor = load_platform(home).supervisor
    stopped = time.monotonic()
    supervisor.stop("alpha-web")
    try:
        fired = receiver.wait_for("InstanceDown", "firing", stopped, timeout=150)
        mailed = mailbox[0].wait_for(("FIRING", "InstanceDown"), stopped, timeout=60)
    finally:
        supervisor.ctl("start", "alpha-web")
    started = time.monotonic()
    supervisor.wait_running(["alpha-web"], timeout=60)
    resolved = receiver.wait_for("InstanceDown", "resolved", started, timeout=150)
    mailbox[0].wait_for(("RESOLVED", "InstanceDown"), started, timeout=60)
    report_figure(f"instance-down alert: fired {fired:.0f} s after gunicorn stopped (rule: down for 15 s; "
                  f"e-mail {mailed:.0f} s), resolved {resolved:.0f} s after it started again")
    assert lifecycle.instance_status(home, "alpha").health == "ok"


def test_a_burst_of_5xx_and_a_failed_backup_fire_their_alerts_and_recovery_resolves_them(home, receiver, admin):
    """Two faults at once (their alerts take a minute or two each):
    - Redis stops for a moment: every page answers 500 before Superset's API sees it (the session
      lives there). The share of 5xx stays above 5% for the spec's 60 s: the error-rate alert
      fires. Ordinary traffic afterwards brings the share under 5%: it resolves.
    - The backup repository's directory is closed to the data account: the backup fails, the
      scheduler's facts say so within a minute, the backup alert fires. The next backup succeeds
      and resolves it."""
    supervisor = load_platform(home).supervisor
    ctx = load_context(home, "alpha")
    repo = ctx.paths.backup / "repo"
    mode = repo.stat().st_mode
    repo.chmod(0)
    try:
        with pytest.raises(SetpointError):
            take_backup(ctx, "incr")
    finally:
        repo.chmod(mode)
    backup_failed = time.monotonic()
    supervisor.stop("alpha-redis")
    try:
        failed = [admin.call("GET", "/api/v1/me/").status_code for _ in range(40)]
    finally:
        supervisor.ctl("start", "alpha-redis")
    assert set(failed) == {500}, failed
    burst = time.monotonic()

    backup_fired = receiver.wait_for("BackupFailed", "firing", backup_failed, timeout=240)
    recovered = time.monotonic()
    take_backup(ctx, "incr")
    errors_fired = receiver.wait_for("SupersetErrorRate", "firing", burst, timeout=240)
    answered = []
    for _ in range(900):  # under the instance's own limit of 200 requests a second per client
        answered.append(admin.call("GET", "/api/v1/me/").status_code)
        time.sleep(0.01)
    assert answered.count(200) == len(answered), sorted(set(answered))
    diluted = time.monotonic()
    backup_resolved = receiver.wait_for("BackupFailed", "resolved", recovered, timeout=240)
    errors_resolved = receiver.wait_for("SupersetErrorRate", "resolved", diluted, timeout=240)
    report_figure(f"error-rate alert: fired {errors_fired:.0f} s after 40 answers of 500 (rule: above 5% for 60 s), "
                  f"resolved {errors_resolved:.0f} s after 900 answers of 200")
    report_figure(f"backup alert: fired {backup_fired:.0f} s after a backup into a closed repository failed, "
                  f"resolved {backup_resolved:.0f} s after the next backup succeeded")


def test_reports_and_alerts_are_mailed_through_the_specs_server_as_csv_and_png(home, receiver, mailbox, admin):
    """With the spec's smtp: section, Superset's alerts and reports reach the mail server: a chart's
    CSV report every minute, the sample dashboard's PNG report (rendered by the worker's Chromium),
    an alert whose SQL condition holds, and none for one whose does not.
    A report the mail server refuses fires the ReportsFailing alert, resolved once it is gone."""
    # Superset attaches one alert or report to a chart: three of the sample charts.
    charts = iter(c["id"] for c in admin.get("/api/v1/chart/", params={"q": "(page_size:100)"}).json()["result"])
    database = admin.find("database", "database_name", examples.DATABASE_NAME)[0]["id"]

    def schedule(name: str, to: str, **fields) -> int:
        body = {"name": name, "crontab": "* * * * *", "timezone": "UTC", "active": True,
                "report_format": "CSV", "recipients": [{"type": "Email", "recipient_config_json": {"target": to}}],
                **fields}
        body.setdefault("chart", None if "dashboard" in body else next(charts))
        response = admin.call("POST", "/api/v1/report/", json={k: v for k, v in body.items() if v is not None})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    alert = {"type": "Alert", "database": database, "validator_type": "operator"}
    made = [schedule("setpoint csv report", "csv@example.com", type="Report"),
            schedule("setpoint true alert", "alert-true@example.com", sql="SELECT 1",
                     validator_config_json={"op": ">", "threshold": 0}, **alert),
            schedule("setpoint false alert", "alert-false@example.com", sql="SELECT 0",
                     validator_config_json={"op": ">", "threshold": 0}, **alert)]
    dashboard = admin.find("dashboard", "dashboard_title", examples.DASHBOARD_TITLE)[0]["id"]
    made.append(schedule("setpoint dashboard png", "png@example.com", type="Report", dashboard=dashboard,
                         report_format="PNG"))
    refused = schedule("setpoint refused report", "refused@example.com", type="Report")
    scheduled = time.monotonic()
    try:
        worker = WorkerMemory(component_state(home, "alpha", "worker").pid)
        report = mailbox[0].wait_to("csv@example.com", timeout=240)
        delivered = time.monotonic() - scheduled
        attachments = {part.get_filename(): part.get_payload(decode=True) for part in report.walk() if part.get_filename()}
        (name, csv), = attachments.items()
        assert name.endswith(".csv") and csv.count(b"\n") > 3, (name, csv[:200])
        # The dashboard as an image, rendered by the worker's Chromium as the report's owner.
        pictured = mailbox[0].wait_to("png@example.com", timeout=240)
        pictured_after = time.monotonic() - scheduled
        images = [part.get_payload(decode=True) for part in pictured.walk() if part.get_content_maintype() == "image"]
        assert len(images) == 1, [part.get_content_type() for part in pictured.walk()]
        assert screenshots.colours(images[0]) >= screenshots.MIN_COLOURS
        width, height = Image.open(io.BytesIO(images[0])).size
        assert width >= 1000 and height >= 500, (width, height)  # the whole dashboard, not a thumbnail
        mailbox[0].wait_to("alert-true@example.com", timeout=120)
        time.sleep(20)  # evaluated in the same minute as the true one
        assert not mailbox[0].to("alert-false@example.com")
        failing = receiver.wait_for("ReportsFailing", "firing", scheduled, timeout=240)
    finally:
        for schedule_id in [*made, refused]:  # with its execution log, where the failures are counted
            admin.call("DELETE", f"/api/v1/report/{schedule_id}")
    deleted = time.monotonic()
    resolved = receiver.wait_for("ReportsFailing", "resolved", deleted, timeout=240)
    worker.stop()
    report_figure(f"a dashboard's PNG report: mailed {pictured_after:.0f} s after it was scheduled, a {width}x{height} "
                  f"image of {screenshots.colours(images[0]):,} colours; the worker's processes (Chromium's too) "
                  f"held {worker.base:.0f} MiB before and {worker.peak:.0f} MiB at most while the reports ran (PSS)")
    report_figure(f"a chart's CSV report: mailed {delivered:.0f} s after it was scheduled for every minute; "
                  f"one the mail server refuses: alert fired {failing:.0f} s after, resolved {resolved:.0f} s after its deletion")


def test_report_test_sends_through_supersets_own_mail_settings(home, receiver, mailbox):
    sent = run_cli("report-test", "alpha", "--to", "check@example.com", home=home)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    message = mailbox[0].wait_to("check@example.com", timeout=30)
    assert "alpha" in message["Subject"] and message["From"] == "setpoint@example.com"
