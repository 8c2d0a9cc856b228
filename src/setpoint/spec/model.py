"""The desired state of one Superset instance, as pydantic models: data, no I/O."""

from __future__ import annotations

import enum
import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$|^[a-z]$"
HOSTNAME_PATTERN = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


def version_key(version: str) -> tuple[int, ...]:
    """A Superset version, comparable: 4.1.4 < 6.0.0 < 6.1.0."""
    return tuple(int(part) for part in version.split("."))


def supported_superset_versions() -> list[str]:
    """Superset versions with a tested constraints file shipped in this package, oldest first."""
    folder = resources.files("setpoint") / "constraints"
    names = [p.name for p in folder.iterdir() if p.name.startswith("superset-")]
    return sorted((n.removeprefix("superset-").removesuffix(".txt") for n in names), key=version_key)


def _check_hostname(value: str) -> str:
    value = value.lower()
    if not HOSTNAME_PATTERN.match(value):
        raise ValueError("must be a DNS hostname such as bi.example.com or demo.localhost")
    return value


def _check_version(value: str) -> str:
    supported = supported_superset_versions()
    if value not in supported:
        raise ValueError(f"Superset {value} is not supported; supported: {', '.join(supported)}")
    return value


def _check_postgres_url(value: str) -> str:
    if not re.match(r"^postgres(ql)?(\+psycopg2)?://", value):
        raise ValueError("must be a postgresql:// URL")
    return value


def _check_redis_url(value: str) -> str:
    if not re.match(r"^rediss?://", value):
        raise ValueError("must be a redis:// or rediss:// URL")
    return value


USERNAME_PATTERN = r"^[A-Za-z0-9_.@-]{3,64}$"
InstanceName = Annotated[str, Field(pattern=NAME_PATTERN, description="lowercase letters, digits and dashes")]
Hostname = Annotated[str, AfterValidator(_check_hostname)]
Port = Annotated[int, Field(ge=1, le=65535)]
SupersetVersion = Annotated[str, AfterValidator(_check_version)]
PostgresUrl = Annotated[str, AfterValidator(_check_postgres_url)]
RedisUrl = Annotated[str, AfterValidator(_check_redis_url)]


class Strict(BaseModel):
    """Base for every spec section: unknown fields are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class EvictionPolicy(str, enum.Enum):
    # volatile-* only evicts keys with a TTL (cache entries), so Celery's queues are never evicted.
    volatile_lru = "volatile-lru"
    volatile_lfu = "volatile-lfu"
    volatile_ttl = "volatile-ttl"
    allkeys_lru = "allkeys-lru"


class Driver(str, enum.Enum):
    """Database drivers, as Superset's own pip extras."""

    postgres = "postgres"
    mysql = "mysql"
    clickhouse = "clickhouse"
    trino = "trino"
    bigquery = "bigquery"
    snowflake = "snowflake"
    databricks = "databricks"
    duckdb = "duckdb"
    mssql = "mssql"


class MetadataDatabase(Strict):
    """Superset's metadata database: a managed PostgreSQL cluster unless `url` names one."""

    url: PostgresUrl | None = Field(None, description="external PostgreSQL URL; empty for a managed cluster")
    port: Port | None = Field(None, description="loopback port of the managed cluster; chosen when empty")


class Cache(Strict):
    """Redis for caches, Celery broker and results, rate limits and async queries."""

    url: RedisUrl | None = Field(None, description="external Redis URL; empty for a managed Redis")
    port: Port | None = Field(None, description="loopback port of the managed Redis; chosen when empty")
    maxmemory_mb: int = Field(256, ge=64, le=65536)
    eviction_policy: EvictionPolicy = EvictionPolicy.volatile_lru


