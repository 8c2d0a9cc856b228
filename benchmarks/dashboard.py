"""How fast a Setpoint instance serves a dashboard, and in how much memory, against a hand-tuned
Superset 6.1.0 measured in the same run on the same host.

Both serve the same 10-chart dashboard over the same 2,000,000-row PostgreSQL table:
- Setpoint: an instance made by `setpoint up` on a throwaway SETPOINT_HOME, through its public
  URL (Caddy, TLS), asynchronous queries on (a 202, polling /api/v1/async_event/ every 0.5 s as
  the frontend does, then the result);
- the baseline: the same Superset virtualenv under gunicorn with 4 gevent workers, Redis for every
  cache, PostgreSQL metadata (a database of its own in the same cluster), asynchronous queries off,
  reached directly on loopback.

Virtual users log in (each from its own loopback address, as the login rate limit counts per
client), then open the dashboard as the frontend does: the 10 chart-data requests at once, then
1 s of think time, in a closed loop. Runs are interleaved, the host idle before each:
1, 10 and 50 users with warm caches, 10 users forcing every query (`force`), and one cold
dashboard after a restart and a cache flush. Then each one's memory (PSS) idle and at its peak,
and the CPU each load cost per chart answered, by process group (PostgreSQL, which both query,
and Setpoint's Caddy included): where the time goes.
Last, what observing the instance costs: Setpoint at 10 users with the host's monitoring stack
(Prometheus scraping, exporters, probes, the log store) running, then stopped, interleaved.

    make bench                                        # about 15 minutes
    .venv/bin/python -m benchmarks.dashboard --seconds 20 --users 1,10
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.common import throwaway_home
from setpoint import examples
from setpoint.host.capacity import process_tree, pss_mib
from setpoint.home import Home
from setpoint.errors import SetpointError
from setpoint.net import http_client
from setpoint.readiness import wait_until
from setpoint.render import REDIS_DB
from setpoint.runtime.local import converge, lifecycle
from setpoint.runtime.local.instance import load_context
from setpoint.secret import SecretStore, generate_secret
from setpoint.services.postgres import cluster_of
from setpoint.services.supervisor import Supervisor
from setpoint.spec import parse_spec
from setpoint.superset_api import SupersetClient
from tests.s3_server import free_port

ROWS = 2_000_000
FACTS_SQL = f"""
DROP TABLE IF EXISTS bench_facts;
CREATE TABLE bench_facts AS
SELECT timestamp '2025-01-01' + (g % 525600) * interval '1 minute' AS ts,
       (ARRAY['Europe','North America','Asia','South America','Africa','Oceania'])[1 + g % 6] AS region,
       'Country ' || lpad((g % 60)::text, 2, '0') AS country,
       (ARRAY['Classic Cars','Motorcycles','Planes','Ships','Trains','Trucks','Vintage Cars'])[1 + (g / 7) % 7] AS product,
       (ARRAY['Online','Retail','Partner'])[1 + (g / 11) % 3] AS channel,
       ((g::bigint * 7919) % 100000) / 100.0 AS amount,
       1 + (g * 31) % 20 AS quantity
