"""Spec -> the files an instance runs with. Pure: no I/O but reading the package's templates."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import unquote, urlsplit

import jinja2

from setpoint.examples import PROBED_CHART, READER_ROLE
from setpoint.identity import access, sso
from setpoint.services import screenshots
from setpoint.home import Home, InstancePaths
from setpoint.observability.scrape_tls import ScrapeTls
from setpoint.runtime.local.confine import confine_prefix
from setpoint.secret import SUPERSET_SECRETS
from setpoint.spec import InstanceSpec, Sizing
from setpoint.spec.model import Smtp, version_key
from setpoint.spec.sizing import Limits

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("setpoint", "render/templates"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)
_ENV.filters["py"] = repr  # a Python literal, for values written into Python files

# Feature flags every instance has; the spec may add others but not turn these off.
BASE_FEATURE_FLAGS = {"GLOBAL_ASYNC_QUERIES": True, "ALERT_REPORTS": True}


@dataclass(frozen=True)
class Ports:
    """Loopback ports of an instance's own servers."""

    web: int
    postgres: int
    redis: int


@dataclass(frozen=True)
class InstanceContext:
    """Everything rendering needs to know about one instance."""

    spec: InstanceSpec
    sizing: Sizing
    limits: Limits
    paths: InstancePaths
    ports: Ports
    # The instance's data account (root: `spd-NAME`): runs its PostgreSQL and pgBackRest and owns
    # their files, the backups and the secret store; another instance's data account opens none.
    data_user: str
    # The instance's own account for Superset's web, worker and beat and its Redis (root:
    # `sp-NAME`), which reads only its configuration and superset-secrets.json and writes only
    # its SUPERSET_HOME and Redis's data.
    superset_user: str
    venv: Path
    postgres_bin: str
    redis_bin: str
    # This host's network addresses, where the spec's lan_https_port serves the instance too.
    lan_addresses: tuple[str, ...] = ()
    # The interpreter that starts each process inside the instance's cgroup (runtime/local/
    # confine.py), and the cgroup's name; empty where Setpoint cannot set limits (not root).
    confine_python: str | None = None
    cgroup: str = ""
    # The superuser role inside every cluster of the host (the data account reaches it over the
    # socket through pg_ident.conf). Root: `setpoint`, as clusters made before the data accounts
    # were separated already have it.
    db_superuser: str = "setpoint"
    # The SHA-256 of the host's monitoring password: the instance serves its metrics only to a
    # request that presents the password (Prometheus's scrape). Empty: to no request.
    scrape_digest: str = ""

    @property
    def managed_postgres(self) -> bool:
        return self.spec.metadata_db.url is None

    @property
    def managed_redis(self) -> bool:
        return self.spec.cache.url is None

    @property
    def celery_worker(self) -> str:
        """The name of the instance's one Celery worker (a destination for Celery's control)."""
        return f"{self.spec.name}-worker@localhost"


@dataclass(frozen=True)
class Program:
    """One supervised process of an instance."""

    component: str
    command: str
    environment: str = ""
    startsecs: int = 5
    stopsignal: str = "TERM"
    stopwaitsecs: int = 30
    instance: str = ""
    user: str = ""
    # supervisord starts lower priorities first: the data servers before Superset, at every
    # start of the host (the boot command then waits for each to be ready, in the same order).
    priority: int = 200

    @property
    def name(self) -> str:
        return f"{self.instance}-{self.component}"


@dataclass(frozen=True)
class RenderedFile:
    """A file to write, and which components must restart when it changes. Root owns it (neither
    account may change what the other, or root, runs or reads: accounts.write_config); its group
    (`group`, or else the Superset account's, which the data account is a member of) reads it."""

    path: Path
    text: str
    mode: int = 0o644
    restarts: tuple[str, ...] = ()
    group: str | None = None


def render_template(name: str, **values: object) -> str:
    """Render one of the package's templates."""
    return _ENV.get_template(name).render(**values)


