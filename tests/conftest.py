"""Shared fixtures: a throwaway SETPOINT_HOME with real instances, brought up once per session.

`make test` runs three pytest-xdist workers, each a session of its own with its own SETPOINT_HOME,
instances and loopback ports (the others' from SETPOINT_PORT_BASE). Each integration or scenario
module runs whole, in order, in one worker; modules and unit tests go to whichever worker is free.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from setpoint.errors import SetpointError
from setpoint.home import Home, data_account, superset_account
from setpoint.net import http_client
from setpoint.runtime.local import converge, lifecycle
from setpoint.runtime.local.accounts import remove_account
from setpoint.secret import SecretStore
from setpoint.services.supervisor import Supervisor
from setpoint.spec import parse_spec
from setpoint.superset_api import SupersetClient
from tests.s3_server import S3Endpoint, free_port

# A worker other than the first looks for its home's ports elsewhere: two homes allocating at once
# would otherwise both take the first free one.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if WORKER not in ("", "gw0"):
    os.environ.setdefault("SETPOINT_PORT_BASE", str(19090 + 5000 * int(WORKER.removeprefix("gw"))))

# The Superset virtualenv takes minutes to build: keep it between test sessions on this machine.
VENV_CACHE = Path(os.environ.get("SETPOINT_TEST_VENVS", "/tmp/setpoint-test-venvs"))
# Chosen per session, so two test sessions on one machine never collide.
HTTPS_PORT, HTTP_PORT = free_port(), free_port()


@pytest.fixture(scope="session")
def home() -> Home:
    """A SETPOINT_HOME of its own (reachable by the service user), torn down at the end."""
    root = Path(tempfile.mkdtemp(prefix="setpoint-test-", dir="/tmp"))
    root.chmod(0o755)
    VENV_CACHE.mkdir(parents=True, exist_ok=True)
    VENV_CACHE.chmod(0o755)
    (root / "venvs").symlink_to(VENV_CACHE)
    os.environ["SETPOINT_HOME"] = str(root)
    yield Home(root)
    Supervisor(Home(root)).shutdown()
    remove_cgroups(root)
    for name in Home(root).instance_names():  # the instances still there at the end
        remove_account(superset_account(root, name))
        remove_account(data_account(root, name))
    shutil.rmtree(root, ignore_errors=True)


def remove_cgroups(root: Path) -> None:
    """The (empty) cgroups of the session's instances: the kernel keeps them until removed."""
    from setpoint.services.cgroup import CONTROLLERS, ROOT, group_name

    home_group = group_name(root, "x").rsplit("/", 1)[0]
    for controller in CONTROLLERS:
        base = ROOT / controller / home_group
        for group in [*base.glob("*/"), base]:
            if group.is_dir():
                try:
                    group.rmdir()
                except OSError:
                    pass  # a process still exiting; harmless



# Opens each path as another account would: a directory is listed, a socket connected to, a
# file read. Prints {path: "ok" or the errno's name}.
_ACCESS_PROBE = """
import errno, json, os, socket, stat, sys
out = {}
for path in sys.argv[1:]:
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            os.listdir(path)
        elif stat.S_ISSOCK(mode):
            socket.socket(socket.AF_UNIX).connect(path)
        else:
            open(path, "rb").read(1)
        out[path] = "ok"
    except OSError as exc:
        out[path] = errno.errorcode.get(exc.errno, str(exc.errno))
print(json.dumps(out))
"""


def as_account(user: str) -> dict:
    """subprocess.run's arguments that run a command as `user` with its own groups and none of
    root's, as Setpoint runs the instances' processes (proc.run, confine)."""
    entry = pwd.getpwnam(user)
    return {"user": user, "group": entry.pw_gid, "extra_groups": os.getgrouplist(user, entry.pw_gid), "cwd": "/"}