class Offsite(Strict):
    """A second pgBackRest repository on S3-compatible storage (Backblaze B2, Wasabi, AWS S3...).

    Its access keys are read from the environment variables named here when `up` runs, and kept
    in the instance's secret store from then on."""

    endpoint: Hostname = Field(..., description="S3 endpoint host, e.g. s3.eu-central-003.backblazeb2.com")
    port: Port = 443
    bucket: str = Field(..., pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    region: str = "us-east-1"
    path: str = Field("/setpoint", pattern=r"^/[A-Za-z0-9._/-]*$")
    uri_style: Literal["host", "path"] = "host"
    ca_file: str | None = Field(None, description="CA certificate of the endpoint, when not a public one")
    access_key_env: str = "SETPOINT_OFFSITE_ACCESS_KEY"
    secret_key_env: str = "SETPOINT_OFFSITE_SECRET_KEY"


class Backup(Strict):
    """pgBackRest backups of the metadata database: retention, drills, RPO."""

    retention_days: int = Field(30, ge=30, le=3650, description="time-based retention of full backups")
    full_every_hours: int = Field(24, ge=1, le=168, description="a full backup at least this often")
    drill_every_days: int = Field(90, ge=1, le=91, description="restore drills; point 14 needs one within 92 days")
    archive_timeout_s: int = Field(60, ge=10, le=60, description="WAL switch interval: the recovery point objective")
    offsite: Offsite | None = None


def _check_target(value: str) -> str:
    host, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    if not HOSTNAME_PATTERN.match((host or value).lower()) or (port and not (port.isdigit() and 0 < int(port) < 65536)):
        raise ValueError("must be a hostname, optionally with :port (warehouse.internal or warehouse.internal:5432)")
    return value.lower()


DatabaseTarget = Annotated[str, AfterValidator(_check_target)]


class Databases(Strict):
    """The databases users may add: drivers from `drivers`, hosts outside this machine and its
    private networks, and the hosts named here (a warehouse on a private network, say)."""

    allowed_hosts: list[DatabaseTarget] = Field(
        default_factory=list, description="hosts (host or host:port) users may connect to although they are private")


class Resources(Strict):
    """Limits of everything the instance runs (cgroups): past its memory it loses a process of its
    own, which its supervisor restarts; it never takes more processes than this. Without `cpus` it
    uses every core the other instances leave idle, and when they compete it gets a share in
    proportion to its size (a core's weight per 100 users). Empty fields are derived from the
    instance's size (setpoint spec NAME shows the sizing inputs)."""

    memory_mb: int | None = Field(None, ge=768, le=1048576, description="memory of all its processes, page cache included; "
                                  "a report's or thumbnail's render takes about 650 MiB more than the idle instance")
    cpus: float | None = Field(None, gt=0, le=512, description="a hard cap of CPU time, in cores (none by default)")
    pids: int | None = Field(None, ge=128, le=1000000, description="processes and threads")


class Tasks(Strict):
    """Work the Celery worker runs (SQL Lab and async chart queries, thumbnails, reports): how
    long it may run, and how long a worker restart waits for it."""

    query_time_limit_s: int = Field(
        600, ge=10, le=21600,
        description="an async SQL Lab or chart query stops after this (and PostgreSQL analytics connections "
                    "cancel statements after it); a query still running a minute past it is marked failed")
    sql_lab_timeout_s: int = Field(30, ge=5, le=3600, description="a synchronous SQL Lab query (run in web) stops after this")
    shutdown_grace_s: int = Field(
        60, ge=5, le=3600,
        description="a worker restart lets running tasks finish this long; the rest go back to the queue and run again")


class Screenshots(Strict):
    """Images of dashboards and charts (reports in PNG or PDF, thumbnails), rendered by the
    Celery worker in Debian's headless Chromium as the user they are for: a report as its owner, a
    thumbnail as the user who looks at it."""

    thumbnails: bool = Field(True, description="dashboard and chart thumbnails in the card views, cached in Redis")
    load_timeout_s: int = Field(
        60, ge=10, le=600,
        description="a page whose charts still load after this fails its report or thumbnail, and frees the worker")


class Sessions(Strict):
    """Browser sessions, kept in the instance's Redis: logging out ends a session for good (a copied
    cookie no longer works), and every session ends when idle and at the end of its lifetime."""

    idle_timeout_min: int = Field(480, ge=5, le=10080, description="a session unused this long ends")
    lifetime_h: int = Field(24, ge=1, le=720,
                            description="a session (and an API refresh token) ends this long after its login, used or not")


def _each_matches(values: list[str], pattern: str, rule: str) -> list[str]:
    bad = [v for v in values if not re.match(pattern, v)]
    if bad:
        raise ValueError(f"{rule} (got {', '.join(bad)})")
    return values


EMAIL_PATTERN = r"^[^@\s]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$"
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


class Smtp(Strict):
    """The mail server that sends this instance's alert e-mails (alerts.emails). Its password is
    read from the environment variable `password_env` when `up` runs, and kept in the instance's
    secret store from then on."""

    host: str = Field(..., description="the server's hostname or address")
    port: Port = 587
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="starttls (port 587), tls (implicit, port 465) or none (a relay on this host only)")
    username: str | None = Field(None, description="login, when the server asks for one")
    password_env: str = "SETPOINT_SMTP_PASSWORD"
    from_address: str = Field(..., pattern=EMAIL_PATTERN, description="the sender of every e-mail")

    @model_validator(mode="after")
    def _secure_enough(self) -> Smtp:
        if self.host not in LOOPBACK_HOSTS and not HOSTNAME_PATTERN.match(self.host.lower()):
            raise ValueError(f"host must be a hostname or a loopback address (got {self.host})")
        if self.security == "none" and self.host not in LOOPBACK_HOSTS:
            raise ValueError("security none sends mail and passwords in clear text: only to a relay on this host "
                             f"({', '.join(LOOPBACK_HOSTS)}); use starttls or tls for {self.host}")
        if self.security == "tls" and self.port != 465:
            raise ValueError(f"security tls is implicit TLS on port 465 (got port {self.port}); use starttls for others")
        return self