def superset_environment(ctx: InstanceContext) -> str:
    """The supervisor `environment=` value of every Superset process."""
    return (
        f'SUPERSET_CONFIG_PATH="{ctx.paths.config}/superset_config.py",'
        f'SUPERSET_HOME="{ctx.paths.superset_home}",HOME="{ctx.paths.superset_home}",'
        f'PROMETHEUS_MULTIPROC_DIR="{ctx.paths.metrics_dir}",'
        f'PATH="{ctx.venv}/bin:/usr/bin:/bin"'
    )


def instance_programs(ctx: InstanceContext, app: bool = True) -> list[Program]:
    """The processes of an instance: its data servers, then (with `app`) Superset's own."""
    name, env = ctx.spec.name, superset_environment(ctx)
    programs: list[Program] = []
    if ctx.managed_postgres:
        programs.append(
            Program(
                "postgres",
                f"{ctx.postgres_bin} -D {ctx.paths.pg_data} -c config_file={ctx.paths.config}/postgresql.conf",
                stopsignal="INT",  # PostgreSQL's fast shutdown
                stopwaitsecs=60,
                startsecs=3,
                priority=100,
            )
        )
    if ctx.managed_redis:
        programs.append(Program("redis", f"{ctx.redis_bin} {ctx.paths.config}/redis.conf", startsecs=2, priority=100))
    if app:
        celery = f"{ctx.venv}/bin/celery --app=superset.tasks.celery_app:app"
        programs += [
            Program(
                "web",
                f"{ctx.venv}/bin/gunicorn --config {ctx.paths.config}/gunicorn.conf.py superset.app:create_app()",
                env,
                stopwaitsecs=40,
            ),
            Program(
                "worker",
                f"{celery} worker --pool=prefork -O fair --concurrency={ctx.sizing.celery_concurrency} "
                f"--hostname={ctx.celery_worker} --max-tasks-per-child=128 --loglevel=INFO "
                # One worker per instance: no neighbours to sync with. Mingle after a broker
                # reconnect also trips kombu's KeyError in _fd_to_chan and hangs the worker.
                "--without-mingle --without-gossip",
                env,
                # A warm shutdown: running tasks finish within the grace, the rest are requeued.
                stopwaitsecs=ctx.spec.tasks.shutdown_grace_s + 5,
            ),
            # Without Superset: it sends tasks by name (superset_side/beat.py).
            Program(
                "beat",
                f"{ctx.venv}/bin/celery --app=setpoint_beat:app beat --schedule={ctx.paths.superset_home}/celerybeat-schedule "
                "--pidfile= --loglevel=INFO",
                f'{env},PYTHONPATH="{ctx.paths.config}"',
            ),
        ]
    # Redis holds only what Superset puts there and answers only to Superset's password: as
    # Superset's account, a flaw in Redis (its Lua engine) gives an attacker no account it did
    # not already have, where the data account's would open the instance's database files.
    return [Program(**{**p.__dict__, "instance": name,
                       "user": ctx.data_user if p.component == "postgres" else ctx.superset_user})
            for p in programs]


# The metadata database of a managed instance, and the role that owns it, as which Superset
# connects (over TCP, with its password) and Setpoint too (over the socket, as the data account).
METADATA_DATABASE = "superset"
METADATA_ROLE = "superset"
# A RenderedFile's `restarts` entry for PostgreSQL's client authentication: read again, no restart.
POSTGRES_AUTH = "postgres-auth"


def _metadata_uri_expr(ctx: InstanceContext) -> str:
    if not ctx.managed_postgres:
        return repr(ctx.spec.metadata_db.url)
    return (
        f"f\"postgresql+psycopg2://{METADATA_ROLE}:{{quote(_SECRETS['metadata_db_password'])}}"
        f'@127.0.0.1:{ctx.ports.postgres}/{METADATA_DATABASE}"'
    )


