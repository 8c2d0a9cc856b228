"""Rendering: every file an instance runs with, compared with golden files and checked for the
settings the production checklist requires."""

import ast
import json
import os
import re
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from setpoint.home import SYSTEM_HOME, Home, data_account, superset_account
from setpoint.observability.scrape_tls import ScrapeTls
from setpoint.secret import SECRET_LENGTHS
from setpoint.render import (
    SUPERSET_SIDE_MODULES,
    InstanceContext,
    Ports,
    instance_programs,
    render_boot_unit,
    Monitoring,
    render_caddyfile,
    EmailReceiver,
    Receivers,
    render_alertmanager_config,
    render_logstore_config,
    render_logstore_instance,
    render_host_rules,
    render_instance_rules,
    render_blackbox_config,
    render_monitoring_web_config,
    render_prometheus_config,
    render_instance,
    render_programs_conf,
    render_site,
    render_supervisord_conf,
    render_consoles_site,
)
from setpoint.spec import parse_spec, size_instance
from setpoint.spec.model import Smtp
from setpoint.spec.sizing import resource_limits

GOLDEN = Path(__file__).parent / "golden"
SECRETS = {"redis_password": "REDIS-PASSWORD-VALUE", "backup_cipher_pass": "CIPHER-PASS-VALUE", "proxy_secret": "PROXY-SECRET-VALUE"}


def context(**spec_fields) -> InstanceContext:
    spec = parse_spec({"name": "demo", **spec_fields})
    home = Home(Path("/srv/setpoint"))
    return InstanceContext(
        spec=spec,
        sizing=size_instance(spec.concurrent_users, cores=2),
        limits=resource_limits(spec.concurrent_users, spec.resources.memory_mb, spec.resources.cpus,
                               spec.resources.pids, cores=2),
        paths=home.instance("demo"),
        ports=Ports(web=20001, postgres=20002, redis=20003),
        data_user="spd-demo",
        superset_user="sp-demo",
        venv=Path("/srv/setpoint/venvs/superset-6.1.0"),
        postgres_bin="/usr/lib/postgresql/15/bin/postgres",
        redis_bin="/usr/bin/redis-server",
        confine_python="/srv/setpoint/current/bin/python",
        cgroup="setpoint/0123abcd/demo",
        scrape_digest="5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
    )


MONITORING = Monitoring(user="setpoint-monitor", prometheus_bin="/usr/bin/prometheus",
                        node_exporter_bin="/usr/bin/prometheus-node-exporter", prometheus_port=19090,
                        node_exporter_port=19091, caddy_metrics_port=19092,
                        alertmanager_bin="/usr/bin/prometheus-alertmanager", alertmanager_port=19093,
                        blackbox_bin="/usr/bin/prometheus-blackbox-exporter", blackbox_port=19094,
                        postgres_exporter_bin="/usr/bin/prometheus-postgres-exporter", postgres_exporter_port=19095,
                        redis_exporter_bin="/usr/bin/prometheus-redis-exporter", redis_exporter_port=19096, mailbox_port=19097,
                        password_file=Path("/srv/setpoint/monitoring/password"),
                        scrape_tls=ScrapeTls(Path("/srv/setpoint/monitoring/tls")), console_url="https://localhost")
# Receivers of alerts: a webhook and two e-mail addresses through a server with a login, one
# address through a relay on the host, an instance with none, one with Slack and PagerDuty.
MAIL = Smtp(host="mail.example.com", username="alerts", from_address="setpoint@example.com")
RELAY = Smtp(host="127.0.0.1", port=25, security="none", from_address="setpoint@example.com")
RECEIVERS = {
    "demo": Receivers(("https://hooks.example.com/demo",),
                      (EmailReceiver("ops@example.com", MAIL, "MAIL-PASSWORD"), EmailReceiver("bi@example.com", MAIL, "MAIL-PASSWORD"))),
    "local": Receivers((), (EmailReceiver("root@example.com", RELAY),)),
    "quiet": Receivers(),
    "paged": Receivers(slack=(("https://hooks.slack.com/services/T0/B0/SLACK-SECRET", "#bi-alerts"),),
                       pagerduty=("PAGERDUTY-ROUTING-KEY",)),
}
# Probed instances: one with the host's own probe point only, one with two more.
PROBED = {"demo": parse_spec({"name": "demo"}),
          "spread": parse_spec({"name": "spread", "hostname": "bi.example.com", "https_port": 443,
                                "probes": {"points": ["probe-eu.example.net:9115", "10.1.2.3:9115"], "interval_s": 30}})}