class Slack(Strict):
    """A Slack (or Mattermost) channel that receives the alerts through an incoming webhook. Its URL
    is a secret: read from the environment variable `webhook_url_env` when `up` runs, and kept in
    the instance's secret store from then on."""

    channel: str | None = Field(None, pattern=r"^#?[a-z0-9_.-]{1,80}$", description="the webhook's own channel when empty")
    webhook_url_env: str = "SETPOINT_SLACK_WEBHOOK_URL"


class PagerDuty(Strict):
    """A PagerDuty service that receives the alerts (Events API v2). Its integration (routing) key
    is read from the environment variable `routing_key_env` when `up` runs, then from the secret
    store."""

    routing_key_env: str = "SETPOINT_PAGERDUTY_ROUTING_KEY"


class Alerts(Strict):
    """Alerts about this instance, evaluated by the host's Prometheus and sent by its Alertmanager
    to the receivers named here (firing, then resolved); the host's own alerts (CPU, disk) go to
    every instance's receivers."""

    webhooks: list[str] = Field(
        default_factory=list,
        description="URLs that receive the alerts as JSON POSTs (Alertmanager's webhook format)")
    emails: list[str] = Field(default_factory=list, description="addresses that receive the alerts by e-mail (needs smtp:)")
    slack: Slack | None = None
    pagerduty: PagerDuty | None = None
    instance_down_after_s: int = Field(120, ge=10, le=3600, description="alert when Superset has not answered this long")
    error_ratio: float = Field(0.05, gt=0, lt=1, description="alert when this share of the web server's answers are 5xx ...")
    error_for_s: int = Field(300, ge=60, le=3600, description="... for this long")
    backup_max_age_h: int = Field(26, ge=1, le=720, description="alert when the last full backup is older than this")

    @field_validator("webhooks")
    @classmethod
    def _http_urls(cls, urls: list[str]) -> list[str]:
        return _each_matches(urls, r"^https?://[^\s/]+(/\S*)?$", "webhooks are http:// or https:// URLs")

    @field_validator("emails")
    @classmethod
    def _addresses(cls, emails: list[str]) -> list[str]:
        return _each_matches(emails, EMAIL_PATTERN, "emails are addresses like ops@example.com")