# The SQLAlchemy dialects each driver of the spec brings (postgresql is always there).
DIALECTS_OF_DRIVER = {
    "postgres": ["postgresql"],
    "mysql": ["mysql"],
    "clickhouse": ["clickhouse", "clickhousedb"],
    "trino": ["trino"],
    "bigquery": ["bigquery"],
    "snowflake": ["snowflake"],
    "databricks": ["databricks"],
    "mssql": ["mssql"],
}


def database_guard_policy(ctx: InstanceContext) -> tuple[list[str], list[dict]]:
    """What the instance's database guard allows: dialects, and targets allowed although private
    (the instance's own metadata and sample databases, as their own roles only; the spec's hosts)."""
    dialects = sorted({"postgresql", *(d for driver in ctx.spec.drivers for d in DIALECTS_OF_DRIVER.get(driver.value, []))})
    allowed: list[dict] = []
    if ctx.managed_postgres:
        allowed += [{"host": "127.0.0.1", "port": ctx.ports.postgres, "user": user} for user in ("superset", READER_ROLE)]
    else:
        url = urlsplit(ctx.spec.metadata_db.url)
        allowed.append({"host": url.hostname or "", "port": url.port or 5432, "user": unquote(url.username or "") or None})
    for target in ctx.spec.databases.allowed_hosts:
        host, _, port = target.rpartition(":") if ":" in target else (target, "", "")
        allowed.append({"host": host, "port": int(port) if port else None, "user": None})
    return dialects, allowed


def _redis_url_expr(ctx: InstanceContext) -> str:
    if not ctx.managed_redis:
        return repr(re.sub(r"/\d+/?$", "", ctx.spec.cache.url or ""))
    return f"f\"redis://:{{quote(_SECRETS['redis_password'])}}@127.0.0.1:{ctx.ports.redis}\""


def _package_text(path: str) -> str:
    return (resources.files("setpoint") / path).read_text()


# What each database of an instance's Redis holds (superset_config.py is rendered with these).
REDIS_DB = {"broker": 0, "task_results": 1, "caches": 2, "query_results": 3, "rate_limits": 4,
            "async_events": 5, "sessions": 6}
# Superset's periodic tasks, sent by each instance's Celery beat (superset_side/beat.py); the
# worker runs each once per minute it was due (task safety). Crontab fields, in UTC.
BEAT_SCHEDULE = {
    "reports.scheduler": {"task": "reports.scheduler", "crontab": {"minute": "*", "hour": "*"}, "options": {"expires": 3600}},
    "reports.prune_log": {"task": "reports.prune_log", "crontab": {"minute": "0", "hour": "0"}},
}


def render_beat_settings(ctx: InstanceContext) -> str:
    """beat.json: where beat sends (no secret: the password is in superset-secrets.json) and what."""
    if ctx.managed_redis:
        broker = {"host": "127.0.0.1", "port": ctx.ports.redis, "db": REDIS_DB["broker"]}
    else:
        broker = {"url": re.sub(r"/\d+/?$", "", ctx.spec.cache.url or "") + f"/{REDIS_DB['broker']}"}
    return json.dumps({"broker": broker, "schedule": BEAT_SCHEDULE}, indent=2, sort_keys=True) + "\n"


@dataclass(frozen=True)
class Cache:
    """One of Superset's caches in Redis's `caches` database, under the key prefix superset_NAME_."""

    setting: str
    timeout_s: int
    holds: str
    users_work: bool = False  # clearing it loses something a user made and did not save


CACHES = {
    "metadata": Cache("CACHE_CONFIG", 86400, "datasets' columns, databases' schemas and tables, dashboards' metadata"),
    "data": Cache("DATA_CACHE_CONFIG", 3600, "the results of chart queries"),
    "filter_state": Cache("FILTER_STATE_CACHE_CONFIG", 90 * 86400,
                          "the native filter values users set on dashboards", users_work=True),
    "explore": Cache("EXPLORE_FORM_DATA_CACHE_CONFIG", 7 * 86400, "charts being edited in Explore", users_work=True),
    "thumbnail": Cache("THUMBNAIL_CACHE_CONFIG", 7 * 86400, "dashboard and chart thumbnails"),
}