SSO = {"issuer": "https://idp.example.com/realms/acme", "client_id": "superset",
       "scopes": ["openid", "email", "profile", "groups"],
       "roles": {"bi-admins": ["Admin"], "analysts": ["Alpha", "sql_lab"], "viewers": ["Gamma"]}}


SMTP = {"host": "smtp.example.com", "username": "reports@example.com", "from_address": "superset@example.com"}


def rendered_files(ctx):
    files = {f.path.name: f for f in render_instance(ctx, SECRETS)}
    home = Home(Path("/srv/setpoint"))
    extra = {
        "programs.conf": render_programs_conf(ctx),
        "site.caddy": render_site(ctx, SECRETS["proxy_secret"]),
        "Caddyfile": render_caddyfile(home, Path("/srv/setpoint/caddy/admin/admin.sock"), MONITORING.caddy_metrics_port,
                                      "$2b$10$abcdefghijklmnopqrstuuJ0hkz8ZyFuBXsQ1HmlZnWbM3yYwQHXq"),
        "supervisord.conf": render_supervisord_conf(home, "/usr/bin/caddy", "setpoint-caddy", "/opt/setpoint/bin/python",
                                                    MONITORING, "/usr/sbin/rsyslogd", "setpoint-logs"),
        "consoles.caddy": render_consoles_site(MONITORING, [443, 8443]),
        "rsyslog.conf": render_logstore_config(home),
        "rsyslog-instance.conf": render_logstore_instance(ctx),
        "rsyslog-instance-remote.conf": render_logstore_instance(
            replace(ctx, spec=ctx.spec.model_copy(update={"logs": ctx.spec.logs.model_copy(
                update={"remote": "tls://logs.example.com:6514", "remote_ca_file": Path("/etc/setpoint/logs-ca.pem")})})),
            Path("/srv/setpoint/logstore/ca/demo.pem")),
        "prometheus.yml": render_prometheus_config(home, MONITORING, PROBED, {"demo": 20002, "spread": 20012}),
        "blackbox.yml": render_blackbox_config("/srv/setpoint/monitoring/probe-ca.pem"),
        "rules-host.yml": render_host_rules(),
        "rules-instance.yml": render_instance_rules(ctx.spec),
        "alertmanager.yml": render_alertmanager_config(RECEIVERS),
        "setpoint.service": render_boot_unit(home, "/srv/setpoint/current/bin/setpoint"),
        "superset_config-sso.py": next(f.text for f in render_instance(context(sso=SSO, smtp=SMTP), SECRETS)
                                       if f.path.name == "superset_config.py"),
    }
    return {**{name: f.text for name, f in files.items()}, **extra}


# Copied verbatim from the package (and tested in test_database_guard.py, test_task_safety.py and
# the integration tests), not rendered.
VERBATIM = {f"setpoint_{module}.py": Path(__file__).resolve().parents[2] / f"src/setpoint/runtime/local/superset_side/{module}.py"
            for module in (*SUPERSET_SIDE_MODULES, "web_master")}


@pytest.mark.parametrize("name", sorted(set(rendered_files(context())) - set(VERBATIM)))
def test_matches_golden_file(name):
    text = rendered_files(context())[name]
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text(), f"{name} changed; rerun with UPDATE_GOLDEN=1 if intended"


def test_superset_config_is_valid_python_and_hardened():
    text = rendered_files(context())["superset_config.py"]
    ast.parse(text)
    for line in (
        'SECRET_KEY = _SECRETS["secret_key"]',
        "SESSION_COOKIE_SECURE = True",
        "SESSION_COOKIE_HTTPONLY = True",
        'SESSION_COOKIE_SAMESITE = "Lax"',
        "WTF_CSRF_ENABLED = True",
        "WTF_CSRF_TIME_LIMIT = None",
        "ENABLE_PROXY_FIX = True",
        "TALISMAN_ENABLED = True",
        "PUBLIC_ROLE_LIKE = None",
        "AUTH_RATE_LIMITED = True",
        "SUPERSET_WEBSERVER_TIMEOUT = 300",
        'GLOBAL_ASYNC_QUERIES_JWT_SECRET = _SECRETS["async_jwt_secret"]',
        "RESULTS_BACKEND = RedisCache(",
        '"pool_recycle": 3600,',
    ):
        assert line in text
    assert "'GLOBAL_ASYNC_QUERIES': True" in text
    assert "unsafe-eval" not in text
    assert "scarf" not in text
    # Secrets are read at start-up, never written in the config.
    assert "REDIS-PASSWORD-VALUE" not in text


