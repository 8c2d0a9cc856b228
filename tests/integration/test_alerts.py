"""Alerts reach someone: alpha's spec names a webhook (a real HTTP server on loopback), its
Superset stops, and the instance-down alert arrives, then its resolution when it answers again.
The delay comes from the spec (alerts.instance_down_after_s), not from patched code."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from setpoint.checklist import run_scorecard
from setpoint.runtime.local import converge, lifecycle
from setpoint.runtime.local.platform import load_platform
from tests.conftest import report_figure


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


@pytest.fixture(scope="module")
def receiver(home, instance):
    server = Receiver()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    spec = instance[0]
    alerting = spec.model_copy(update={"alerts": spec.alerts.model_copy(update={
        "webhooks": [f"http://127.0.0.1:{server.server_port}/alerts"], "instance_down_after_s": 15})})
    report = converge.up(home, alerting)
    assert "routed alpha's alerts to 1 webhook(s)" in report.actions
    yield server
    converge.up(home, spec)
    server.shutdown()


def test_point_20_passes_with_a_receiver(home, receiver):
    card = run_scorecard(lifecycle.managed_target(home, "alpha"), name="alpha")
    finding = next(r for r in card.results if r.check.id == 20)
    assert finding.status.value == "PASS", finding.evidence
    assert "sends alpha's alerts to 1 webhook(s)" in finding.evidence


def test_instance_down_alert_arrives_and_resolves(home, receiver):
    supervisor = load_platform(home).supervisor
    stopped = time.monotonic()
    supervisor.stop("alpha-web")
    try:
        fired = receiver.wait_for("InstanceDown", "firing", stopped, timeout=150)
    finally:
        supervisor.ctl("start", "alpha-web")
    started = time.monotonic()
    supervisor.wait_running(["alpha-web"], timeout=60)
    resolved = receiver.wait_for("InstanceDown", "resolved", started, timeout=150)
    report_figure(f"instance-down alert: fired {fired:.0f} s after gunicorn stopped (rule: down for 15 s), "
                  f"resolved {resolved:.0f} s after it started again")
    assert lifecycle.instance_status(home, "alpha").health == "ok"