class Metrics(Strict):
    """The instance's metrics in the host's Prometheus."""

    retention_days: int = Field(
        30, ge=1, le=3650,
        description="days the host's Prometheus keeps the metrics (one store for the host: it keeps the longest any instance asks)")


class Logs(Strict):
    """The instance's logs and audit trail in the host's central log store (rsyslog), and the
    remote store that receives a copy of every record."""

    retention_days: int = Field(30, ge=1, le=3650, description="days the host's store keeps the logs")
    audit_retention_days: int = Field(365, ge=1, le=3650, description="days the host's store keeps the audit trail")
    remote: str | None = Field(
        None, description="a syslog server that receives every record (RFC 5424 over TCP): tls://HOST:PORT "
                          "(or tcp://HOST:PORT on a trusted network); while it is unreachable, records wait on disk")
    remote_ca_file: Path | None = Field(
        None, description="the CA certificate that signs the remote's certificate (tls://); the system's CAs when empty")
    queue_max_mb: int = Field(1024, ge=16, le=1048576, description="disk the records waiting for the remote may use")

    @field_validator("remote")
    @classmethod
    def _syslog_url(cls, remote: str | None) -> str | None:
        if remote is not None and not re.match(r"^(tcp|tls)://[A-Za-z0-9.:\[\]-]+:[0-9]{1,5}$", remote):
            raise ValueError(f"remote is tls://HOST:PORT or tcp://HOST:PORT (got {remote})")
        return remote

    @property
    def remote_tls(self) -> bool:
        return bool(self.remote) and self.remote.startswith("tls://")

    @property
    def remote_address(self) -> tuple[str, int] | None:
        """The remote's host and port."""
        if not self.remote:
            return None
        host, _, port = self.remote.split("://", 1)[1].rpartition(":")
        return host.strip("[]"), int(port)


class Probes(Strict):
    """Synthetic checks: the instance's /health, login page and one chart's data, over HTTPS, from the host's own
    blackbox exporter and from each probe point named here (a prometheus-blackbox-exporter on
    another host or network, configured with `setpoint probe-config`), at a fixed interval."""

    points: list[str] = Field(
        default_factory=list,
        description="HOST:PORT of each blackbox exporter elsewhere that probes the instance; "
                    "the checklist wants 3 probe points with recent successes, the host's own counting as one")
    interval_s: int = Field(60, ge=5, le=600, description="seconds between two probes from each point")
    chart: str | None = Field(
        None, min_length=1, max_length=250,
        description="name of the chart whose data the checks also load, fresh from its database "
                    "(GET /setpoint/probe/chart answers OK or 503, nothing else); empty: the sample "
                    "dashboard's 'Top countries' when examples are on, else no chart check")

    @field_validator("points")
    @classmethod
    def _host_ports(cls, points: list[str]) -> list[str]:
        _each_matches(points, r"^[A-Za-z0-9.-]+:[0-9]{1,5}$", "probe points are HOST:PORT of a blackbox exporter")
        if len(set(points)) != len(points):
            raise ValueError("each probe point is named once")
        return points


class Runbook(Strict):
    """The incident runbook (`setpoint runbook NAME`), kept outside the instance with the
    disaster-recovery plan: in every backup repository and the dashboards' git repository."""

    contacts: list[str] = Field(
        default_factory=list,
        description="who is called in an incident, in order: a name with a phone, an e-mail or an on-call rotation")
    emergency_access_max_h: int = Field(
        4, ge=1, le=72, description="the longest time an emergency admin (setpoint emergency-access) may live")