FROM generate_series(1, {ROWS}) AS g;
ANALYZE bench_facts;
GRANT SELECT ON bench_facts TO {examples.READER_ROLE};
"""
THINK_S = 1.0
POLL_S = 0.5  # GLOBAL_ASYNC_QUERIES_POLLING_DELAY, Superset's default: how often the frontend asks


def _sql(expression: str, label: str) -> dict:
    return {"expressionType": "SQL", "sqlExpression": expression, "label": label}


REVENUE, UNITS = _sql("SUM(amount)", "revenue"), _sql("SUM(quantity)", "units")
# The dashboard's 10 charts, as the query objects their chart-data requests carry: a big number,
# bars, a top 20, time series at three grains, a pivot, buckets, a distinct count, a filtered one.
CHARTS = {
    "total revenue": {"metrics": [REVENUE]},
    "revenue by region": {"columns": ["region"], "metrics": [REVENUE], "orderby": [[REVENUE, False]]},
    "top 20 countries": {"columns": ["country"], "metrics": [_sql("COUNT(*)", "orders")], "row_limit": 20,
                         "orderby": [[_sql("COUNT(*)", "orders"), False]]},
    "monthly revenue": {"columns": [_sql("date_trunc('month', ts)", "month")], "metrics": [REVENUE]},
    "weekly revenue in Europe": {"columns": [_sql("date_trunc('week', ts)", "week")], "metrics": [REVENUE],
                                 "filters": [{"col": "region", "op": "==", "val": "Europe"}]},
    "daily units in December": {"columns": [_sql("date_trunc('day', ts)", "day")], "metrics": [UNITS],
                                "filters": [{"col": "ts", "op": ">=", "val": "2025-12-01"}]},
    "product by channel": {"columns": ["product", "channel"], "metrics": [REVENUE, UNITS]},
    "average basket by product": {"columns": ["product"], "metrics": [_sql("AVG(quantity)", "basket")]},
    "orders by amount bucket": {"columns": [_sql("floor(amount / 100) * 100", "bucket")],
                                "metrics": [_sql("COUNT(*)", "orders")]},
    "countries per region": {"columns": ["region"], "metrics": [_sql("COUNT(DISTINCT country)", "countries")]},
}


def chart_requests(dataset: int, force: bool) -> list[dict]:
    return [{"datasource": {"id": dataset, "type": "table"}, "force": force, "result_format": "json",
             "result_type": "full", "queries": [{"row_limit": 10000, **query}]} for query in CHARTS.values()]


@dataclass
class Server:
    """One Superset under test: where it answers and how to log in."""

    name: str
    url: str
    ca_file: Path | None  # Caddy's local CA, for Setpoint's HTTPS
    username: str
    password: str
    dataset: int = 0
    pids: dict[str, list[int]] = field(default_factory=dict)  # process group -> root pids, for PSS
    # Beyond its own processes, what else its answers cost CPU in: Setpoint's Caddy, the cluster
    # that holds the benchmark's table (Setpoint's own PostgreSQL, which the baseline queries too).
    serving_pids: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class Run:
    server: str
    users: int
    force: bool
    seconds: float
    dashboards: list[float] = field(default_factory=list)
    charts: list[float] = field(default_factory=list)
    cached: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    cpu_ms_per_chart: dict[str, float] = field(default_factory=dict)  # by process group

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def summary(self) -> dict:
        def pct(values: list[float], q: int) -> float | None:
            return round(statistics.quantiles(values, n=100)[q - 1] * 1000) if len(values) >= 2 else None
        return {"server": self.server, "users": self.users, "force": self.force,
                "chart_rps": round(len(self.charts) / self.seconds, 2),
                "chart_ms": {f"p{q}": pct(self.charts, q) for q in (50, 95, 99)},
                "dashboard_ms": {f"p{q}": pct(self.dashboards, q) for q in (50, 95, 99)},
                "dashboards": len(self.dashboards), "cache_hit_ratio": round(self.cached / len(self.charts), 3) if self.charts else None,
                "errors": self.errors, "cpu_ms_per_chart": self.cpu_ms_per_chart}


class Visitor:
    """One user's browser: its own cookies (Superset's async channel lives in one) and address."""

    def __init__(self, server: Server, address: str) -> None:
        self.server = server
        self.http = http_client(server.url, ca_file=server.ca_file, timeout=120, local_address=address)
        self.api = SupersetClient(self.http)
        answer = self.api.login(server.username, server.password)
        if answer.status_code != 200:
            raise RuntimeError(f"{server.name}: login answered {answer.status_code}: {answer.text[:200]}")
        self.api.get("/api/v1/me/")  # sets the async-token cookie: this browser's event channel
        self.last_event = "0"

    def open_dashboard(self, bodies: list[dict], run: Run) -> None:
        started = time.monotonic()
        with ThreadPoolExecutor(len(bodies)) as pool:
            answers = list(pool.map(self._post, bodies))
        times: list[float | None] = [None] * len(bodies)
        pending = {}
        for i, (answer, at) in enumerate(answers):
            if answer is None:
                continue
            if answer.status_code == 202:
                pending[answer.json()["job_id"]] = i
            elif answer.status_code == 200:
                times[i] = at - started
                run.cached += bool(answer.json()["result"][0].get("is_cached"))
            else:
                run.error(f"HTTP {answer.status_code}")
        deadline = time.monotonic() + 120
        while pending and time.monotonic() < deadline:
            time.sleep(POLL_S)
            events = self.api.call("GET", f"/api/v1/async_event/?last_id={self.last_event}")
            if events.status_code != 200:
                run.error(f"async_event HTTP {events.status_code}")
                continue
            for event in events.json()["result"]:
                self.last_event = event["id"]
                i = pending.pop(event["job_id"], None)
                if i is None:
                    continue
                if event["status"] != "done":
                    run.error(f"async {event['status']}")
                    continue
                result = self.api.call("GET", event["result_url"])
                if result.status_code == 200:
                    # A 202 was a cache miss: the worker ran the query (its result, read back from
                    # the cache, always says is_cached).
                    times[i] = time.monotonic() - started
                else:
                    run.error(f"result HTTP {result.status_code}")
        for _ in pending:
            run.error("async timeout")
        done = [t for t in times if t is not None]
        run.charts.extend(done)
        if len(done) == len(bodies):
            run.dashboards.append(max(done))

    def _post(self, body: dict) -> tuple[httpx.Response | None, float]:
        try:
            answer = self.api.call("POST", "/api/v1/chart/data", json=body)
        except httpx.HTTPError:
            return None, time.monotonic()
        return answer, time.monotonic()

    def close(self) -> None:
        self.http.close()


def load(server: Server, users: int, seconds: float, force: bool) -> Run:
    """`users` visitors opening the dashboard in a closed loop for `seconds` (after logging in)."""
    visitors = [Visitor(server, f"127.0.1.{10 + i}") for i in range(users)]
    bodies = chart_requests(server.dataset, force)
    run = Run(server.name, users, force, seconds)
    end = time.monotonic() + seconds

    def loop(visitor: Visitor) -> None:
        while time.monotonic() < end:
            try:
                visitor.open_dashboard(bodies, run)
            except httpx.HTTPError as exc:
                run.error(type(exc).__name__)
            time.sleep(THINK_S)

    threads = [threading.Thread(target=loop, args=(v,)) for v in visitors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for v in visitors:
        v.close()
    return run


def wait_idle(limit: float = 0.3, timeout: float = 60) -> None:
    """Until the host's 1-minute load average per core falls under `limit` (or `timeout`)."""
    deadline = time.monotonic() + timeout
    while os.getloadavg()[0] / os.cpu_count() > limit and time.monotonic() < deadline:
        time.sleep(2)


