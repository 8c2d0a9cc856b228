"""An instance's admin cannot reach beyond the instance: each attack of the security review,
made as that admin through Superset's own API, is refused by the database guard."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from setpoint import examples
from setpoint.runtime.local.instance import load_context
from setpoint.services.postgres import cluster_of
from tests.conftest import OPERATOR_VARIABLE, access_as, as_account

REFUSED = "Setpoint refuses this database"


def test_connection(admin, uri: str, extra: dict | None = None):
    body = {"sqlalchemy_uri": uri, "database_name": "attack"}
    if extra is not None:
        body["extra"] = json.dumps(extra)
    return admin.call("POST", "/api/v1/database/test_connection/", json=body)


test_connection.__test__ = False  # a helper, not a test


@pytest.fixture(scope="module")
def ports(home, instance):
    return home.instance("alpha").read_state()["ports"]


def test_socket_uris_to_postgres_are_refused(home, admin, ports):
    run = home.instance("alpha").run
    # Before the guard: OK, as a superuser (peer authentication of the OS user Superset runs as).
    for uri in (f"postgresql://setpoint@/superset?host={run}&port={ports['postgres']}",
                f"postgresql+psycopg2://setpoint@/postgres?host={run}&port={ports['postgres']}",
                "postgresql://setpoint@/postgres",  # no host at all: libpq's default socket
                f"postgresql://setpoint@/superset?host={home.root}/instances/bars/run&port=20004"):
        response = test_connection(admin, uri)
        assert response.status_code >= 400 and REFUSED in response.text, uri


@pytest.mark.parametrize("uri", ["shillelagh+sqlglot://", "shillelagh+csv://", "shillelagh://", "duckdb:///:memory:",
                                 "duckdb:////etc/passwd", "postgresql://u:p@127.0.0.1:5432/x",
                                 "postgresql://u:p@169.254.169.254/x", "postgresql://u:p@10.0.0.1/x",
                                 "mysql://u:p@93.184.216.34/x"])
def test_file_reading_drivers_and_internal_targets_are_refused(admin, uri):
    response = test_connection(admin, uri)
    # Superset 6.1 itself refuses the plain shillelagh dialect before the guard sees it.
    superset_own = "cannot be used as a data source for security reasons"
    assert response.status_code >= 400 and (REFUSED in response.text or superset_own in response.text), uri


def test_answers_do_not_tell_an_open_port_from_a_closed_one(admin, ports):
    open_port = test_connection(admin, f"postgresql://u:p@127.0.0.1:{ports['redis']}/x")
    closed_port = test_connection(admin, "postgresql://u:p@127.0.0.1:1/x")
    http_port = test_connection(admin, f"postgresql://u:p@127.0.0.1:{ports['web']}/x")
    assert open_port.status_code == closed_port.status_code == http_port.status_code
    assert open_port.json() == closed_port.json() == http_port.json()


def test_a_host_hidden_in_extra_or_the_query_is_judged_too(home, admin, ports):
    run = str(home.instance("alpha").run)
    # The URL names a public address; the connection arguments would go to the local socket.
    hidden = test_connection(admin, "postgresql://setpoint@93.184.216.34/postgres",
                             {"engine_params": {"connect_args": {"host": run, "port": ports["postgres"]}}})
    assert hidden.status_code >= 400 and REFUSED in hidden.text
    query = test_connection(admin, f"postgresql://setpoint@93.184.216.34/postgres?host={run}&port={ports['postgres']}")
    assert query.status_code >= 400 and REFUSED in query.text


def test_connections_users_can_make_hold_no_server_powers(home, admin):
    cluster = cluster_of(load_context(home, "alpha"))
    powers = cluster.sql(
        "SELECT string_agg(rolname || ':' || rolsuper::text || ':' || "
        "pg_has_role(rolname, 'pg_execute_server_program', 'member')::text || ':' || "
        "pg_has_role(rolname, 'pg_read_server_files', 'member')::text, ',' ORDER BY rolname) "
        f"FROM pg_roles WHERE rolname IN ('superset', '{examples.READER_ROLE}')")
    assert powers == f"{examples.READER_ROLE}:false:false:false,superset:false:false:false"
    database = admin.find("database", "database_name", examples.DATABASE_NAME)[0]
    response = admin.call("POST", "/api/v1/sqllab/execute/",
                          json={"database_id": database["id"], "sql": "SHOW is_superuser", "runAsync": False})
    assert response.status_code == 200, response.text
    assert response.json()["data"] == [{"is_superuser": "off"}]


def test_the_instances_own_databases_still_work(admin):
    chart = admin.find("chart", "slice_name", "Top countries")[0]
    query_context = admin.get(f"/api/v1/chart/{chart['id']}").json()["result"]["query_context"]
    assert admin.chart_data(query_context)[0]["rowcount"] == 20


def test_superset_and_its_redis_run_as_the_instances_own_account_and_postgres_as_its_data_account(home, instance):
    from setpoint.host.capacity import process_tree
    from setpoint.services.supervisor import Supervisor

    ctx = load_context(home, "alpha")
    assert ctx.superset_user not in (ctx.data_user, "root") and ctx.data_user not in ("setpoint", "root")
    owners = {}
    for name, state in Supervisor(home).states("alpha").items():
        owners[name.rsplit("-", 1)[1]] = {Path(f"/proc/{pid}").owner() for pid in process_tree([state.pid])}
    data, superset = {ctx.data_user}, {ctx.superset_user}
    assert owners == {"postgres": data, "redis": superset, "web": superset, "worker": superset, "beat": superset}
    # Its secrets are a subset, readable by its group; the secret store is the data user's alone.
    assert oct(ctx.paths.superset_secrets_file.stat().st_mode & 0o777) == "0o640"
    assert ctx.paths.superset_secrets_file.group() == ctx.superset_user
    assert oct(ctx.paths.secrets_file.stat().st_mode & 0o777) == "0o600" and ctx.paths.secrets_file.owner() == ctx.data_user


def test_caddys_admin_api_is_no_tcp_port_and_closed_to_other_users(home, instance):
    """Caddy runs as an account of its own: not even the instances' accounts reach its admin API."""
    from setpoint.home import caddy_user
    from setpoint.runtime.local.platform import load_platform
    from setpoint.services.superset import base_python
    from setpoint.services.supervisor import Supervisor

    caddy = load_platform(home).caddy
    pid = Supervisor(home).states()["caddy"].pid
    assert Path(f"/proc/{pid}").owner() == caddy_user()
    listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    caddy_ports = {int(line.split()[3].rsplit(":", 1)[1]) for line in listening.splitlines() if f"pid={pid}," in line}
    assert caddy_ports and caddy_ports == caddy.listening_ports(), "Caddy listens on nothing but its sites"
    assert caddy.is_ready()  # Setpoint (root) reaches it over the socket
    probe = ("import socket, sys\n"
             "s = socket.socket(socket.AF_UNIX)\n"
             "try:\n    s.connect(sys.argv[1])\nexcept OSError as e:\n    print(type(e).__name__)\nelse:\n    print('connected')")
    ctx = load_context(home, "alpha")
    for user in ("nobody", ctx.superset_user, ctx.data_user):
        result = subprocess.run([base_python(), "-c", probe, str(caddy.admin_socket)], **as_account(user),
                                capture_output=True, text=True, timeout=30)
        assert result.stdout.strip() == "PermissionError", (user, result.stdout, result.stderr)