def test_superset_4_1_reads_its_settings_under_their_older_names():
    """Superset 4.1 reads who renders screenshots and runs reports, and the async events' Redis,
    under other keys, and hands Selenium 4.9 its driver's settings as they are: the same choices
    are made for it, and only for it."""
    old = rendered_files(context(superset_version="4.1.4"))["superset_config.py"]
    ast.parse(old)
    for line in ("THUMBNAIL_EXECUTE_AS = THUMBNAIL_EXECUTORS", "ALERT_REPORTS_EXECUTE_AS = ALERT_REPORTS_EXECUTORS",
                 "GLOBAL_ASYNC_QUERIES_REDIS_CONFIG = {", "WEBDRIVER_CONFIGURATION = {}\n"):
        assert line in old
    current = rendered_files(context())["superset_config.py"]
    assert "EXECUTE_AS" not in current and "GLOBAL_ASYNC_QUERIES_REDIS_CONFIG" not in current
    assert '"service": {"executable_path": ' in current


def test_every_cache_is_redis():
    text = rendered_files(context())["superset_config.py"]
    for key in ("CACHE_CONFIG", "DATA_CACHE_CONFIG", "FILTER_STATE_CACHE_CONFIG",
                "EXPLORE_FORM_DATA_CACHE_CONFIG", "THUMBNAIL_CACHE_CONFIG"):
        assert f"\n{key} = _redis_cache(" in text


def test_wal_is_archived_to_an_encrypted_repository():
    files = {f.path.name: f for f in render_instance(context(), SECRETS)}
    postgres = files["postgresql.conf"].text
    assert "archive_mode = on" in postgres and "archive_timeout = 60" in postgres
    assert "--stanza=demo archive-push %p" in postgres
    backrest = files["pgbackrest.conf"]
    ctx = context()
    # Only the data account, which runs pgBackRest, reads its repository's keys.
    assert (backrest.mode, backrest.group) == (0o640, ctx.data_user)
    assert all(f.group is None for f in render_instance(ctx, SECRETS) if f.path.name != "pgbackrest.conf")
    assert "repo1-cipher-type=aes-256-cbc" in backrest.text and "repo1-retention-full=30" in backrest.text
    assert "CIPHER-PASS-VALUE" not in postgres


def test_redis_password_only_in_its_0600_file():
    files = {f.path.name: f for f in render_instance(context(), SECRETS)}
    assert files["redis-auth.conf"].mode == 0o640  # for Redis, as Superset's account (the directory is 0750)
    assert "REDIS-PASSWORD-VALUE" in files["redis-auth.conf"].text
    assert "REDIS-PASSWORD-VALUE" not in files["redis.conf"].text


def test_site_sends_hsts_and_redirects_on_custom_ports():
    site = rendered_files(context(https_port=8443, http_port=8080))["site.caddy"]
    assert 'Strict-Transport-Security "max-age=63072000; includeSubDomains; preload"' in site
    assert "https://demo.localhost:8443 {" in site
    assert "redir https://demo.localhost:8443{uri} 308" in site
    assert "tls internal" in site


def test_public_hostname_gets_acme_not_internal_ca():
    site = rendered_files(context(hostname="bi.example.com"))["site.caddy"]
    assert "tls internal" not in site


def test_programs_follow_sizing_and_run_unprivileged():
    ctx = context(concurrent_users=200)
    conf = render_programs_conf(ctx)
    assert "--concurrency=4" in conf
    # Each starts as root only to join the instance's cgroup, then runs as its account: the data
    # servers as the data user, Superset as the instance's own account.
    assert conf.count("-m setpoint.runtime.local.confine --group setpoint/0123abcd/demo --user spd-demo ") == 1
    assert conf.count("-m setpoint.runtime.local.confine --group setpoint/0123abcd/demo --user sp-demo ") == 4
    assert {p.component: p.user for p in instance_programs(ctx)} == {
        "postgres": "spd-demo", "redis": "sp-demo", "web": "sp-demo", "worker": "sp-demo", "beat": "sp-demo"}
    assert "--limits /srv/setpoint/instances/demo/config/limits.json -- " in conf
    limits = json.loads(rendered_files(ctx)["limits.json"])
    # Twice the idle size of 200 users; no CPU cap, a core's weight per 100 users.
    assert limits == {"memory_mb": 3328, "cpus": None, "cpu_weight": 2048, "pids": 1240}
    assert conf.count("[program:") == 5
    unconfined = render_programs_conf(replace(ctx, confine_python=None))
    assert unconfined.count("user=spd-demo") == 1 and unconfined.count("user=sp-demo") == 4
    assert "confine" not in unconfined
    assert [p.component for p in instance_programs(ctx)] == ["postgres", "redis", "web", "worker", "beat"]
    assert "workers = 5" in rendered_files(ctx)["gunicorn.conf.py"]