# What describes the metadata's present, and goes when the metadata is rewound; sessions and
# login rate limits stay.
REDIS_DBS_OF_THE_PRESENT = tuple(REDIS_DB[k] for k in ("broker", "task_results", "caches", "query_results", "async_events"))

# Setpoint's modules that superset_config.py loads from beside itself.
SUPERSET_SIDE_MODULES = ("database_guard", "task_safety", "identity_guard", "ownership_guard", "metrics", "audit", "log_hygiene",
                         "reports", "beat", "probe", "migration_times", "facts", "public_role", "proxy",
                         "permission_cache", "metadata_reads")


def superset_side_modules(spec: InstanceSpec) -> tuple[str, ...]:
    """The modules of Setpoint that this spec's superset_config.py loads."""
    return SUPERSET_SIDE_MODULES + (("sso",) if spec.sso else ())


def render_instance(ctx: InstanceContext, secrets: dict[str, str]) -> list[RenderedFile]:
    """Every file of one instance, with the components each one restarts."""
    values = {
        "spec": ctx.spec,
        "sizing": ctx.sizing,
        "paths": ctx.paths,
        "ports": ctx.ports,
        "data_user": ctx.data_user, "db_superuser": ctx.db_superuser,
    }
    config = ctx.paths.config
    superset = ("web", "worker", "beat")
    files = [
        RenderedFile(
            config / "superset_config.py",
            render_template(
                "superset_config.py.j2",
                **values,
                metadata_uri_expr=_metadata_uri_expr(ctx),
                redis_url_expr=_redis_url_expr(ctx),
                beat_tasks=tuple(entry["task"] for entry in BEAT_SCHEDULE.values()),
                feature_flags={**ctx.spec.feature_flags, **BASE_FEATURE_FLAGS,
                               "THUMBNAILS": ctx.spec.screenshots.thumbnails},
                browser_args=screenshots.BROWSER_ARGS,
                chromedriver=screenshots.CHROMEDRIVER,
                screenshot_limits=screenshots.task_time_limits(ctx.spec),
                locate_wait_s=screenshots.LOCATE_WAIT_S,
                guard_policy=database_guard_policy(ctx),
                redis_db=REDIS_DB,
                caches=CACHES,
                sso_provider=sso.PROVIDER_NAME,
                access=access.declared(ctx.spec),
                emergency_username_pattern=sso.EMERGENCY_USERNAME_PATTERN,
                probed_chart=probed_chart(ctx.spec),
                scrape_digest=ctx.scrape_digest,
                facts_options={"celery_worker": ctx.celery_worker, "facts_cache": str(ctx.paths.facts_cache)},
                # Superset 4.1 reads a few settings under older names, and hands Selenium 4.9 its
                # driver's settings as they are.
                before_5=version_key(ctx.spec.superset_version) < (5, 0, 0),
            ),
            restarts=superset,
        ),
        # Copied beside superset_config.py, which installs them (see each module's docstring).
        *(RenderedFile(config / f"setpoint_{module}.py", _package_text(f"runtime/local/superset_side/{module}.py"),
                       restarts=superset) for module in superset_side_modules(ctx.spec)),
        RenderedFile(config / "beat.json", render_beat_settings(ctx), mode=0o640, restarts=("beat",)),
        RenderedFile(config / "gunicorn.conf.py", render_template("gunicorn.conf.py.j2", **values), restarts=("web",)),
        RenderedFile(config / "setpoint_web_master.py", _package_text("runtime/local/superset_side/web_master.py"),
                     restarts=("web",)),
        RenderedFile(ctx.paths.superset_secrets_file,
                     json.dumps({k: secrets[k] for k in SUPERSET_SECRETS if k in secrets}, indent=2, sort_keys=True) + "\n",
                     mode=0o640, restarts=superset),
        # Read when a process starts; `up` applies a change to the live cgroup (no restart).
        RenderedFile(config / "limits.json", json.dumps(dataclasses.asdict(ctx.limits), sort_keys=True) + "\n"),
    ]
    if ctx.managed_postgres:
        files += [
            RenderedFile(
                config / "postgresql.conf",
                render_template("postgresql.conf.j2", **values),
                restarts=("postgres",),
            ),
            RenderedFile(config / "pg_hba.conf", render_template("pg_hba.conf.j2", **values, metadata_database=METADATA_DATABASE,
                                                                 metadata_role=METADATA_ROLE), restarts=(POSTGRES_AUTH,)),
            RenderedFile(config / "pg_ident.conf", render_template("pg_ident.conf.j2", **values, metadata_role=METADATA_ROLE),
                         restarts=(POSTGRES_AUTH,)),
            RenderedFile(
                config / "pgbackrest.conf",
                render_template("pgbackrest.conf.j2", **values, secrets=secrets),
                mode=0o640,  # its repository's keys: the data account's, which runs pgBackRest
                group=ctx.data_user,
            ),
        ]
    if ctx.managed_redis:
        files += [
            RenderedFile(config / "redis.conf", render_template("redis.conf.j2", **values), restarts=("redis",)),
            RenderedFile(
                config / "redis-auth.conf",
                f"requirepass {secrets['redis_password']}\n",
                mode=0o640,  # read by Redis, which runs as Superset's account
                restarts=("redis",),
            ),
        ]
    return files