def import_database(admin, name: str, uri: str) -> int:
    """Import a database through Superset's importer, which stores it without connecting."""
    import io
    import uuid
    import zipfile

    import yaml

    files = {
        "metadata.yaml": {"version": "1.0.0", "type": "Database", "timestamp": "2026-01-01T00:00:00+00:00"},
        f"databases/{name}.yaml": {"database_name": name, "sqlalchemy_uri": uri, "cache_timeout": None,
                                   "expose_in_sqllab": True, "allow_run_async": False, "allow_ctas": False,
                                   "allow_cvas": False, "allow_dml": False, "allow_csv_upload": False, "extra": {},
                                   "uuid": str(uuid.uuid4()), "version": "1.0.0"},
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, content in files.items():
            archive.writestr(f"export/{path}", yaml.safe_dump(content))
    admin.post("/api/v1/database/import/", files={"formData": ("db.zip", buffer.getvalue(), "application/zip")},
               data={"passwords": json.dumps({f"databases/{name}.yaml": "x"}), "overwrite": "true"})
    return admin.find("database", "database_name", name)[0]["id"]


def test_an_imported_database_is_refused_when_used_and_named_by_up(home, admin, ports):
    from setpoint.services.superset import SupersetCommands

    run = home.instance("alpha").run
    database_id = import_database(admin, "Smuggled", f"postgresql://setpoint:x@/postgres?host={run}&port={ports['postgres']}")
    try:
        response = admin.call("POST", "/api/v1/sqllab/execute/",
                              json={"database_id": database_id, "sql": "SELECT 1", "runAsync": False})
        assert response.status_code >= 400 and REFUSED in response.text
        assert SupersetCommands(load_context(home, "alpha")).refused_databases() == ["Smuggled"]
    finally:
        admin.delete(f"/api/v1/database/{database_id}")


def test_the_hosts_monitoring_answers_no_instance_account(home, instance):
    """The monitoring services listen on loopback, where every instance's processes are too. The
    Redis exporter takes no password: its `/scrape?target=` showed any local account every
    instance's Redis, with the passwords it holds, and would connect to any address it was given
    (its errors told a closed port from an open one). It asks for a client certificate that only
    Prometheus holds; the other services ask for the monitoring password."""
    import subprocess

    from setpoint.observability.monitoring import monitoring_of

    monitoring = monitoring_of(home)
    ctx = load_context(home, "alpha")
    exporter = f"127.0.0.1:{monitoring.redis_exporter_port}"
    scrape = f"/scrape?target=redis://127.0.0.1:{home.instance('alpha').read_state()['ports']['redis']}"

    def curl(*argv: str, user: str | None = None) -> str:
        return subprocess.run(["curl", "-s", "-m", "10", *argv], **(as_account(user) if user else {}),
                              capture_output=True, text=True, timeout=30).stdout

    tls = monitoring.scrape_tls
    with_certificate = curl("--cacert", str(tls.ca), "--cert", str(tls.client_cert), "--key", str(tls.client_key),
                            f"https://{exporter}{scrape}")
    assert "redis_up 1" in with_certificate  # Prometheus's certificate
    for user in ("nobody", ctx.superset_user, ctx.data_user):
        for url in (f"http://{exporter}{scrape}", f"https://{exporter}{scrape}"):
            assert "redis_up" not in curl("-k", url, user=user), (user, url)
        assert set(access_as(user, [tls.client_key, tls.server_key]).values()) == {"EACCES"}, user
        for port in (monitoring.prometheus_port, monitoring.alertmanager_port, monitoring.node_exporter_port,
                     monitoring.blackbox_port, monitoring.postgres_exporter_port):
            code = curl("-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}/metrics", user=user)
            assert code == "401", (user, port, code)


def test_a_local_account_straight_to_gunicorn_cannot_pass_for_another_client(home, instance):
    """gunicorn listens on loopback, where any local account reaches it, Caddy bypassed. With an
    X-Forwarded-For of its own, each login counted as a new client address, so the login rate
    limit never applied (measured on demo as `nobody`: 25 wrong passwords in a row, none refused),
    and the audit trail recorded the made-up address. Only a request that carries the proxy secret
    Caddy sends keeps its forwarded headers."""
    import subprocess
    import uuid
    from datetime import datetime, timedelta, timezone

    from setpoint.observability import logstore
    from setpoint.readiness import wait_until

    paths = home.instance("alpha")
    web = paths.read_state()["ports"]["web"]
    secret = json.loads(paths.superset_secrets_file.read_text())["proxy_secret"]
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    forged, proxied = (f"forged-{uuid.uuid4().hex[:8]}" for _ in range(2))

    def login(username: str, headers: list[str], account: str | None = None) -> str:
        body = json.dumps({"username": username, "password": "wrong", "provider": "db"})
        argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "10", "-H", "Content-Type: application/json",
                *[arg for header in headers for arg in ("-H", header)], "-d", body,
                f"http://127.0.0.1:{web}/api/v1/security/login"]
        return subprocess.run(argv, **(as_account(account) if account else {}), capture_output=True, text=True,
                              timeout=30).stdout

    assert login(forged, ["X-Forwarded-For: 198.51.100.77", "X-Setpoint-Proxy: guessed"], "nobody") == "401"
    assert login(proxied, ["X-Forwarded-For: 198.51.100.78", f"X-Setpoint-Proxy: {secret}"]) == "401"

    def addresses() -> dict[str, str]:
        return {r.get("user"): r.get("ip") for r in logstore.audit_records(home, "alpha", since)
                if r.get("event") == "login_failed"}

    wait_until(lambda: {forged, proxied} <= set(addresses()), 15,
               AssertionError("the failed logins are not in the audit trail"), interval=0.5)
    assert addresses()[forged] == "127.0.0.1" and addresses()[proxied] == "198.51.100.78"


