"""Changes lose no request: five clients load pages through Caddy while the configuration changes
and while web restarts; every request must succeed."""

import threading
import time
from contextlib import contextmanager

from setpoint.net import http_client
from setpoint.runtime.local import converge, lifecycle
from tests.conftest import report_figure

CLIENTS = 5


@contextmanager
def clients(url, ca_root):
    """Five clients asking for the login page every 50 ms; yields their (status, seconds) list."""
    results, stop = [], threading.Event()

    def client():
        with http_client(url, ca_file=ca_root, timeout=120) as http:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    status = http.get("/login/").status_code
                except Exception as exc:  # noqa: BLE001 - a dropped connection is a failure to count
                    status = type(exc).__name__
                results.append((status, time.monotonic() - started))
                time.sleep(0.05)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(1)
    try:
        yield results
        time.sleep(1)
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def report(what, results):
    failed = [status for status, _ in results if status != 200]
    report_figure(f"{what}: {len(results)} requests, {len(failed)} failed {sorted(set(map(str, failed)))}, "
          f"slowest {max(seconds for _, seconds in results):.1f} s")
    return failed


def test_a_configuration_change_drops_no_request(home, instance, ca_root):
    spec = instance[0]
    with clients(spec.url, ca_root) as results:
        changed = converge.up(home, spec.model_copy(update={"web_timeout_s": 360}))
    try:
        assert any("reloaded alpha-web gracefully" in action for action in changed.actions)
        assert report("setpoint up with web_timeout_s 300 -> 360", results) == []
        assert "timeout = 360" in (home.instance("alpha").config / "gunicorn.conf.py").read_text()
    finally:
        converge.up(home, spec)


def test_restarting_web_drops_no_request(home, instance, ca_root):
    with clients(instance[0].url, ca_root) as results:
        actions = lifecycle.restart(home, "alpha", "web")
    assert actions == ["reloaded alpha-web gracefully: new workers, no request dropped"]
    assert report("setpoint restart alpha web", results) == []