def render_programs_conf(ctx: InstanceContext, app: bool = True) -> str:
    """The supervisor include file of one instance."""
    confined = bool(ctx.confine_python)

    def command(program: Program) -> str:
        if not confined:
            return program.command
        return " ".join([*confine_prefix(ctx.confine_python, ctx.cgroup, program.user, ctx.paths.config / "limits.json"),
                         program.command])

    programs = instance_programs(ctx, app=app)
    return render_template("programs.conf.j2", spec=ctx.spec, paths=ctx.paths, confined=confined,
                           programs=[(p, command(p)) for p in programs])


MAINTENANCE_RETRY_S = 60


def render_site(ctx: InstanceContext, proxy_secret: str | None = None, maintenance: str | None = None) -> str:
    """The Caddy site block of one instance: TLS, HSTS, the HTTP redirect, the proxy, which proves
    to Superset with `proxy_secret` that it forwarded each request (superset_side/proxy.py); or,
    with `maintenance` (what is happening), a 503 page that asks browsers to come back."""
    lan = [f"https://{address}:{ctx.spec.lan_https_port}" for address in ctx.lan_addresses] if ctx.spec.lan_https_port else []
    return render_template("site.caddy.j2", spec=ctx.spec, ports=ctx.ports, paths=ctx.paths, lan_sites=lan,
                           maintenance=maintenance, retry_s=MAINTENANCE_RETRY_S, proxy_secret=proxy_secret)


@dataclass(frozen=True)
class Monitoring:
    """The host's monitoring services (observability/monitoring.py): their account, binaries, ports."""

    user: str
    prometheus_bin: str
    node_exporter_bin: str
    prometheus_port: int
    node_exporter_port: int
    caddy_metrics_port: int
    alertmanager_bin: str
    alertmanager_port: int
    blackbox_bin: str
    blackbox_port: int
    postgres_exporter_bin: str
    postgres_exporter_port: int
    redis_exporter_bin: str
    redis_exporter_port: int
    mailbox_port: int  # the host's mailbox (observability/mailbox.py)
    # The password of Prometheus's and Alertmanager's HTTP APIs (user API_USER), 0640 to their
    # account: they answer no one without it, even on loopback.
    password_file: Path
    # The certificates with which Prometheus alone scrapes the Redis exporter, which takes no
    # password (observability/scrape_tls.py).
    scrape_tls: ScrapeTls
    retention_days: int = 30
    scrape_interval_s: int = 15
    # Where Prometheus's and Alertmanager's UIs are served through Caddy (their links start there).
    console_url: str | None = None