# Armed by the Superset account in the metadata database it owns: a function that tries to run a
# program on the server and writes down as whom it ran; a view `dashboards` in a schema named
# after Setpoint's superuser role (first on that role's search_path: "$user", public), and a
# trigger on ab_user, which root's emergency access and erasure update.
TRAP = """
CREATE TABLE public.trap_log (who text, superuser boolean, program text);
CREATE FUNCTION public.trap() RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE said text;
BEGIN
  BEGIN
    CREATE TEMP TABLE IF NOT EXISTS trap_out (line text);
    COPY trap_out FROM PROGRAM 'id -un';
    SELECT line INTO said FROM trap_out LIMIT 1;
  EXCEPTION WHEN others THEN said := 'refused';
  END;
  INSERT INTO public.trap_log SELECT current_user, rolsuper, said FROM pg_roles WHERE rolname = current_user;
  RETURN true;
END $$;
CREATE FUNCTION public.trap_trigger() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM public.trap(); RETURN NULL; END $$;
CREATE TRIGGER trap AFTER UPDATE ON ab_user FOR EACH STATEMENT EXECUTE FUNCTION public.trap_trigger();
CREATE SCHEMA {superuser};
CREATE VIEW {superuser}.dashboards AS SELECT d.* FROM public.dashboards d WHERE public.trap();
"""
DISARM = """
DROP TRIGGER IF EXISTS trap ON ab_user; DROP SCHEMA IF EXISTS {superuser} CASCADE;
DROP FUNCTION IF EXISTS public.trap_trigger(); DROP FUNCTION IF EXISTS public.trap(); DROP TABLE IF EXISTS public.trap_log;
"""