def pss(server: Server) -> dict[str, float]:
    return {group: round(sum(pss_mib(p) for p in process_tree(roots)), 1) for group, roots in server.pids.items()}


def cpu_seconds(server: Server) -> dict[str, float]:
    """The CPU time each process group of the server has used, its exited processes' included (a
    parent counts its reaped children's: PostgreSQL's backends, gunicorn's recycled workers)."""
    ticks = os.sysconf("SC_CLK_TCK")

    def used(pid: int) -> int:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0
        return sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime

    groups = {**server.pids, **server.serving_pids}
    return {group: sum(used(p) for p in process_tree(roots)) / ticks for group, roots in groups.items()}


# --- Setpoint's instance ------------------------------------------------------------------

def setpoint_server(home: Home) -> Server:
    spec = parse_spec({"name": "bench", "https_port": free_port(), "http_port": free_port(), "concurrent_users": 50})
    started = time.monotonic()
    converge.up(home, spec, step=lambda s: print(f"  setpoint: {time.monotonic() - started:5.0f} s {s}", flush=True))
    ctx = load_context(home, "bench")
    cluster_of(ctx).sql(FACTS_SQL, database=examples.EXAMPLES_DB, timeout=900)
    secrets = SecretStore(ctx.paths.secrets_file).load()
    server = Server("setpoint", spec.url, home.caddy_dir / "data" / "pki" / "authorities" / "local" / "root.crt",
                    spec.admin.username, secrets["admin_password"])
    server.dataset = register_dataset(server, examples.DATABASE_NAME)
    server.pids = {c: [s.pid] for c in ("web", "worker", "beat", "postgres", "redis")
                   for n, s in Supervisor(home).states("bench").items() if n.endswith(f"-{c}")}
    server.serving_pids = {"caddy": [Supervisor(home).states()["caddy"].pid]}
    return server


