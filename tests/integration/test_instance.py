"""A real instance, checked over HTTPS as its users and an auditor would."""

import base64
import hashlib
import hmac
import re
import shutil
import stat
import subprocess
import time

from setpoint import examples

HSTS = "max-age=63072000; includeSubDomains; preload"


def test_health_answers_ok_over_verified_https(http):
    response = http.get("/health")
    assert response.status_code == 200
    assert response.text.strip() == "OK"


def test_login_with_generated_password_works(admin):
    assert admin.token
    me = admin.get("/api/v1/me/").json()["result"]
    assert me["username"] == "admin"


def test_default_admin_admin_is_refused(http):
    response = http.post(
        "/api/v1/security/login", json={"username": "admin", "password": "admin", "provider": "db"}
    )
    assert response.status_code == 401


def test_hsts_is_sent(http):
    assert http.get("/health").headers["strict-transport-security"] == HSTS


def test_session_cookie_is_httponly_secure_lax(http):
    response = http.get("/login/")
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("session="))
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "secure", "samesite=lax"} <= flags


def test_csp_is_sent_without_unsafe_eval_or_third_parties(http):
    csp = http.get("/login/").headers["content-security-policy"]
    script_src = re.search(r"script-src([^;]*)", csp).group(1)
    assert "'self'" in script_src and "unsafe-eval" not in script_src
    assert "scarf" not in csp


def test_plain_http_redirects_to_https(instance, ca_root):
    import httpx

    from setpoint.net import LoopbackTransport

    spec = instance[0]
    with httpx.Client(transport=LoopbackTransport()) as plain:
        response = plain.get(f"http://{spec.host}:{spec.http_port}/login/?next=x")
    assert response.status_code == 308
    assert response.headers["location"] == f"https://{spec.host}:{spec.https_port}/login/?next=x"
    assert "server" not in response.headers


def test_only_signed_in_users_learn_the_version(http, admin):
    assert http.get("/version").status_code == 404
    assert http.get("/version", headers={"Authorization": "Bearer forged.token.here"}).status_code == 404
    assert admin.get("/version").json()["version_string"] == "6.1.0"


def test_a_language_the_instance_does_not_offer_is_not_found_not_a_server_error(http):
    assert http.get("/lang/de").status_code == 404  # Superset 6.1 answers 500, to anyone
    assert http.get("/lang/en").status_code == 302  # back to the page it came from


def test_responses_do_not_name_the_servers_behind_them(http):
    for path in ("/login/", "/health", "/api/v1/me/", "/no-such-page"):
        assert "server" not in http.get(path).headers, path  # was: Server: Caddy, Server: gunicorn


def test_anonymous_api_calls_are_refused(http):
    assert http.get("/api/v1/dashboard/").status_code == 401


def test_public_role_has_no_permissions(admin):
    roles = admin.find("security/roles", "name", "Public")
    assert len(roles) == 1
    permissions = admin.get(f"/api/v1/security/roles/{roles[0]['id']}/permissions/").json()["result"]
    assert permissions == []


def test_a_grant_to_the_public_role_applies_within_seconds_and_its_withdrawal_at_once(admin, http):
    """Web workers remember for 5 s that the Public role may do nothing (setpoint_public_role.py),
    and never remember what it may do: taking a grant back ends anonymous access at once."""
    public = admin.find("security/roles", "name", "Public")[0]["id"]
    admin_role = admin.find("security/roles", "name", "Admin")[0]["id"]
    held = admin.get(f"/api/v1/security/roles/{admin_role}/permissions/").json()["result"]
    read_dashboards = next(p["id"] for p in held if (p["permission_name"], p["view_menu_name"]) == ("can_read", "Dashboard"))
    assert http.get("/api/v1/dashboard/").status_code == 401  # now remembered as empty
    try:
        assert admin.post(f"/api/v1/security/roles/{public}/permissions",
                          json={"permission_view_menu_ids": [read_dashboards]}).status_code == 200
        granted = time.monotonic()
        while http.get("/api/v1/dashboard/").status_code != 200:
            assert time.monotonic() - granted < 15, "the grant to Public did not apply within 15 s"
            time.sleep(0.5)
    finally:
        assert admin.post(f"/api/v1/security/roles/{public}/permissions",
                          json={"permission_view_menu_ids": []}).status_code == 200
    assert [http.get("/api/v1/dashboard/").status_code for _ in range(8)] == [401] * 8  # every worker


def test_sample_dashboard_has_six_kinds_of_chart(admin):
    dashboards = admin.find("dashboard", "dashboard_title", examples.DASHBOARD_TITLE)
    assert len(dashboards) == 1
    charts = admin.get(f"/api/v1/dashboard/{dashboards[0]['id']}/charts").json()["result"]
    assert len(charts) >= 6
    assert len({c["form_data"]["viz_type"] for c in charts}) >= 6


def test_sample_chart_returns_rows(admin):
    chart = admin.find("chart", "slice_name", "Top countries")[0]
    query_context = admin.get(f"/api/v1/chart/{chart['id']}").json()["result"]["query_context"]
    # Asynchronous queries are on: the Celery worker runs the query and the client polls for it.
    result = admin.chart_data(query_context)[0]
    assert result["rowcount"] == 20
    assert {"country", "revenue", "orders"} <= set(result["colnames"])
    assert sum(row["orders"] for row in result["data"]) > 0


def test_sample_data_is_read_only_for_superset(admin):
    database = admin.find("database", "database_name", examples.DATABASE_NAME)[0]
    response = admin.call(
        "POST", "/api/v1/sqllab/execute/",
        json={"database_id": database["id"], "sql": "DELETE FROM sales", "runAsync": False},
    )
    assert response.status_code >= 400  # DML is off for the connection, and the role is read-only