def test_what_root_runs_in_the_metadata_database_gives_its_owner_no_power(home, instance):
    """The Superset account holds the metadata role's password, and that role owns the metadata
    database: it can put a view or a trigger in the way of the statements root's commands and
    scheduler run there (a restore drill's counts, an emergency admin's end, an erasure). They run
    as that same role, so the trap runs without the superuser's powers: no program on the server."""
    from setpoint.backup.drill import metadata_counts
    from setpoint.render import METADATA_DATABASE

    ctx = load_context(home, "alpha")
    cluster = cluster_of(ctx)
    password = json.loads(ctx.paths.superset_secrets_file.read_text())["metadata_db_password"]

    def as_tenant(sql: str) -> None:
        done = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(ctx.ports.postgres),
                               "-U", "superset", "-d", METADATA_DATABASE], input=sql, **as_account(ctx.superset_user),
                              env={"PGPASSWORD": password, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr

    as_tenant(TRAP.format(superuser=ctx.db_superuser))
    try:
        counts = metadata_counts(cluster)  # as a restore drill counts the live metadata
        assert int(counts["dashboards"]) >= 1
        cluster.sql("UPDATE ab_user SET active = active WHERE false", database=METADATA_DATABASE)  # fires the trigger
        ran = cluster.sql("SELECT who, superuser, program FROM public.trap_log", database=METADATA_DATABASE).splitlines()
    finally:
        as_tenant(DISARM.format(superuser=ctx.db_superuser))
    assert ran, "the trigger never fired: the trap was not armed"
    assert set(ran) == {"superset|f|refused"}, ran


def test_no_process_of_the_instance_keeps_the_operators_environment_or_terminal(home, instance):
    """The suite runs with a secret in its environment (conftest's OPERATOR_VARIABLE), as the shell
    of an operator who gave `up` a secret in a variable would. Every process of an instance can
    read its own /proc/PID/environ: neither supervisord (every program inherits its environment)
    nor any process of the instance has the variable. A command root's Setpoint runs as the
    instance's account has it neither, reads nothing from root's stdin, and leads a session of its
    own, without the operator's terminal (into which it could otherwise type, TIOCSTI)."""
    from setpoint import proc
    from setpoint.host.capacity import process_tree
    from setpoint.services.supervisor import Supervisor

    assert os.environ.get(OPERATOR_VARIABLE)
    supervisor = Supervisor(home)
    assert supervisor.inherited_variables() == []
    pids = process_tree([state.pid for state in supervisor.states("alpha").values() if state.pid])
    assert len(pids) >= 5
    for pid in [supervisor._rpc().getPID(), *pids]:
        try:
            names = {e.split(b"=", 1)[0] for e in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")}
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended meanwhile (a process that is exiting answers ESRCH)
        assert OPERATOR_VARIABLE.encode() not in names, pid
    ctx = load_context(home, "alpha")
    ran = proc.run(["/bin/sh", "-c", "env; readlink /proc/self/fd/0; echo $$; cut -d' ' -f6 /proc/$$/stat"],
                   user=ctx.superset_user).stdout.splitlines()
    assert not any(line.startswith(OPERATOR_VARIABLE) for line in ran), ran
    assert ran[-3] == "/dev/null" and ran[-2] == ran[-1], ran[-3:]  # stdin; the session's leader