class Gdpr(Strict):
    """The instance's record of processing activities (GDPR article 30), rendered as its
    processing register and kept with the runbook, and the erasure drills that prove
    `setpoint gdpr erase` works (point 23)."""

    controller: str = Field(..., min_length=3, description="the controller's name and contact, e.g. 'Acme SAS, dpo@acme.example'")
    purposes: list[str] = Field(
        default_factory=lambda: ["business intelligence: dashboards, charts and queries on the organisation's data"],
        min_length=1)
    data_subjects: list[str] = Field(default_factory=lambda: ["people with an account on the instance"], min_length=1)
    categories: list[str] = Field(
        default_factory=lambda: ["identity: username, first and last name, e-mail address",
                                 "activity: logins, queries, views and changes (the audit trail and the logs)",
                                 "content: dashboards, charts, saved queries and their ownership"],
        min_length=1)
    hosting_location: str = Field(..., min_length=2, description="where the host runs, e.g. 'OVH, Gravelines, France (EU)'")
    recipients: list[str] = Field(default_factory=list, description="who else receives the data (other than the processors)")
    processors: list[str] = Field(default_factory=list, description="processors and what they do, e.g. 'Backblaze: off-site backups'")
    security_measures: list[str] = Field(default_factory=list, description="measures beyond those Setpoint lists itself")
    erasure_drill_every_days: int = Field(90, ge=1, le=365, description="an erasure drill at least this often")


ROLE_NAME_PATTERN = r"^[A-Za-z0-9 _.-]{1,64}$"


class Sso(Strict):
    """Single sign-on through an OpenID Connect provider (point 4): Keycloak
    (https://idp.example/realms/REALM), Entra ID (https://login.microsoftonline.com/TENANT/v2.0),
    Google Workspace (https://accounts.google.com) or any other. Users are created at their first
    login and get their roles from their groups at every login; a user in no mapped group is
    refused unless `default_role` is set. Password logins are refused, except for the accounts
    whose password only this host holds: the instance's admin and emergency admins
    (setpoint emergency-access), through /break-glass/ or the API. The client secret is read
    from the environment variable `client_secret_env` when `up` runs, then from the secret store."""

    issuer: str = Field(..., description="the provider's issuer URL; its discovery document is ISSUER/.well-known/openid-configuration")
    client_id: str = Field(..., min_length=1, max_length=255)
    client_secret_env: str = "SETPOINT_SSO_CLIENT_SECRET"
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"],
                              description="asked of the provider; openid is always one of them")
    groups_claim: str = Field("groups", min_length=1, description="the claim (ID token or userinfo) that lists the user's groups")
    roles: dict[str, list[str]] = Field(
        default_factory=dict, description="a group (as the provider names it) and the Superset roles its members get")
    default_role: str | None = Field(
        None, pattern=ROLE_NAME_PATTERN, description="the role of a user in no mapped group; empty: such a user is refused")
    button: str = Field("Single sign-on", min_length=1, max_length=60, description="the label of the login page's button")

    @field_validator("issuer")
    @classmethod
    def _https_issuer(cls, issuer: str) -> str:
        match = re.match(r"^(https?)://([^/\s:]+|\[[0-9a-fA-F:]+\])(:[0-9]{1,5})?(/\S*)?$", issuer)
        if not match:
            raise ValueError(f"issuer is an https:// URL (got {issuer})")
        if match[1] == "http" and match[2].strip("[]") not in LOOPBACK_HOSTS:
            raise ValueError(f"issuer must be https:// (got {issuer}); http:// is only for a provider on this host")
        return issuer.rstrip("/")

    @field_validator("scopes")
    @classmethod
    def _openid_scope(cls, scopes: list[str]) -> list[str]:
        _each_matches(scopes, r"^[A-Za-z0-9_.:/-]+$", "scopes are single words")
        return scopes if "openid" in scopes else ["openid", *scopes]

    @field_validator("roles")
    @classmethod
    def _role_names(cls, roles: dict[str, list[str]]) -> dict[str, list[str]]:
        for group, names in roles.items():
            if not names:
                raise ValueError(f"group {group} maps to no role: name one, or remove the group")
            _each_matches(names, ROLE_NAME_PATTERN, f"group {group}'s roles are role names")
        return roles

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"


