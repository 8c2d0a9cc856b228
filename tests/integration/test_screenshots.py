"""Screenshots of the session's instance, rendered by its worker in Debian's headless Chromium: up
proved it on the sample dashboard; a tenant's thumbnail is rendered as the tenant, never handed
an admin's image; a dashboard cannot make the renderer fetch from anywhere but the instance."""

import json
import os
import pwd
import re
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from setpoint import examples
from setpoint.home import superset_account
from setpoint.host.capacity import process_tree
from setpoint.runtime.local import lifecycle
from setpoint.observability.monitoring import api_auth, monitoring_of
from setpoint.runtime.local.superset_side.reports import browser_processes
from setpoint.services import screenshots
from setpoint.services.supervisor import Supervisor
from tests.conftest import report_figure

TIMEOUT = 240


@pytest.fixture(scope="module")
def dashboard(admin) -> int:
    return admin.find("dashboard", "dashboard_title", examples.DASHBOARD_TITLE)[0]["id"]


def rendered_images(home) -> float:
    """How many images alpha's worker rendered, from its metrics (straight from gunicorn)."""
    web = home.instance("alpha").read_state()["ports"]["web"]
    text = httpx.get(f"http://127.0.0.1:{web}/setpoint/metrics", timeout=10, auth=api_auth(monitoring_of(home))).text
    found = re.search(r'^superset_screenshots_total\{outcome="rendered"\} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_up_rendered_the_sample_dashboard_in_the_workers_chromium(instance):
    line = next((a for a in instance[1].actions if a.startswith(f"rendered the '{examples.DASHBOARD_TITLE}'")), None)
    assert line, [a for a in instance[1].actions if "render" in a or "warning" in a]
    assert int(re.search(r"of ([\d,]+) colours", line).group(1).replace(",", "")) >= screenshots.MIN_COLOURS
    report_figure(f"self-test at alpha's creation: {line}")


def renderers_chart_queries(home, since: int) -> list[str]:
    """The status of each chart-data request the worker's browser made, from gunicorn's access
    log from byte `since` on."""
    with open(home.instance("alpha").logs / "web.log", "rb") as log:
        log.seek(since)
        lines = log.read().decode(errors="replace").splitlines()
    return [re.search(r'" (\d{3}) ', line).group(1) for line in lines
            if "HeadlessChrome" in line and "/api/v1/chart/data" in line]


def test_a_tenants_thumbnail_is_rendered_as_the_tenant_never_handed_an_admins(home, admin, make_user, dashboard):
    """Its charts' data is not in the cache (cleared): the browser's chart queries run in the web
    process, not queued for the worker that is busy rendering them (the page would wait for
    itself and show spinners)."""
    tenant = make_user("sales_europe")
    before = rendered_images(home)
    lifecycle.clear_caches(home, "alpha")
    log_size = (home.instance("alpha").logs / "web.log").stat().st_size
    admins, tenants = screenshots.thumbnail_url(admin, dashboard), screenshots.thumbnail_url(tenant, dashboard)
    assert admins != tenants  # a digest per user
    # The tenant asks for the admin's image by its address: sent to its own instead.
    stolen = tenant.call("GET", admins)
    assert stolen.status_code == 302 and stolen.headers["location"].endswith(tenants), stolen.headers
    own = screenshots.self_test(tenant, dashboard, TIMEOUT)
    everyone = screenshots.self_test(admin, dashboard, TIMEOUT)
    # Its total revenue is Europe's: another image than the admin's, who sees every region.
    assert own.png != everyone.png
    statuses = renderers_chart_queries(home, log_size)
    assert len(statuses) >= 6 and set(statuses) == {"200"}, statuses  # 202 would be queued for the worker
    assert rendered_images(home) >= before + 1  # counted for Prometheus (ScreenshotsFailing's input)
    report_figure(f"a tenant's thumbnail rendered as the tenant in {own.seconds:g} s ({own.colours:,} colours)")


def worker_pid(home) -> int:
    return Supervisor(home).states("alpha")["alpha-worker"].pid


def name_of(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/comm").read().strip()
    except OSError:
        return ""


def parent_of(pid: int) -> int:
    try:
        return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return 0


def browsers(home) -> int:
    """How many Chromium browsers alpha's worker runs now: each render's ChromeDriver starts one.
    Not every process named chromium: the browser forks its helpers, and each shows the browser's
    own command line until it runs its own (seen on demo, sampling every 2 ms)."""
    tree = process_tree([worker_pid(home)])
    return sum(name_of(pid) == "chromium" and name_of(parent_of(pid)) == "chromedriver" for pid in tree)


def test_two_thumbnails_asked_at_once_render_one_after_the_other(home, admin, make_user, dashboard):
    """The worker has two pool processes, and each render holds a browser of about 650 MiB: they
    take turns (setpoint_reports.py), so that two renders never take the instance past its limit."""
    tenant = make_user("sales_north_america")
    lifecycle.clear_caches(home, "alpha")
    before = rendered_images(home)
    most, done = 0, threading.Event()

    def watch():
        nonlocal most
        while not done.is_set():
            most = max(most, browsers(home))
            done.wait(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    worker_log = home.instance("alpha").logs / "worker.log"
    log_size = worker_log.stat().st_size
    try:
        with ThreadPoolExecutor(2) as pool:
            images = list(pool.map(lambda api: screenshots.self_test(api, dashboard, TIMEOUT), (admin, tenant)))
    except screenshots.NotRendered as exc:  # what the worker said of these renders, to tell why
        with open(worker_log, "rb") as log:
            log.seek(log_size)
            said = [line for line in log.read().decode(errors="replace").splitlines()
                    if re.search(r"WARNING|ERROR|turn|[Tt]ime limit|screenshot|thumbnail", line)]
        pytest.fail(f"{exc}; the worker said meanwhile:\n" + "\n".join(said[-40:]))
    finally:
        done.set()
        watcher.join()
    assert images[0].png != images[1].png and rendered_images(home) >= before + 2
    assert most == 1, f"{most} browsers ran at once"
    report_figure(f"two thumbnails asked at once: rendered in turn, in {images[0].seconds:g} and {images[1].seconds:g} s")


def test_a_render_killed_midway_leaves_no_browser_behind(home, admin, dashboard):
    """kill -9 of the worker process that renders (as a task's hard time limit or the instance's
    memory limit does) leaves its ChromeDriver and Chromium to init, about 650 MiB, and never
    releases its turn: the next render takes the turn and ends them before its own."""
    uid = pwd.getpwnam(superset_account(home.root, "alpha")).pw_uid
    lifecycle.clear_caches(home, "alpha")
    with ThreadPoolExecutor(1) as pool:
        asked = pool.submit(screenshots.thumbnail, admin, dashboard, TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while not (drivers := [p for p in process_tree([worker_pid(home)]) if name_of(p) == "chromedriver"]):
            assert time.monotonic() < deadline and not asked.done(), "no render started"
            time.sleep(0.2)
        time.sleep(2)  # its browser starts
        killed, log_size = parent_of(drivers[0]), (home.instance("alpha").logs / "worker.log").stat().st_size
        os.kill(killed, signal.SIGKILL)
        time.sleep(1)
        orphans = set(browser_processes(uid))
        assert drivers[0] in orphans and len(orphans) > 1, orphans  # the driver and its browser outlive it
        started = time.monotonic()
        asked.result()  # Superset's next ask queues the render again
    assert not orphans & set(browser_processes(uid))
    assert Supervisor(home).states("alpha")["alpha-worker"].state == "RUNNING"
    # Its turn passed at once, not when it expired (the task's hard time limit, minutes later).
    with open(home.instance("alpha").logs / "worker.log", "rb") as log:
        log.seek(log_size)
        assert f"took the browser's turn from process {killed}, which is gone".encode() in log.read()
    report_figure(f"a render killed midway: the next took its turn and rendered in {time.monotonic() - started:.0f} s")


class Listener(ThreadingHTTPServer):
    """Records every request a page sends it."""

    def __init__(self):
        self.paths: list[str] = []
        seen = self.paths

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(self.path)
                self.send_response(404)
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)


def test_a_dashboard_cannot_make_the_renderer_fetch_from_another_address(admin, home):
    """An admin's markdown with two images: one on the instance itself, one on another loopback
    port (another instance, an exporter, a cloud metadata address). The renderer loads the first
    (so the markdown's images are live) and never the second: the content security policy."""
    listener = Listener()
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    marker = uuid.uuid4().hex
    code = (f'<img src="/static/setpoint-{marker}.png">\n\n'
            f'<img src="http://127.0.0.1:{listener.server_port}/setpoint-{marker}.png">')
    position = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": ["ROW-1"], "parents": ["ROOT_ID"]},
        "ROW-1": {"type": "ROW", "id": "ROW-1", "children": ["MARKDOWN-1"], "parents": ["ROOT_ID", "GRID_ID"],
                  "meta": {"background": "BACKGROUND_TRANSPARENT"}},
        "MARKDOWN-1": {"type": "MARKDOWN", "id": "MARKDOWN-1", "children": [], "parents": ["ROOT_ID", "GRID_ID", "ROW-1"],
                       "meta": {"width": 6, "height": 50, "code": code}},
    }
    made = admin.post("/api/v1/dashboard/", json={"dashboard_title": f"setpoint fetch {marker}",
                                                   "position_json": json.dumps(position), "published": True})
    assert made.status_code == 201, made.text
    try:
        screenshots.thumbnail(admin, made.json()["id"], TIMEOUT)
    finally:
        admin.call("DELETE", f"/api/v1/dashboard/{made.json()['id']}")
        listener.shutdown()
    web_log = (home.instance("alpha").logs / "web.log").read_text()
    assert f"/static/setpoint-{marker}.png" in web_log  # the page did load its images
    assert listener.paths == []
