"""Changes lose no request and no query: five clients load the login page and a dashboard's API
through Caddy, and a sixth runs SQL Lab queries through the Celery worker, while the configuration
changes and while web restarts; every request must succeed and every query must end in success."""

import html
import json
import re
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import pytest

from setpoint.net import http_client
from setpoint.readiness import wait_until
from setpoint.runtime.local import converge, lifecycle
from setpoint.services.supervisor import Supervisor
from setpoint.superset_api import SupersetClient
from tests.conftest import report_figure

CLIENTS = 5


@dataclass(frozen=True)
class Work:
    """What the logged-in clients use: the admin password, the sample dashboard, an async database."""

    password: str
    dashboard_id: int
    database_id: int


@dataclass
class Load:
    pages: list = field(default_factory=list)  # (status, seconds) of each page load
    queries: list = field(default_factory=list)  # server ids of the SQL Lab queries, or the error
    resent: int = 0  # page loads sent again, as a browser does, after a kept-alive connection closed


@contextmanager
def clients(url, ca_root, work: Work | None = None):
    """Five clients loading the login page every 50 ms and, with `work`, the dashboard's charts
    as well, and one submitting an async SQL Lab query every 0.5 s; yields their Load."""
    load, stop = Load(), threading.Event()
    bearer = {}
    if work:
        with http_client(url, ca_file=ca_root, timeout=60) as http:
            api = SupersetClient(http)
            assert api.login("admin", work.password).status_code == 200
            bearer = dict(api.headers)  # one login for all: logins are rate-limited

    def page_client():
        paths = ["/login/"] + ([f"/api/v1/dashboard/{work.dashboard_id}/charts"] if work else [])
        with http_client(url, ca_file=ca_root, timeout=120) as http:
            while not stop.is_set():
                path = paths[len(load.pages) % len(paths)]
                started = time.monotonic()
                headers = bearer if path.startswith("/api/") else {}
                try:
                    try:
                        status = http.get(path, headers=headers).status_code
                    except httpx.RemoteProtocolError:
                        # An idle kept-alive connection closed as the GET went out (Caddy closes
                        # those when it reloads): a browser sends the GET again, once, on a new
                        # connection (RFC 9112, 9.3.1). A second failure counts.
                        load.resent += 1
                        status = http.get(path, headers=headers).status_code
                except Exception as exc:  # noqa: BLE001 - a dropped connection is a failure to count
                    status = type(exc).__name__
                load.pages.append((status, time.monotonic() - started))
                time.sleep(0.05)

    def sql_lab_client(database_id: int):
        with http_client(url, ca_file=ca_root, timeout=120) as http:
            api = SupersetClient(http, headers=dict(bearer))
            while not stop.is_set():
                try:
                    response = api.call("POST", "/api/v1/sqllab/execute/", json={
                        "database_id": database_id, "sql": f"SELECT {len(load.queries)}", "runAsync": True,
                        "client_id": uuid.uuid4().hex[:10]})
                    load.queries.append(response.json()["query"]["serverId"] if response.status_code in (200, 202)
                                        else f"HTTP {response.status_code}")
                except Exception as exc:  # noqa: BLE001 - a refused submission is a lost query
                    load.queries.append(type(exc).__name__)
                time.sleep(0.5)

    threads = [threading.Thread(target=page_client) for _ in range(CLIENTS)]
    if work:
        threads.append(threading.Thread(target=sql_lab_client, args=(work.database_id,)))
    for thread in threads:
        thread.start()
    time.sleep(1)
    try:
        yield load
        time.sleep(1)
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def report(what, load: Load, admin=None):
    """Report the page loads (and, with `admin`, the queries once they ended); return the failures."""
    failed = [status for status, _ in load.pages if status != 200]
    line = (f"{what}: {len(load.pages)} requests, {len(failed)} failed {sorted(set(map(str, failed)))}, "
            f"slowest {max(seconds for _, seconds in load.pages):.1f} s, {load.resent} sent again after a closed "
            "kept-alive connection")
    if admin is not None:
        statuses = query_outcomes(admin, load.queries)
        lost = [s for s in statuses if s != "success"]
        line += f"; {len(statuses)} SQL Lab queries, {len(lost)} lost or failed {sorted(set(lost))}"
        failed += lost
    report_figure(line)
    return failed