def test_external_databases_replace_managed_ones():
    ctx = context(metadata_db={"url": "postgresql://u:p@db.internal:5432/superset"},
                  cache={"url": "redis://:pw@cache.internal:6379/0"})
    files = rendered_files(ctx)
    assert "postgresql.conf" not in files and "redis.conf" not in files
    assert [p.component for p in instance_programs(ctx)] == ["web", "worker", "beat"]
    assert "SQLALCHEMY_DATABASE_URI = 'postgresql://u:p@db.internal:5432/superset'" in files["superset_config.py"]
    assert "_REDIS_URL = 'redis://:pw@cache.internal:6379'" in files["superset_config.py"]


def test_first_start_runs_only_data_servers():
    assert [p.component for p in instance_programs(context(), app=False)] == ["postgres", "redis"]


def test_lan_port_serves_the_same_site_on_the_hosts_addresses_with_the_internal_ca():
    ctx = replace(context(lan_https_port=8443), lan_addresses=("192.0.2.2", "10.0.0.3"))
    site = render_site(ctx)
    block = site.split("https://192.0.2.2:8443, https://10.0.0.3:8443 {", 1)[1]
    assert block.lstrip().startswith("tls internal")
    assert "reverse_proxy 127.0.0.1:20001" in block and "Strict-Transport-Security" in block
    assert "192.0.2.2" not in render_site(replace(ctx, lan_addresses=()))


def test_setpoint_modules_are_copied_beside_the_config_verbatim():
    files = rendered_files(context())
    for name, source in VERBATIM.items():
        assert files[name] == source.read_text()
        if name == "setpoint_beat.py":  # beat's own Celery app, not superset_config's
            assert "--app=setpoint_beat:app beat" in files["programs.conf"]
        elif name == "setpoint_web_master.py":  # gunicorn's master's, not superset_config's
            assert '"setpoint_web_master.py"' in files["gunicorn.conf.py"]
        else:
            assert f'_setpoint_module("{name[:-3]}")' in files["superset_config.py"]
    assert "setpoint_sso.py" not in files


def test_single_sign_on_replaces_password_logins_but_for_the_break_glass_accounts():
    files = {f.path.name: f.text for f in render_instance(context(sso=SSO), SECRETS)}
    config = files["superset_config.py"]
    ast.parse(config)
    assert files["setpoint_sso.py"] == VERBATIM["setpoint_identity_guard.py"].with_name("sso.py").read_text()
    assert "AUTH_TYPE = AUTH_OAUTH" in config and "AUTH_TYPE = AUTH_DB" not in config
    assert '"code_challenge_method": "S256"' in config
    assert "https://idp.example.com/realms/acme/.well-known/openid-configuration" in config
    assert '"client_secret": _SECRETS["sso_client_secret"]' in config  # the secret itself is never in the file
    assert "AUTH_USER_REGISTRATION_ROLE = None" in config  # a user in no mapped group is refused
    assert "_identity_guard.passwords_only_for(app, SETPOINT_PASSWORD_ACCOUNTS)" in config
    # The break-glass form is limited with the other logins: passwords_only_for registers it first.
    assert config.index("passwords_only_for") < config.index("limit_logins(app")