def wait_drained(home: Home, timeout: float = 600) -> None:
    """Until Setpoint's Celery queue is empty: a load leaves the queries it asked for running after
    it ends, and the next load (or a restart's requeue) would meet them."""
    redis = lifecycle.instance_redis(load_context(home, "bench"))
    deadline = time.monotonic() + timeout
    while redis.command("-n", str(REDIS_DB["broker"]), "LLEN", "celery").strip() not in ("0", "") \
            and time.monotonic() < deadline:
        time.sleep(2)
    time.sleep(5)  # the last task taken from the queue finishes


def flush_setpoint(home: Home) -> None:
    """A cold start: Superset's processes restarted, every cached result and metadata gone."""
    ctx = load_context(home, "bench")
    redis = lifecycle.instance_redis(ctx)
    for db in ("caches", "query_results", "async_events"):
        redis.command("-n", str(REDIS_DB[db]), "FLUSHDB")
    lifecycle.restart(home, "bench")


# --- The hand-tuned baseline ---------------------------------------------------------------

BASELINE_CONFIG = """
SECRET_KEY = {secret!r}
SQLALCHEMY_DATABASE_URI = {uri!r}
SQLALCHEMY_ENGINE_OPTIONS = {{"pool_size": 10, "max_overflow": 10, "pool_pre_ping": True}}
def _cache(prefix, db):
    return {{"CACHE_TYPE": "RedisCache", "CACHE_DEFAULT_TIMEOUT": 86400, "CACHE_KEY_PREFIX": prefix,
             "CACHE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/{{db}}"}}
CACHE_CONFIG = _cache("superset_", 0)
DATA_CACHE_CONFIG = _cache("superset_data_", 1)
FILTER_STATE_CACHE_CONFIG = _cache("superset_filter_", 2)
EXPLORE_FORM_DATA_CACHE_CONFIG = _cache("superset_explore_", 2)
RATELIMIT_ENABLED = False
TALISMAN_ENABLED = False
WTF_CSRF_ENABLED = True
"""