class Role(Strict):
    """A role made by `up` from one of Superset's base roles, plus read access to named datasets
    and databases, held by the users it names (and, under single sign-on, by the groups mapped to
    it in sso.roles). `setpoint roles NAME --repair` puts it back when it drifted."""

    base: Literal["Gamma", "Alpha"] = Field("Gamma", description="the Superset role whose permissions it starts from")
    datasets: list[str] = Field(default_factory=list, description="datasets (by table name) its users may read")
    databases: list[str] = Field(default_factory=list, description="databases (by name) whose every dataset its users may read")
    users: list[Annotated[str, Field(pattern=USERNAME_PATTERN)]] = Field(
        default_factory=list, description="users (by username) who hold it; others may hold it too")
    sql_lab: bool = Field(False, description="whether its users may run SQL in SQL Lab (they bypass row-level security there)")


class RowLevelSecurity(Strict):
    """One multi-tenant dataset: each role in `filters` sees only the rows its clause selects;
    roles in `all_rows` (and Admin) see every row; every other role that can read the dataset,
    today or later, sees none (a base rule `1 = 0` for everyone else). Point 7 checks it."""

    dataset: str = Field(..., pattern=r"^[A-Za-z0-9_.$-]{1,250}$", description="the dataset's table name")
    tenant_column: str = Field(..., pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$",
                               description="the column that says whose a row is (the filters' group key: a user with two tenant roles sees both)")
    filters: dict[str, str] = Field(..., min_length=1,
                                    description="a role and the SQL clause on the dataset that selects its rows, e.g. region = 'Europe'")
    all_rows: list[str] = Field(default_factory=list, description="roles that see every row besides Admin")

    @field_validator("filters")
    @classmethod
    def _clauses(cls, filters: dict[str, str]) -> dict[str, str]:
        for role, clause in filters.items():
            _each_matches([role], ROLE_NAME_PATTERN, "filters are keyed by role names")
            if not clause.strip() or ";" in clause:
                raise ValueError(f"the filter of {role} is one SQL condition, without ';' (got {clause!r})")
        return filters


class Admin(Strict):
    """The first administrator; its password is generated, never chosen."""

    username: str = Field("admin", pattern=USERNAME_PATTERN)
    email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+$")
    first_name: str = "Superset"
    last_name: str = "Admin"