MONITORING_API_USER = "setpoint"


def render_monitoring_web_config(password_hash: str) -> str:
    """The --web.config.file of Prometheus, Alertmanager and the node and PostgreSQL exporters: basic
    authentication, bcrypt."""
    return render_template("monitoring-web.yml.j2", user=MONITORING_API_USER, password_hash=password_hash)


def render_consoles_site(monitoring: Monitoring, https_ports: list[int]) -> str:
    """The Caddy site serving the host's Prometheus (/prometheus/) and Alertmanager
    (/alertmanager/) at https://localhost on every HTTPS port the host's instances use."""
    sites = [f"https://localhost:{port}" for port in https_ports]
    return render_template("consoles.caddy.j2", sites=sites, monitoring=monitoring)


def render_caddyfile(home: Home, admin_socket: Path, metrics_port: int, metrics_password_hash: str) -> str:
    """The host's Caddyfile, which imports every instance's site; Caddy's metrics answer only the
    monitoring password (`metrics_password_hash`, bcrypt)."""
    return render_template("Caddyfile.j2", home=home, admin_socket=admin_socket, metrics_port=metrics_port,
                           api_user=MONITORING_API_USER, metrics_password_hash=metrics_password_hash)


def render_supervisord_conf(home: Home, caddy_bin: str, caddy_user: str, python: str, monitoring: Monitoring,
                            rsyslog_bin: str, logstore_user: str) -> str:
    """The host's supervisord configuration: Caddy, the scheduler, Prometheus, Alertmanager, the
    node exporter, the log store, every instance's include file."""
    return render_template("supervisord.conf.j2", home=home, caddy_bin=caddy_bin, caddy_user=caddy_user, python=python,
                           monitoring=monitoring, monitoring_dir=home.monitoring_dir, rsyslog_bin=rsyslog_bin,
                           logstore_user=logstore_user)


# The synthetic checks of every instance: what a user's browser asks first, over HTTPS through
# Caddy: its path, the blackbox exporter's module that asks it, what the answer's body must hold.
SYNTHETIC_CHECKS = {"health": ("health", "setpoint_health", "^OK"),
                    "login": ("login/", "setpoint_login", 'name="csrf_token"'),
                    "chart": ("setpoint/probe/chart", "setpoint_chart", "^OK")}
LOCAL_PROBE_POINT = "local"  # the host's own blackbox exporter


def probed_chart(spec: InstanceSpec) -> str | None:
    """The chart whose data the synthetic checks load: the spec's, else the sample one."""
    return spec.probes.chart or (PROBED_CHART if spec.examples else None)


def synthetic_checks(spec: InstanceSpec) -> list[str]:
    """The synthetic checks of an instance: /health and the login page, and a chart's data when
    it has one to probe."""
    return [check for check in SYNTHETIC_CHECKS if check != "chart" or probed_chart(spec)]


def render_prometheus_config(home: Home, monitoring: Monitoring, probed: dict[str, InstanceSpec],
                             postgres_ports: dict[str, int]) -> str:
    """The host's Prometheus: itself, the host, Caddy, each instance's Superset and Redis
    (discovered from the files `up` writes under monitoring/targets*/), each instance's PostgreSQL
    (by its port in `postgres_ports`), and the synthetic checks of each instance in `probed` from
    the host's blackbox exporter and the probe points of its spec."""
    synthetic = {
        name: [
            {"url": spec.url + path, "point": point, "address": address, "check": check, "module": module,
             "remote": point != LOCAL_PROBE_POINT}
            for point, address in [(LOCAL_PROBE_POINT, f"127.0.0.1:{monitoring.blackbox_port}"),
                                   *((p, p) for p in spec.probes.points)]
            for check in synthetic_checks(spec)
            for path, module, _ in [SYNTHETIC_CHECKS[check]]
        ]
        for name, spec in sorted(probed.items())
    }
    return render_template("prometheus.yml.j2", monitoring=monitoring, monitoring_dir=home.monitoring_dir,
                           synthetic=synthetic, probed=probed, api_user=MONITORING_API_USER,
                           postgres_ports=dict(sorted(postgres_ports.items())))