class Baseline:
    """A hand-tuned Superset from the same virtualenv: 4 gevent workers, Redis caches."""

    def __init__(self, home: Home, setpoint: Server) -> None:
        ctx = load_context(home, "bench")
        self.venv, self.cluster = ctx.venv, cluster_of(ctx)
        self.cluster_pids = setpoint.pids["postgres"]  # its metadata and the table are in that cluster
        self.dir = Path(tempfile.mkdtemp(prefix="baseline-", dir="/tmp"))
        self.port, self.redis_port = free_port(), free_port()
        password = generate_secret(24)
        self.cluster.sql(f"CREATE ROLE baseline LOGIN PASSWORD '{password}'")
        self.cluster.sql("CREATE DATABASE baseline OWNER baseline")
        uri = f"postgresql+psycopg2://baseline:{password}@127.0.0.1:{ctx.ports.postgres}/baseline"
        (self.dir / "superset_config.py").write_text(BASELINE_CONFIG.format(
            secret=generate_secret(64), uri=uri, redis_port=self.redis_port))
        self.env = {**os.environ, "SUPERSET_CONFIG_PATH": str(self.dir / "superset_config.py"),
                    "SUPERSET_HOME": str(self.dir), "FLASK_APP": "superset.app:create_app()"}
        self.redis = subprocess.Popen(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "no", "--maxmemory", "512mb",
                                       "--maxmemory-policy", "allkeys-lru"], stdout=subprocess.DEVNULL)
        self.web: subprocess.Popen | None = None
        self.admin_password = generate_secret(24)
        self.reader_password = SecretStore(ctx.paths.secrets_file).load()["examples_reader_password"]
        self.examples_port = ctx.ports.postgres

    def superset(self, *args: str) -> None:
        subprocess.run([str(self.venv / "bin" / "superset"), *args], env=self.env, cwd=self.dir, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900)

    def start(self) -> Server:
        print("  baseline: migrating and initialising its metadata", flush=True)
        self.superset("db", "upgrade")
        self.superset("fab", "create-admin", "--username", "admin", "--firstname", "a", "--lastname", "b",
                      "--email", "admin@example.com", "--password", self.admin_password)
        self.superset("init")
        self.start_web()
        server = Server("baseline", f"http://127.0.0.1:{self.port}", None, "admin", self.admin_password)
        api = SupersetClient(http_client(server.url, timeout=60))
        api.login("admin", self.admin_password)
        api.post("/api/v1/database/", json={
            "database_name": "bench", "sqlalchemy_uri":
            f"postgresql+psycopg2://{examples.READER_ROLE}:{self.reader_password}@127.0.0.1:{self.examples_port}/{examples.EXAMPLES_DB}"})
        server.dataset = register_dataset(server, "bench")
        server.pids = {"web": [self.web.pid], "redis": [self.redis.pid]}
        server.serving_pids = {"postgres": self.cluster_pids}
        return server

    def start_web(self) -> None:
        self.web = subprocess.Popen(
            [str(self.venv / "bin" / "gunicorn"), "-w", "4", "-k", "gevent", "--worker-connections", "1000",
             "--timeout", "300", "-b", f"127.0.0.1:{self.port}", "--limit-request-line", "0",
             "--limit-request-field_size", "0", "superset.app:create_app()"],
            env=self.env, cwd=self.dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=5).text == "OK"
            except httpx.HTTPError:
                return False

        wait_until(healthy, 180, SetpointError("the baseline's gunicorn did not answer /health within 180 s",
                                               f"see its configuration in {self.dir}"), interval=1)

    def flush(self) -> None:
        """A cold start, as for Setpoint: gunicorn restarted, Redis emptied."""
        self.web.terminate()
        self.web.wait(timeout=60)
        subprocess.run(["redis-cli", "-p", str(self.redis_port), "FLUSHALL"], check=True, stdout=subprocess.DEVNULL)
        self.start_web()

    def close(self) -> None:
        for process in (self.web, self.redis):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


def register_dataset(server: Server, database_name: str) -> int:
    with http_client(server.url, ca_file=server.ca_file, timeout=60) as http:
        api = SupersetClient(http)
        api.login(server.username, server.password)
        database = next(d["id"] for d in api.get("/api/v1/database/?q=(page_size:100)").json()["result"]
                        if d["database_name"] == database_name)
        return api.post("/api/v1/dataset/", json={"database": database, "schema": "public",
                                                   "table_name": "bench_facts"}).json()["id"]


# --- The run ---------------------------------------------------------------------------------

def ratio(value: float | None, base: float | None) -> float | None:
    return round(value / base, 2) if value and base else None