def test_secrets_are_0600_and_never_logged(home, secrets):
    paths = home.instance("alpha")
    assert stat.S_IMODE(paths.secrets_file.stat().st_mode) == 0o600
    assert len(secrets["secret_key"]) >= 42
    for log in paths.logs.glob("*.log"):
        text = log.read_text(errors="replace")
        for key, value in secrets.items():
            assert value not in text, f"{key} appears in {log.name}"
    config = (paths.config / "superset_config.py").read_text()
    assert secrets["secret_key"] not in config


def test_a_process_started_while_its_database_is_down_does_not_print_the_password(home, secrets, tmp_path):
    """Superset 6.1 prints "Cannot connect to database URI" at start-up, password included, when
    its metadata database is down; a worker restarted during an outage wrote it to its log."""
    from setpoint.runtime.local.instance import load_context

    ctx = load_context(home, "alpha")
    config = tmp_path / "config"
    shutil.copytree(ctx.paths.config, config)
    rendered = (config / "superset_config.py").read_text()
    port = ctx.ports.postgres  # moved to port 1, where nothing listens, for the URI and for the guard
    down = rendered.replace(f"@127.0.0.1:{port}/", "@127.0.0.1:1/").replace(f"'port': {port}", "'port': 1")
    assert down != rendered
    (config / "superset_config.py").write_text(down)
    env = {"SUPERSET_CONFIG_PATH": str(config / "superset_config.py"), "SUPERSET_HOME": str(tmp_path),
           "HOME": str(tmp_path), "PATH": f"{ctx.venv}/bin:/usr/bin:/bin"}
    result = subprocess.run([f"{ctx.venv}/bin/superset", "version"], env=env, capture_output=True,
                            text=True, timeout=120)
    output = result.stdout + result.stderr
    assert "cannot connect to the metadata database postgresql+psycopg2://superset:***@" in output, output[-2000:]
    assert secrets["metadata_db_password"] not in output


def test_an_email_report_is_refused_while_the_spec_names_no_mail_server(admin):
    chart = admin.find("chart", "slice_name", "Top countries")[0]["id"]
    response = admin.call("POST", "/api/v1/report/", json={
        "type": "Report", "name": "never sent", "crontab": "0 8 * * *", "chart": chart, "report_format": "CSV",
        "recipients": [{"type": "Email", "recipient_config_json": {"target": "someone@example.com"}}]})
    assert response.status_code == 422, response.text
    assert "smtp: section" in response.json()["message"]
    assert not admin.find("report", "name", "never sent")


def signed_with(token: str, secret: str) -> bool:
    """Whether an HS256 JWT's signature is made with `secret`."""
    header_and_payload, _, signature = token.rpartition(".")
    expected = hmac.new(secret.encode(), header_and_payload.encode(), hashlib.sha256).digest()
    return hmac.compare_digest(base64.urlsafe_b64encode(expected).rstrip(b"=").decode(), signature)


def test_guest_tokens_are_signed_with_a_generated_secret_not_the_published_default(admin, secrets):
    dashboard = admin.get("/api/v1/dashboard/").json()["result"][0]["id"]
    response = admin.call("POST", "/api/v1/security/guest_token/", json={
        "user": {"username": "guest"}, "resources": [{"type": "dashboard", "id": str(dashboard)}], "rls": []})
    assert response.status_code == 200, response.text
    token = response.json()["token"]
    assert not signed_with(token, "test-guest-secret-change-me")  # Superset's default: anyone could mint tokens
    assert signed_with(token, secrets["guest_token_jwt_secret"])


def test_processes_run_unprivileged(home):
    import pwd

    from setpoint.runtime.local.instance import load_context
    from setpoint.services.supervisor import Supervisor

    for name, state in Supervisor(home).states("alpha").items():
        with open(f"/proc/{state.pid}/status") as handle:
            uid = int(next(line for line in handle if line.startswith("Uid:")).split()[1])
        # Which account runs which process: test_isolation.py.
        ctx = load_context(home, "alpha")
        assert uid != 0 and pwd.getpwuid(uid).pw_name in (ctx.data_user, ctx.superset_user), name


def test_web_workers_share_superset_with_their_master(home, admin):
    """gunicorn's master loads Superset and forks its workers from it: most of what a worker holds
    is its master's pages, shared until written (each worker loading its own shared about 3 MiB)."""
    from setpoint.runtime.local.startup import web_workers
    from setpoint.services.supervisor import Supervisor

    admin.get("/api/v1/dashboard/")  # a worker that has served
    master = Supervisor(home).states("alpha")["alpha-web"].pid
    workers = web_workers(master)
    assert workers
    for pid in workers:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            shared_dirty_kib = next(int(line.split()[1]) for line in handle if line.startswith("Shared_Dirty:"))
        assert shared_dirty_kib > 64 * 1024, f"worker {pid} shares {shared_dirty_kib // 1024} MiB with its master"


def test_every_cache_is_in_redis(home, admin, secrets):
    from setpoint.services.redis import RedisServer

    port = home.instance("alpha").read_state()["ports"]["redis"]
    redis = RedisServer(port, secrets["redis_password"])
    admin.get("/api/v1/dashboard/")
    # The chart query above left its result in the data cache (db 2).
    keys = redis.command("-n", "2", "--scan", "--pattern", "superset_*")
    assert keys, "no Superset cache keys in Redis"
    assert redis.command("CONFIG", "GET", "maxmemory-policy").splitlines()[-1] == "volatile-lru"