def render_blackbox_config(ca_file: Path | str) -> str:
    """A blackbox exporter's modules for Setpoint's synthetic checks, trusting the CAs in `ca_file`."""
    return render_template("blackbox.yml.j2", ca_file=ca_file,
                           modules={module: body for _, module, body in SYNTHETIC_CHECKS.values()})


def render_host_rules() -> str:
    """The host's alert rules: CPU and disks."""
    return render_template("rules-host.yml.j2")


def render_instance_rules(spec: InstanceSpec) -> str:
    """An instance's alert rules, with the thresholds of its spec: down, synthetic checks, 5xx
    ratio, backups, drills."""
    return render_template("rules-instance.yml.j2", spec=spec, chart_checked=probed_chart(spec) is not None)


@dataclass(frozen=True)
class EmailReceiver:
    """An address that receives alerts by e-mail, through the mail server of its instance's spec."""

    to: str
    smtp: Smtp
    password: str = ""  # from the instance's secret store, when the server asks for a login

    @property
    def smarthost(self) -> str:
        host = f"[{self.smtp.host}]" if ":" in self.smtp.host else self.smtp.host
        return f"{host}:{self.smtp.port}"


@dataclass(frozen=True)
class Receivers:
    """Where the alerts of one instance go."""

    webhooks: tuple[str, ...] = ()
    emails: tuple[EmailReceiver, ...] = ()
    slack: tuple[tuple[str, str | None], ...] = ()  # (webhook URL, channel)
    pagerduty: tuple[str, ...] = ()  # routing keys


def render_alertmanager_config(receivers: dict[str, Receivers]) -> str:
    """The host's Alertmanager: each instance's alerts to its receivers, the host's to all of them."""
    def every_distinct(kind: str, key=lambda value: value) -> tuple:
        return tuple({key(value): value for r in receivers.values() for value in getattr(r, kind)}.values())

    every = Receivers(every_distinct("webhooks"), every_distinct("emails", lambda e: (e.to, e.smarthost)),
                      every_distinct("slack"), every_distinct("pagerduty"))
    return render_template("alertmanager.yml.j2", receivers=receivers, every=every)


SYSTEM_CA_FILE = "/etc/ssl/certs/ca-certificates.crt"  # Debian's bundle of public CAs


def render_logstore_config(home: Home) -> str:
    """The host's log store (rsyslog): the record formats, the host's own logs, every instance's
    file (rsyslog.d/NAME.conf)."""
    return render_template("rsyslog.conf.j2", store=home.logstore_dir, ca_file=SYSTEM_CA_FILE,
                           scheduler_log=home.supervisor_dir / "scheduler.log")


def logged_components(ctx: InstanceContext) -> list[tuple[str, Path]]:
    """Each component of an instance that writes a log on this host, and that log."""
    programs = [p.component for p in instance_programs(ctx)]
    return [(component, ctx.paths.logs / f"{component}.log") for component in programs] + [("access", ctx.paths.access_log)]


def render_logstore_instance(ctx: InstanceContext, ca_file: Path | None = None) -> str:
    """What the host's log store reads of one instance, where it files it, and where it forwards it
    (trusting the remote's CA in `ca_file`, the store's copy of the spec's logs.remote_ca_file)."""
    return render_template("rsyslog-instance.conf.j2", spec=ctx.spec, inputs=logged_components(ctx),
                           audit_log=ctx.paths.audit_log, remote=ctx.spec.logs.remote_address, ca_file=ca_file)


def render_boot_unit(home: Home, command: str) -> str:
    """The systemd unit that starts the host's services and instances at boot with `command`."""
    return render_template("setpoint.service.j2", home=home, command=command)