def compare(runs: list[dict]) -> list[dict]:
    """Each Setpoint figure beside the baseline's of the same load, and their ratio."""
    rows = []
    for mine in (r for r in runs if r["server"] == "setpoint"):
        base = next(r for r in runs if r["server"] == "baseline" and (r["users"], r["force"]) == (mine["users"], mine["force"]))
        rows.append({"users": mine["users"], "force": mine["force"],
                     "chart_rps": (mine["chart_rps"], base["chart_rps"], ratio(mine["chart_rps"], base["chart_rps"])),
                     "dashboard_p95_ms": (mine["dashboard_ms"]["p95"], base["dashboard_ms"]["p95"],
                                          ratio(mine["dashboard_ms"]["p95"], base["dashboard_ms"]["p95"])),
                     "chart_p95_ms": (mine["chart_ms"]["p95"], base["chart_ms"]["p95"],
                                      ratio(mine["chart_ms"]["p95"], base["chart_ms"]["p95"])),
                     "errors": (sum(mine["errors"].values()), sum(base["errors"].values())),
                     "cache_hit_ratio": (mine["cache_hit_ratio"], base["cache_hit_ratio"])})
    return rows


def load_label(row: dict) -> str:
    return f"{row['users']} user(s){', force' if row['force'] else ', warm'}"


def print_report(report: dict) -> None:
    print("\nload                        Setpoint   baseline   ratio")
    for row in report["comparison"]:
        load_name = load_label(row)
        for key in ("chart_rps", "dashboard_p95_ms", "chart_p95_ms"):
            mine, base, r = row[key]
            print(f"  {load_name:<16} {key:<18} {mine!s:>8} {base!s:>9} {r!s:>7}")
        print(f"  {load_name:<16} {'errors':<18} {row['errors'][0]:>8} {row['errors'][1]:>9}")
        print(f"  {load_name:<16} {'cache hits':<18} {row['cache_hit_ratio'][0]!s:>8} {row['cache_hit_ratio'][1]!s:>9}")
    print("\nCPU per chart answered (ms, from the load's start until its queries are done)")
    for row in report["runs"]:
        load_name = load_label(row)
        spent = row["cpu_ms_per_chart"]
        print(f"  {row['server']:<9} {load_name:<16} {sum(spent.values()):7.1f}  {spent}")
    cold = report["cold_dashboard_s"]
    print(f"  cold dashboard (s)                  {cold['setpoint']:>8} {cold['baseline']:>9} "
          f"{ratio(cold['setpoint'], cold['baseline'])!s:>7}")
    if "monitoring" in report:
        print("\nSetpoint at 10 users, warm     monitoring on       off   ratio")
        for key, value in report["monitoring"]["ratio"].items():
            print(f"  {key:<28} {report['monitoring']['on'][key]!s:>9} {report['monitoring']['off'][key]!s:>9} {value!s:>7}")
    for phase in ("idle", "peak"):
        mine, base = (sum(report["pss_mib"][phase][s].values()) for s in ("setpoint", "baseline"))
        print(f"  PSS {phase} (MiB, every process)     {mine:>8.0f} {base:>9.0f} {ratio(mine, base)!s:>7}")
        print(f"    setpoint: {report['pss_mib'][phase]['setpoint']}  baseline: {report['pss_mib'][phase]['baseline']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", default="1,10,50", help="warm loads, comma-separated numbers of users")
    parser.add_argument("--seconds", type=float, default=45, help="length of each load")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results-dashboard.json"))
    args = parser.parse_args(argv)
    levels = [int(n) for n in args.users.split(",")]
    with throwaway_home() as home:
        print("setting up both servers (about 5 minutes)", flush=True)
        setpoint = setpoint_server(home)
        baseline_process = Baseline(home, setpoint)
        try:
            baseline = baseline_process.start()
            servers = [baseline, setpoint]
            report: dict = {"rows": ROWS, "charts": len(CHARTS), "runs": [], "pss_mib": {"idle": {}, "peak": {}}}
            for server in servers:
                wait_idle()
                report["pss_mib"]["idle"][server.name] = pss(server)
            peak = {s.name: {} for s in servers}
            # Warm the caches once, then each load on each server, interleaved.
            for server in servers:
                load(server, 1, 5, force=False)
            for users, force in [*((n, False) for n in levels), (10, True)]:
                for server in servers:
                    wait_idle()
                    print(f"  {server.name}: {users} user(s){' forcing queries' if force else ''} for {args.seconds:.0f} s",
                          flush=True)
                    sampler, cpu_before = PeakSampler(server), cpu_seconds(server)
                    run = load(server, users, args.seconds, force)
                    peak[server.name] = {g: max(v, peak[server.name].get(g, 0)) for g, v in sampler.stop().items()}
                    if server is setpoint:  # the queries it queued are the load's too
                        wait_drained(home)
                    run.cpu_ms_per_chart = {g: round((used - cpu_before[g]) * 1000 / max(1, len(run.charts)), 1)
                                            for g, used in cpu_seconds(server).items()}
                    report["runs"].append(run.summary())
                    print(f"    {json.dumps(run.summary())}", flush=True)
            report["pss_mib"]["peak"] = peak
            cold = {}
            for server, flush in ((setpoint, lambda: flush_setpoint(home)), (baseline, baseline_process.flush)):
                print(f"  {server.name}: one cold dashboard after a restart and a cache flush", flush=True)
                flush()
                wait_idle()
                run = load(server, 1, 0.1, force=False)  # one dashboard: the first after the restart
                cold[server.name] = round(run.dashboards[0], 2) if run.dashboards else None
            report["cold_dashboard_s"] = cold
            report["comparison"] = compare(report["runs"])
            report["monitoring"] = monitoring_cost(home, setpoint, args.seconds)
        finally:
            baseline_process.close()
            lifecycle.destroy(home, "bench")
    print_report(report)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nfigures written to {args.json}")
    return 0