def test_superset_reads_only_its_own_secrets():
    secrets = {key: f"{key}-VALUE" for key in SECRET_LENGTHS}
    shared = next(f for f in render_instance(context(), secrets) if f.path.name == "superset-secrets.json")
    assert shared.mode == 0o640
    assert set(json.loads(shared.text)) == {"secret_key", "async_jwt_secret", "guest_token_jwt_secret",
                                             "metadata_db_password", "redis_password", "proxy_secret"}
    with_sso = next(f for f in render_instance(context(), {**secrets, "sso_client_secret": "SSO-VALUE"})
                    if f.path.name == "superset-secrets.json")
    assert json.loads(with_sso.text)["sso_client_secret"] == "SSO-VALUE"
    for private in ("postgres_password", "admin_password", "backup_cipher_pass", "recovery_key"):
        assert f"{private}-VALUE" not in shared.text


def test_superset_accounts_are_per_home_and_fit_linux_names():
    assert superset_account(SYSTEM_HOME, "demo") == "sp-demo"
    tagged = superset_account(Path("/tmp/home-a"), "demo")
    assert re.fullmatch(r"sp[0-9a-f]{4}-demo", tagged) and tagged != superset_account(Path("/tmp/home-b"), "demo")
    longest = superset_account(Path("/tmp/home-a"), "a" * 32)
    assert len(longest) <= 32 and longest != superset_account(Path("/tmp/home-a"), "a" * 31 + "b")


def test_no_two_accounts_of_any_instances_share_a_name():
    """Each instance has a data account beside its Superset account; an instance named like
    another's account with a suffix ("x-db") never gets a name already taken."""
    names = ["x", "x-db", "d-x", "db", "a" * 32, "a" * 31 + "b", "spd", "sp"]
    for root in (SYSTEM_HOME, Path("/tmp/home-a")):
        accounts = [f(root, n) for n in names for f in (superset_account, data_account)]
        assert len(set(accounts)) == len(accounts) and all(len(a) <= 32 for a in accounts), accounts
    assert data_account(SYSTEM_HOME, "demo") == "spd-demo"


def test_prometheus_config_passes_promtool(tmp_path):
    """The rendered configuration as Prometheus 2.42 itself reads it (promtool, from the
    `prometheus` package that `setpoint doctor --install` installs)."""
    from setpoint import proc

    from setpoint.observability import scrape_tls

    home = Home(tmp_path)
    (home.monitoring_dir / "rules").mkdir(parents=True)
    (home.monitoring_dir / "rules" / "host.yml").write_text(render_host_rules())
    # The Redis job's client certificate, made as `up` makes it (promtool reads each file).
    monitoring = replace(MONITORING, scrape_tls=ScrapeTls(home.monitoring_dir / "tls"))
    assert scrape_tls.ensure(tmp_path, monitoring.scrape_tls, "daemon")
    assert not scrape_tls.ensure(tmp_path, monitoring.scrape_tls, "daemon")
    assert sorted(p.name for p in monitoring.scrape_tls.directory.iterdir()) == sorted(
        p.name for p in monitoring.scrape_tls.files())  # the CA's key is not kept
    config = home.monitoring_dir / "prometheus.yml"
    config.write_text(render_prometheus_config(home, monitoring, PROBED, {"demo": 20002, "spread": 20012}))
    result = proc.run([proc.find_binary("promtool"), "check", "config", config], check=False)
    assert result.ok, result.stdout + result.stderr
    assert "SUCCESS: 2 rules found" in result.stdout + result.stderr


def test_monitoring_web_config_passes_promtool(tmp_path):
    """Basic authentication as Prometheus 2.42 and Alertmanager 0.25 read it (exporter-toolkit)."""
    import bcrypt

    from setpoint import proc

    config = tmp_path / "web.yml"
    config.write_text(render_monitoring_web_config(bcrypt.hashpw(b"password", bcrypt.gensalt(4)).decode()))
    result = proc.run([proc.find_binary("promtool"), "check", "web-config", config], check=False)
    assert result.ok and "SUCCESS" in result.stdout + result.stderr, result.stdout + result.stderr


def test_blackbox_config_passes_the_exporters_check(tmp_path):
    """The probe modules as the blackbox exporter 0.23 itself reads them."""
    from setpoint import proc

    config = tmp_path / "blackbox.yml"
    config.write_text(render_blackbox_config("/etc/ssl/certs/ca-certificates.crt"))
    result = proc.run([proc.find_binary("prometheus-blackbox-exporter"), "--config.check", f"--config.file={config}"],
                      check=False)
    assert result.ok and "Config file is ok" in result.stdout + result.stderr, result.stdout + result.stderr
    assert "level=warn" not in result.stdout + result.stderr