def access_as(user: str, paths: list[Path], wrapper: list[str] = ()) -> dict[str, str]:
    """What `user` gets opening each path ("ok", "EACCES", ...), optionally through `wrapper`
    (which must drop to `user` itself, as the instance's confine command does)."""
    import json

    argv = [*wrapper, "/usr/bin/python3", "-c", _ACCESS_PROBE, *map(str, paths)]
    result = subprocess.run(argv, **({"cwd": "/"} if wrapper else as_account(user)), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


OPERATOR_VARIABLE = "SETPOINT_TEST_OPERATOR_SECRET"


def pytest_configure(config):
    if not WORKER:  # the run itself (workers inherit its environment): where every worker's figures go
        handle, path = tempfile.mkstemp(prefix="setpoint-figures-", suffix=".txt")
        os.close(handle)
        os.environ["SETPOINT_TEST_FIGURES"] = path
        os.environ["SETPOINT_TEST_LOCKS"] = tempfile.mkdtemp(prefix="setpoint-test-locks-")
        # As an operator's shell holds a secret given to `up` in a variable: no process Setpoint
        # starts for an account, nor supervisord, may keep it (test_isolation).
        os.environ[OPERATOR_VARIABLE] = "an operator's secret"


def pytest_unconfigure(config):
    if not WORKER:
        shutil.rmtree(os.environ.get("SETPOINT_TEST_LOCKS", "/nonexistent"), ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """A test marked `quiet` (one that measures latency) runs alone: it closes a turnstile that
    every other test passes through, then waits until the tests running in other workers are
    done. The others hold the run lock shared, from their setup to their teardown."""
    locks = Path(os.environ.get("SETPOINT_TEST_LOCKS", tempfile.gettempdir()))
    with open(locks / "turnstile", "a") as turnstile, open(locks / "run", "a") as run:
        quiet = item.get_closest_marker("quiet") is not None
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        if not quiet:
            fcntl.flock(run, fcntl.LOCK_SH)
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        else:
            fcntl.flock(run, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(run, fcntl.LOCK_UN)
            fcntl.flock(turnstile, fcntl.LOCK_UN)


def wait_until(predicate, timeout=120, interval=1.0):
    """Whether `predicate` became true within `timeout` seconds (an exception counts as not yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except Exception:  # noqa: BLE001 - "not yet", while a service restarts
            pass
        time.sleep(interval)
    return False


def report_figure(line: str) -> None:
    """A measured figure (a time, a count, a ratio), printed at the end of the run even when the
    test passes, so every CI log carries them."""
    with open(os.environ["SETPOINT_TEST_FIGURES"], "a") as figures:
        figures.write(line + "\n")


# Seconds each slow module took in a full run (the "time per worker and module" section of a CI
# log, 3 workers). Workers take modules in collection order (`--no-loadscope-reorder`; xdist's
# default orders them by their number of tests), so the longest go first and the short ones fill
# the gaps at the end: otherwise a long module drawn last keeps one worker busy while the others idle.
MODULE_WEIGHTS = {"test_offsite.py": 860, "test_upgrade.py": 820, "test_lifecycle.py": 690, "test_host.py": 490,
                  "test_alerts.py": 480, "test_backup.py": 475, "test_work_in_flight.py": 470, "test_containment.py": 420,
                  "test_operations.py": 360, "test_changes.py": 230, "test_sso.py": 215, "test_logs.py": 155,
                  "test_rls.py": 130, "test_screenshots.py": 80, "test_check.py": 80, "test_probes.py": 60,
                  "test_metrics.py": 30, "test_gdpr.py": 30, "test_isolation.py": 25, "test_versions.py": 20}


def pytest_collection_modifyitems(session, config, items):
    def weight(item) -> int:
        path = item.nodeid.split("::")[0]
        return 0 if path.startswith("tests/unit/") else MODULE_WEIGHTS.get(path.rsplit("/", 1)[-1], 60)

    items.sort(key=lambda item: -weight(item))  # stable: a module's tests keep their order


MODULE_SECONDS: dict[tuple[str, str], float] = {}


def pytest_runtest_logreport(report):
    """Time per module and worker (loadscope runs each module whole in one worker): where the
    suite's wall-clock time goes."""
    if not WORKER:
        worker = getattr(getattr(report, "node", None), "gateway", None)
        key = (getattr(worker, "id", "main"), report.nodeid.split("::")[0])
        MODULE_SECONDS[key] = MODULE_SECONDS.get(key, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    if WORKER:
        return
    if MODULE_SECONDS:
        terminalreporter.section("time per worker and module")
        for worker in sorted({w for w, _ in MODULE_SECONDS}):
            modules = sorted(((m, t) for (w, m), t in MODULE_SECONDS.items() if w == worker), key=lambda x: -x[1])
            terminalreporter.write_line(f"{worker}: {sum(t for _, t in modules):.0f} s in {len(modules)} modules; "
                                        + ", ".join(f"{m.split('/')[-1]} {t:.0f} s" for m, t in modules[:8]))
    figures = Path(os.environ.get("SETPOINT_TEST_FIGURES", "/nonexistent"))
    lines = figures.read_text().splitlines() if figures.exists() else []
    if lines:
        terminalreporter.section("figures measured in this run")
        for line in lines:
            terminalreporter.write_line(line)
    figures.unlink(missing_ok=True)


def make_spec(name: str, **fields):
    return parse_spec({"name": name, "https_port": HTTPS_PORT, "http_port": HTTP_PORT, **fields})


@pytest.fixture(scope="session")
def instance(home):
    """One real instance with the sample dashboard: (spec, first UpReport)."""
    spec = make_spec("alpha")
    report = converge.up(home, spec, log=lambda s: print("  alpha:", s))
    return spec, report


@pytest.fixture(scope="session")
def secrets(home, instance):
    return SecretStore(home.instance("alpha").secrets_file).load()


@pytest.fixture(scope="session")
def ca_root(instance) -> Path:
    return Path(instance[1].ca_root)


@pytest.fixture()
def http(instance, ca_root):
    """An HTTPS client of the instance that verifies Caddy's local CA."""
    with http_client(instance[0].url, ca_file=ca_root, follow_redirects=False) as client:
        yield client


@pytest.fixture(scope="session")
def admin(instance, ca_root, secrets):
    """A logged-in admin API client (one login for the whole session: logins are rate-limited)."""
    with http_client(instance[0].url, ca_file=ca_root, timeout=60) as client:
        api = SupersetClient(client)
        assert api.login("admin", secrets["admin_password"]).status_code == 200
        yield api


USER_PASSWORD = "a user passphrase long enough 2026"


@pytest.fixture(scope="module")
def role_ids(admin):
    return {r["name"]: r["id"] for r in admin.get("/api/v1/security/roles/?q=(page_size:100)").json()["result"]}


# A count of rows, as a chart's metric.
COUNT = {"expressionType": "SQL", "sqlExpression": "count(*)", "label": "n"}


def chart_data(client: SupersetClient, dataset: int, result_type: str = "full", result_format: str = "json", **query):
    """The chart-data API's answer (full JSON results wait for the worker, as a browser does);
    None when Superset refuses the query."""
    context = {"datasource": {"id": dataset, "type": "table"}, "force": True, "result_format": result_format,
               "result_type": result_type, "queries": [{"row_limit": 1000, **query}]}
    if result_format == "csv":
        return client.call("POST", "/api/v1/chart/data", json=context)
    try:
        return client.chart_data(context)[0]["data"]
    except SetpointError:
        return None


def counts_by_region(client: SupersetClient, dataset: int, **query) -> dict[str, int]:
    rows = chart_data(client, dataset, columns=["region"], metrics=[COUNT], **query)
    assert rows is not None
    return {row["region"]: row["n"] for row in rows}


@pytest.fixture(scope="module")
def login_address(request) -> str:
    """The address a module's users log in from: logins are limited per address and minute, and
    modules run side by side, so each has its own (127.0.X.Y from its name; the hand-picked
    addresses of the modules that attack the limit are 127.0.0.X)."""
    digest = hashlib.sha256(request.module.__name__.encode()).digest()
    return f"127.0.{1 + digest[0] % 254}.{1 + digest[1] % 254}"


@pytest.fixture(scope="module")
def make_user(admin, instance, ca_root, role_ids, login_address):
    """A user of the session's instance holding `roles`, logged in through the API (its client has
    `username` and `user_id`); deleted at the end of the module."""
    made = []

    def make(*roles: str) -> SupersetClient:
        username = f"user-{uuid.uuid4().hex[:6]}"
        created = admin.post("/api/v1/security/users/", json={
            "first_name": "Some", "last_name": "User", "username": username, "email": f"{username}@example.com",
            "active": True, "roles": [role_ids[r] for r in roles], "password": USER_PASSWORD})
        assert created.status_code == 201, created.text
        made.append(created.json()["id"])
        client = SupersetClient(http_client(instance[0].url, ca_file=ca_root, timeout=60, local_address=login_address))
        assert client.login(username, USER_PASSWORD).status_code == 200
        client.username, client.user_id = username, created.json()["id"]
        return client

    yield make
    for user_id in made:
        admin.call("DELETE", f"/api/v1/security/users/{user_id}")  # some are gone already


def form_token(client, path: str) -> str:
    """The CSRF token of the form a page carries (the login page, the sign-out page)."""
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', client.get(path).text).group(1)


def form_login(client, username: str, password: str):
    """Log in as the login page does: its CSRF token, a Referer, a form POST."""
    return client.post("/login/", data={"username": username, "password": password, "csrf_token": form_token(client, "/login/")},
                       headers={"Referer": str(client.base_url.join("/login/"))})


def form_logout(client):
    """Sign out as the sign-out page's button does: a POST with its CSRF token."""
    return client.post("/logout/", data={"csrf_token": form_token(client, "/logout/")})


def run_cli(*args: str, home: Home | None = None) -> subprocess.CompletedProcess:
    """The real `setpoint` command, as a user types it."""
    env = dict(os.environ)
    if home is not None:
        env["SETPOINT_HOME"] = str(home.root)
    return subprocess.run(
        [sys.executable, "-m", "setpoint.cli", *args], capture_output=True, text=True, env=env, timeout=900
    )


def component_state(home: Home, name: str, component: str) -> lifecycle.ComponentStatus:
    status = lifecycle.instance_status(home, name)
    return next(c for c in status.components if c.component == component)


STOCK_KEY = "thisISaSECRET_1234"  # the docker-compose default: a known key (CVE-2023-27524)


@pytest.fixture(scope="session")
def stock_superset(home, instance):
    """Superset as the install guide starts it: `superset run`, SQLite, a config file holding a
    known default SECRET_KEY, and admin/admin. Yields (url, config_file, metadata_uri, python)."""
    from setpoint.services.superset import venv_dir

    venv = venv_dir(home, "6.1.0")
    root = home.root / "stock"
    root.mkdir()
    config = root / "superset_config.py"
    config.write_text(f"SECRET_KEY = {STOCK_KEY!r}\n")
    env = {**os.environ, "SUPERSET_CONFIG_PATH": str(config), "SUPERSET_HOME": str(root), "FLASK_APP": "superset"}
    superset = str(venv / "bin" / "superset")
    for args in (["db", "upgrade"],
                 ["fab", "create-admin", "--username", "admin", "--firstname", "A", "--lastname", "B",
                  "--email", "admin@example.com", "--password", "admin"],
                 ["init"]):
        subprocess.run([superset, *args], env=env, cwd=root, check=True, capture_output=True, timeout=300)
    port = free_port()
    server = subprocess.Popen([superset, "run", "-h", "127.0.0.1", "-p", str(port), "--with-threads"],
                              env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "health", timeout=2).text == "OK":
                break
        except httpx.HTTPError:
            pass
        time.sleep(1)
    else:
        server.kill()
        raise RuntimeError("stock Superset did not start")
    yield url, config, f"sqlite:///{root}/superset.db", venv / "bin" / "python"
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture(scope="session")
def s3_endpoint(home):
    """An S3-compatible server on loopback (tests/s3_server.py), its keys in the environment."""
    endpoint = S3Endpoint(home.root / "s3")
    endpoint.start()
    os.environ.update(endpoint.env)
    yield endpoint
    endpoint.close()