MONITORING_PROGRAMS = ("prometheus", "alertmanager", "node-exporter", "blackbox", "postgres-exporter",
                       "redis-exporter", "logstore")


def monitoring_cost(home: Home, setpoint: Server, seconds: float, rounds: int = 2) -> dict:
    """Setpoint's warm dashboards at 10 users with the host's monitoring running and stopped,
    interleaved `rounds` times: the latency the observing adds (the issue's budget is 5%)."""
    supervisor = Supervisor(home)
    runs: dict[str, list[dict]] = {"on": [], "off": []}
    try:
        for _ in range(rounds):
            for state in ("on", "off"):
                (supervisor.start if state == "on" else supervisor.stop)(*MONITORING_PROGRAMS)
                wait_idle()
                print(f"  setpoint: 10 users, monitoring {state}, for {seconds:.0f} s", flush=True)
                runs[state].append(load(setpoint, 10, seconds, force=False).summary())
    finally:
        supervisor.start(*MONITORING_PROGRAMS)

    picks = {"chart_rps": lambda r: r["chart_rps"], "chart_p50_ms": lambda r: r["chart_ms"]["p50"],
             "chart_p95_ms": lambda r: r["chart_ms"]["p95"], "dashboard_p95_ms": lambda r: r["dashboard_ms"]["p95"]}
    figures = {state: {key: round(statistics.fmean(pick(r) for r in runs[state]), 1) for key, pick in picks.items()}
               for state in runs}
    return {**figures, "ratio": {key: ratio(figures["on"][key], figures["off"][key]) for key in figures["on"]}}


class PeakSampler:
    """The highest PSS of each process group while a load runs (sampled every 2 s)."""

    def __init__(self, server: Server) -> None:
        self.server, self.peak, self.done = server, {}, threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.done.wait(2):
            for group, value in pss(self.server).items():
                self.peak[group] = max(value, self.peak.get(group, 0))

    def stop(self) -> dict[str, float]:
        self.done.set()
        self.thread.join()
        return self.peak


if __name__ == "__main__":
    sys.exit(main())