def query_outcomes(admin, queries: list, timeout: float = 120) -> list[str]:
    """Each query's final status (or why it was not accepted)."""
    deadline = time.monotonic() + timeout
    outcomes: dict[int, str] = {}
    while time.monotonic() < deadline:
        for query in queries:
            if isinstance(query, int) and outcomes.get(query) in (None, "pending", "running"):
                outcomes[query] = admin.get(f"/api/v1/query/{query}").json()["result"]["status"]
        if all(s not in ("pending", "running") for s in outcomes.values()):
            break
        time.sleep(1)
    return [outcomes[q] if isinstance(q, int) else q for q in queries]


def work_of(admin, secrets) -> Work:
    return Work(secrets["admin_password"],
                dashboard_id=admin.get("/api/v1/dashboard/").json()["result"][0]["id"],
                database_id=next(d["id"] for d in admin.get("/api/v1/database/").json()["result"] if d["allow_run_async"]))


@pytest.fixture(scope="module")
def work(admin, secrets):
    return work_of(admin, secrets)


def served_timeout(url, ca_root) -> int:
    """SUPERSET_WEBSERVER_TIMEOUT as the web workers serve it (the login page's bootstrap data)."""
    with http_client(url, ca_file=ca_root, timeout=30) as http:
        page = http.get("/login/").text
    data = json.loads(html.unescape(re.search(r'data-bootstrap="([^"]*)"', page).group(1)))
    return data["common"]["conf"]["SUPERSET_WEBSERVER_TIMEOUT"]


def test_a_configuration_change_drops_no_request_and_no_query(home, instance, ca_root, admin, work):
    spec = instance[0]
    master = Supervisor(home).states("alpha")["alpha-web"].pid
    assert served_timeout(spec.url, ca_root) == 300
    with clients(spec.url, ca_root, work) as load:
        changed = converge.up(home, spec.model_copy(update={"web_timeout_s": 360}))
    try:
        assert any("reloaded alpha-web gracefully" in action for action in changed.actions)
        assert any("alpha-worker" in action for action in changed.actions)  # restarted warmly
        assert len(load.queries) > 10
        assert report("setpoint up with web_timeout_s 300 -> 360", load, admin) == []
        assert "timeout = 360" in (home.instance("alpha").config / "gunicorn.conf.py").read_text()
        # The workers serve the new superset_config.py (Superset keeps the page's data for 60 s),
        # from the master supervisord watches.
        wait_until(lambda: served_timeout(spec.url, ca_root) == 360, 90,
                   AssertionError("the web workers still serve web_timeout_s 300"), interval=5)
        assert Supervisor(home).states("alpha")["alpha-web"].pid == master
    finally:
        converge.up(home, spec)


def test_restarting_web_drops_no_request_and_no_query(home, instance, ca_root, admin, work):
    with clients(instance[0].url, ca_root, work) as load:
        actions = lifecycle.restart(home, "alpha", "web")
    assert actions == ["reloaded alpha-web gracefully: new workers, no request dropped"]
    assert report("setpoint restart alpha web", load, admin) == []


def test_every_request_after_a_postgres_restart_succeeds(home, instance, admin, work):
    """A PostgreSQL restart (`setpoint restart NAME postgres`, or a crash supervisord recovers)
    ends every connection in the pools of the web workers and of the Celery worker: the next
    request on each reconnects (Superset's ping at checkout) instead of answering 500."""
    charts = f"/api/v1/dashboard/{work.dashboard_id}/charts"
    assert [admin.call("GET", charts).status_code for _ in range(10)] == [200] * 10  # every pool holds a connection
    assert lifecycle.restart(home, "alpha", "postgres") == ["restarted alpha-postgres"]
    assert [admin.call("GET", charts).status_code for _ in range(20)] == [200] * 20
    chart = admin.find("chart", "slice_name", "Top countries")[0]
    query_context = json.loads(admin.get(f"/api/v1/chart/{chart['id']}").json()["result"]["query_context"])
    query_context["force"] = True  # built and run by the Celery worker, which stores its outcome in PostgreSQL
    assert admin.chart_data(query_context)[0]["rowcount"] == 20