class InstanceSpec(Strict):
    """One Superset instance, as the user wants it."""

    name: InstanceName
    superset_version: SupersetVersion = "6.1.0"
    concurrent_users: int = Field(50, ge=1, le=10000, description="expected concurrent users; sizes workers")
    hostname: Hostname | None = Field(None, description="public name; NAME.localhost when empty")
    https_port: Port = 443
    http_port: Port = 80
    lan_https_port: Port | None = Field(
        None, description="also serve the instance on this host's network addresses at this port, with a "
                          "certificate from the internal CA (a host without a DNS name); empty: by hostname only")
    web_port: Port | None = Field(None, description="loopback port of gunicorn; chosen when empty")
    web_timeout_s: int = Field(300, ge=300, le=3600)
    metadata_db: MetadataDatabase = MetadataDatabase()
    cache: Cache = Cache()
    admin: Admin = Admin()
    admins: list[Annotated[str, Field(pattern=USERNAME_PATTERN)]] = Field(
        default_factory=list, description="who else may hold Admin (usernames); any other holder is drift (point 8)")
    backup: Backup = Backup()
    drivers: list[Driver] = Field(default_factory=list)
    databases: Databases = Databases()
    resources: Resources = Resources()
    tasks: Tasks = Tasks()
    sessions: Sessions = Sessions()
    screenshots: Screenshots = Screenshots()
    sso: Sso | None = None
    roles: dict[str, Role] = Field(default_factory=dict, description="roles made and kept by up (name: definition)")
    row_level_security: list[RowLevelSecurity] = Field(default_factory=list)
    alerts: Alerts = Alerts()
    smtp: Smtp | None = None
    logs: Logs = Logs()
    metrics: Metrics = Metrics()
    probes: Probes = Probes()
    runbook: Runbook = Runbook()
    gdpr: Gdpr | None = None
    feature_flags: dict[str, bool] = Field(default_factory=dict)
    examples: bool = True

    @field_validator("drivers")
    @classmethod
    def _no_file_reading_driver(cls, drivers: list[Driver]) -> list[Driver]:
        if Driver.duckdb in drivers:
            raise ValueError("duckdb reads and writes this host's files from SQL Lab, so instances refuse it "
                             "(as Superset itself does after 6.1.0); remove it from drivers")
        return drivers

    @field_validator("feature_flags")
    @classmethod
    def _flags_are_upper_case(cls, flags: dict[str, bool]) -> dict[str, bool]:
        bad = [k for k in flags if not re.match(r"^[A-Z][A-Z0-9_]*$", k)]
        if bad:
            raise ValueError(f"feature flag names are UPPER_CASE (got {', '.join(bad)})")
        if flags.get("GLOBAL_ASYNC_QUERIES") is False:
            raise ValueError("GLOBAL_ASYNC_QUERIES cannot be turned off (checklist point 13)")
        return flags

    @model_validator(mode="after")
    def _consistent(self) -> InstanceSpec:
        if self.https_port == self.http_port:
            raise ValueError(f"https_port and http_port must differ (both {self.https_port})")
        if self.tasks.sql_lab_timeout_s >= self.web_timeout_s:
            raise ValueError(f"tasks.sql_lab_timeout_s ({self.tasks.sql_lab_timeout_s}) must be below web_timeout_s "
                             f"({self.web_timeout_s}): the web process answers within web_timeout_s")
        if self.sessions.idle_timeout_min > self.sessions.lifetime_h * 60:
            raise ValueError(f"sessions.idle_timeout_min ({self.sessions.idle_timeout_min}) must not exceed "
                             f"sessions.lifetime_h ({self.sessions.lifetime_h} h)")
        if self.alerts.emails and self.smtp is None:
            raise ValueError("alerts.emails needs a mail server: add an smtp: section (host, from_address)")
        if reserved := sorted(set(self.roles) & {"Admin", "Alpha", "Gamma", "Public", "sql_lab"}):
            raise ValueError(f"roles may not redefine Superset's own {', '.join(reserved)}")
        datasets = [r.dataset for r in self.row_level_security]
        if len(set(datasets)) != len(datasets):
            raise ValueError("row_level_security names each dataset once")
        if self.lan_https_port in (self.https_port, self.http_port):
            raise ValueError(f"lan_https_port must differ from https_port and http_port (got {self.lan_https_port})")
        return self

    @property
    def host(self) -> str:
        """The hostname users reach the instance by."""
        return self.hostname or f"{self.name}.localhost"

    @property
    def url(self) -> str:
        """The instance's public URL."""
        port = "" if self.https_port == 443 else f":{self.https_port}"
        return f"https://{self.host}{port}/"

    @property
    def is_local_hostname(self) -> bool:
        """Local names get certificates from Caddy's internal CA; public names from ACME."""
        return self.host == "localhost" or self.host.endswith((".localhost", ".local", ".internal", ".test"))

    @property
    def admin_email(self) -> str:
        return self.admin.email or f"{self.admin.username}@{self.host}"