@pytest.mark.parametrize("receivers", [{}, {"demo": Receivers()}, RECEIVERS])
def test_alertmanager_config_passes_amtool(tmp_path, receivers):
    from setpoint import proc

    config = tmp_path / "alertmanager.yml"
    config.write_text(render_alertmanager_config(receivers))
    result = proc.run([proc.find_binary("amtool"), "check-config", config], check=False)
    assert result.ok and "SUCCESS" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("remote", [None, "tcp://127.0.0.1:6514", "tls://logs.example.com:6514"])
def test_logstore_config_passes_rsyslogd(tmp_path, remote):
    """The host's and an instance's log store configuration as rsyslog 8.2302 itself reads them."""
    from setpoint import proc

    home = Home(tmp_path)
    ctx = context(logs={"remote": remote} if remote else {})
    ctx = replace(ctx, paths=home.instance("demo"))
    for directory in ("rsyslog.d", "state"):
        (home.logstore_dir / directory).mkdir(parents=True)
    config = home.logstore_dir / "rsyslog.conf"
    config.write_text(render_logstore_config(home))
    (home.logstore_dir / "rsyslog.d" / "demo.conf").write_text(render_logstore_instance(ctx))
    result = proc.run([proc.find_binary("rsyslogd"), "-N1", "-f", config], check=False)
    assert result.ok and "End of config validation run" in result.stdout + result.stderr, result.stdout + result.stderr
    assert "error" not in (result.stdout + result.stderr).lower()


def test_the_test_notification_goes_out_at_once_to_its_instances_receivers(tmp_path):
    """`up` waits for its test notification: the route sends it without the 10 s group_wait of
    real alerts, to the instance's own receiver (as amtool routes it)."""
    from setpoint import proc
    from setpoint.observability.notification import TEST_ALERT

    config = tmp_path / "alertmanager.yml"
    config.write_text(render_alertmanager_config(RECEIVERS))
    route = yaml.safe_load(config.read_text())["route"]
    assert route["group_wait"] == "10s"
    child = route["routes"][0]["routes"][0]
    assert child["matchers"] == [f'alertname="{TEST_ALERT}"'] and child["group_wait"] == "1s"
    name = next(iter(RECEIVERS))
    routed = proc.run([proc.find_binary("amtool"), "config", "routes", "test", f"--config.file={config}",
                       f"alertname={TEST_ALERT}", f"setpoint_instance={name}"], check=False)
    assert routed.stdout.strip() == f"instance-{name}", routed.stdout + routed.stderr


def test_the_remote_stores_ca_is_copied_where_the_stores_account_reads_it(tmp_path, monkeypatch):
    """rsyslog runs as the store's account, which could not read a CA file of root's (under
    /root, say): the store forwards with its own copy, and a file that is missing or holds no
    certificate stops `up` with the spec key to fix."""
    from setpoint.errors import InputError
    from setpoint.observability import logstore

    monkeypatch.setattr(logstore, "logstore_user", lambda: "daemon")  # the store's account may not exist yet
    home = Home(tmp_path / "home")
    ca = tmp_path / "root-only-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    ca.chmod(0o600)
    ctx = context(logs={"remote": "tls://logs.example.com:6514", "remote_ca_file": str(ca)})
    ctx = replace(ctx, paths=home.instance("demo"))
    copy = home.logstore_dir / "ca" / "demo.pem"
    (home.logstore_dir / "rsyslog.d").mkdir(parents=True)
    assert logstore.publish(home, ctx) and copy.read_text() == ca.read_text()
    assert f'streamDriver.CAFile="{copy}"' in (home.logstore_dir / "rsyslog.d" / "demo.conf").read_text()
    assert not logstore.publish(home, ctx)
    for content, error in ((None, "cannot be read"), ("not a certificate\n", "holds no PEM certificate")):
        ca.unlink(missing_ok=True)
        if content:
            ca.write_text(content)
        with pytest.raises(InputError, match=error) as refused:
            logstore.publish(home, ctx)
        assert "logs.remote_ca_file" in refused.value.message and "setpoint up demo" in refused.value.hint
    # Without a CA file the copy goes, and the system's CAs are trusted.
    assert logstore.publish(home, replace(ctx, spec=ctx.spec.model_copy(update={"logs": ctx.spec.logs.model_copy(
        update={"remote_ca_file": None})})))
    assert not copy.exists() and "CAFile" not in (home.logstore_dir / "rsyslog.d" / "demo.conf").read_text()
