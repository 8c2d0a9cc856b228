"""The host's monitoring: Prometheus, Alertmanager, the node exporter and the blackbox exporter,
under the host's supervisord as the account `setpoint-monitor`, each on a loopback port of its
own (chosen once per host and kept in monitoring/ports.json), and Caddy's metrics on another.

Prometheus scrapes itself, the host, Caddy and every instance's Superset, has the host's
blackbox exporter and the probe points of each spec ask the instance's public URL (synthetic
checks), and evaluates the host's alert rules and each instance's; Alertmanager sends each
instance's alerts to the receivers of its spec (webhooks, e-mail, Slack, PagerDuty). `up` publishes an instance (its scrape target, its
probes, its rules, its routes), waits until Prometheus has scraped it, and `down`/`destroy`
withdraw it. Checklist points 19, 20 and 21 ask the same Prometheus and Alertmanager.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import bcrypt
import httpx
import yaml

from setpoint import proc
from setpoint.errors import InputError, SetpointError
from setpoint.home import Home, caddy_user, chown, is_root, monitor_user, write_file
from setpoint.net import is_port_free, port_base
from setpoint.render import (
    MONITORING_API_USER,
    SYSTEM_CA_FILE,
    InstanceContext,
    Monitoring,
    EmailReceiver,
    Receivers,
    render_alertmanager_config,
    render_blackbox_config,
    render_consoles_site,
    render_host_rules,
    render_instance_rules,
    render_monitoring_web_config,
    render_prometheus_config,
)
from setpoint.observability import mailbox, scrape_tls
from setpoint.observability.scrape_tls import ScrapeTls
from setpoint.runtime.local.accounts import ensure_account
from setpoint.secret import SecretStore, generate_secret, given_or_stored
from setpoint.services import smtp
from setpoint.services.caddy import Caddy
from setpoint.spec import InstanceSpec
from setpoint.spec.model import Smtp

PORT_NAMES = ("prometheus", "node_exporter", "caddy_metrics", "alertmanager", "blackbox", "postgres_exporter",
              "redis_exporter", "mailbox")


def monitoring_of(home: Home) -> Monitoring:
    """The host's monitoring services, with their ports (allocated the first time)."""
    ports_file = home.monitoring_dir / "ports.json"
    ports = json.loads(ports_file.read_text()) if ports_file.exists() else {}
    if set(PORT_NAMES) - set(ports):
        port = port_base()
        for name in PORT_NAMES:
            while name not in ports:
                if port not in ports.values() and is_port_free(port, "127.0.0.1"):
                    ports[name] = port
                port += 1
        write_file(ports_file, json.dumps(ports, indent=2, sort_keys=True) + "\n")
    return Monitoring(
        user=monitor_user(),
        prometheus_bin=proc.find_binary("prometheus"),
        node_exporter_bin=proc.find_binary("prometheus-node-exporter"),
        alertmanager_bin=proc.find_binary("prometheus-alertmanager"),
        prometheus_port=ports["prometheus"],
        node_exporter_port=ports["node_exporter"],
        caddy_metrics_port=ports["caddy_metrics"],
        alertmanager_port=ports["alertmanager"],
        blackbox_bin=proc.find_binary("prometheus-blackbox-exporter"),
        blackbox_port=ports["blackbox"],
        postgres_exporter_bin=proc.find_binary("prometheus-postgres-exporter"),
        postgres_exporter_port=ports["postgres_exporter"],
        redis_exporter_bin=proc.find_binary("prometheus-redis-exporter"),
        redis_exporter_port=ports["redis_exporter"],
        mailbox_port=ports["mailbox"],
        password_file=password_file(home),
        scrape_tls=ScrapeTls(home.monitoring_dir / "tls"),
    )


def password_file(home: Home) -> Path:
    """The host's monitoring password (0640 to the monitoring account): the login of Prometheus's
    and Alertmanager's APIs, and what Prometheus alone presents to scrape Caddy's and every
    instance's metrics."""
    return home.monitoring_dir / "password"


def scrape_digest(home: Home) -> str:
    """The SHA-256 of the monitoring password, which an instance keeps in its configuration to
    tell Prometheus's scrape of its metrics from any other local request: the password is 32
    random characters, so the digest does not give it away. Empty while there is no password."""
    password = password_file(home)
    return hashlib.sha256(password.read_bytes().strip()).hexdigest() if password.exists() else ""


def web_config_file(home: Home) -> Path:
    """The web configuration of the monitoring's servers: the login they check."""
    return home.monitoring_dir / "web.yml"


def api_password_hash(home: Home) -> str:
    """The bcrypt hash of the monitoring password (in web.yml, which `prepare` keeps current);
    empty while there is none."""
    web = web_config_file(home)
    users = yaml.safe_load(web.read_text()).get("basic_auth_users", {}) if web.exists() else {}
    return users.get(MONITORING_API_USER, "")


def host_specs(home: Home, converging: InstanceSpec | None = None) -> list[InstanceSpec]:
    """The specs of the host's instances, with `converging` as an `up` is about to save it."""
    from setpoint.runtime.local.instance import saved_spec

    specs = {name: saved_spec(home.instance(name)) for name in home.instance_names()}
    if converging is not None:
        specs[converging.name] = converging
    return [spec for spec in specs.values() if spec is not None]


def host_retention_days(specs: list[InstanceSpec]) -> int:
    """How long the host's one Prometheus keeps its data: the longest any spec asks
    (`metrics.retention_days`)."""
    return max((spec.metrics.retention_days for spec in specs),
               default=InstanceSpec.model_fields["metrics"].default.retention_days)


def console_ports(specs: list[InstanceSpec]) -> list[int]:
    """The HTTPS ports on which Caddy serves the host's Prometheus and Alertmanager: every port an
    instance uses, so an operator who reaches one instance reaches them."""
    return sorted({spec.https_port for spec in specs})


def console_url(specs: list[InstanceSpec]) -> str | None:
    ports = console_ports(specs)
    if not ports:
        return None
    port = 443 if 443 in ports else ports[0]
    return "https://localhost" + ("" if port == 443 else f":{port}")


def write_consoles_site(home: Home, monitoring: Monitoring, specs: list[InstanceSpec]) -> bool:
    """Caddy's site for the host's Prometheus and Alertmanager (none without an instance); whether
    it changed."""
    site = home.caddy_dir / "sites" / "_monitoring.caddy"
    if not specs:
        existed = site.exists()
        site.unlink(missing_ok=True)
        return existed
    return write_file(site, render_consoles_site(monitoring, console_ports(specs)), owner=caddy_user())


def console_login(home: Home) -> dict[str, str]:
    """Where the host's Prometheus is served through Caddy, and the login it asks for."""
    monitoring, specs = monitoring_of(home), host_specs(home)
    url = console_url(specs)
    if url is None or not monitoring.password_file.exists():
        raise InputError("this host runs no instance, so its monitoring is not served", "create one: setpoint up NAME")
    return {"url": f"{url}/prometheus/", "alertmanager": f"{url}/alertmanager/", "username": MONITORING_API_USER,
            "password": monitoring.password_file.read_text().strip()}


@dataclass(frozen=True)
class Changes:
    """Which of the monitoring's configurations a write changed (each needs its server's reload)."""

    prometheus: bool = False
    alertmanager: bool = False
    blackbox: bool = False
    exporters: bool = False  # the PostgreSQL and Redis exporters' connections (read at start)


def prepare(home: Home, monitoring: Monitoring, log=lambda message: None) -> Changes:
    """The account, directories and configuration of the host's monitoring."""
    if is_root() and ensure_account(monitoring.user, "monitoring account"):
        log(f"created the account {monitoring.user} for Prometheus, Alertmanager and the node exporter")
    base = home.monitoring_dir
    for directory in (base, base / "targets", base / "targets-redis", base / "rules", base / "facts"):
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o755)
    for storage in (base / "prometheus", base / "alertmanager", base / "mailbox"):
        storage.mkdir(exist_ok=True)
        storage.chmod(0o700)
        chown(storage, monitoring.user)
    _ensure_api_password(home, monitoring)
    certificates = scrape_tls.ensure(home.root, monitoring.scrape_tls, monitoring.user)
    if certificates:
        log(f"made the certificates with which Prometheus alone scrapes the Redis exporter ({monitoring.scrape_tls.directory})")
    config = _write_prometheus(home, monitoring)
    rules = write_file(base / "rules" / "host.yml", render_host_rules())
    probes = write_file(base / "blackbox.yml", render_blackbox_config(probe_ca_file(home)))
    return Changes(prometheus=config or rules or certificates, alertmanager=_write_routes(home), blackbox=probes,
                   exporters=_write_exporter_access(home, monitoring) or certificates)


def _ensure_api_password(home: Home, monitoring: Monitoring) -> None:
    """The password of Prometheus's and Alertmanager's APIs (generated once, 0640 to their
    account), and the bcrypt hash they check it against (each reads it again on every request)."""
    group = monitoring.user if is_root() else None
    if not monitoring.password_file.exists():
        write_file(monitoring.password_file, generate_secret(32), mode=0o640, owner="root" if group else None, group=group)
    password = monitoring.password_file.read_text().encode()
    hashed = api_password_hash(home)
    if not (hashed and bcrypt.checkpw(password, hashed.encode())):
        # Cost 10: the servers cache a checked password, and the first check stays under 0.1 s.
        hashed = bcrypt.hashpw(password, bcrypt.gensalt(10)).decode()
        write_file(web_config_file(home), render_monitoring_web_config(hashed))


def probe_ca_file(home: Home) -> Path:
    """The CAs the host's probes trust: the system's, and Caddy's local CA for local hostnames."""
    return home.monitoring_dir / "probe-ca.pem"


def _write_probe_ca(home: Home) -> bool:
    local_ca = Caddy(home).ca_root
    bundle = Path(SYSTEM_CA_FILE).read_text() + (local_ca.read_text() if local_ca.exists() else "")
    return write_file(probe_ca_file(home), bundle)


def write_probe_point_config(home: Home, directory: Path, ca_path: Path) -> list[Path]:
    """The configuration of a probe point on another host: the blackbox exporter's modules, which
    read the CAs from `ca_path` there, and those CAs; written into `directory`."""
    _write_probe_ca(home)
    config, ca = directory / "blackbox.yml", directory / ca_path.name
    try:
        directory.mkdir(parents=True, exist_ok=True)
        write_file(config, render_blackbox_config(ca_path))
        write_file(ca, probe_ca_file(home).read_text())
    except OSError as exc:
        raise InputError(f"cannot write the probe point's files into {directory} ({exc.strerror})",
                         "name a directory you may write with --output, e.g. --output /tmp/probe") from None
    return [config, ca]


def _targets_file(home: Home, name: str) -> Path:
    return home.monitoring_dir / "targets" / f"{name}.json"


def _redis_targets_file(home: Home, name: str) -> Path:
    return home.monitoring_dir / "targets-redis" / f"{name}.json"


def _rules_file(home: Home, name: str) -> Path:
    return home.monitoring_dir / "rules" / f"instance-{name}.yml"


def _published(home: Home) -> dict[str, InstanceSpec]:
    """The saved spec of every instance the monitoring observes."""
    from setpoint.runtime.local.instance import saved_spec

    specs = {name: saved_spec(home.instance(name)) for name in home.instance_names()
             if _targets_file(home, name).exists()}
    return {name: spec for name, spec in specs.items() if spec}


# The secrets of an instance's Slack and PagerDuty receivers, in its secret store.
SLACK_KEY, PAGERDUTY_KEY = "slack_webhook_url", "pagerduty_routing_key"


def receiver_credentials(spec: InstanceSpec, stored: dict[str, str]) -> dict[str, str]:
    """The secrets of the spec's Slack and PagerDuty receivers: given in the environment variables
    it names (they then move into the secret store), else those `stored` by an earlier converge."""
    wanted = []
    if spec.alerts.slack:
        wanted.append((SLACK_KEY, spec.alerts.slack.webhook_url_env, "the URL of a Slack incoming webhook"))
    if spec.alerts.pagerduty:
        wanted.append((PAGERDUTY_KEY, spec.alerts.pagerduty.routing_key_env, "a PagerDuty routing key"))
    found = {}
    for key, variable, what in wanted:
        found[key] = given_or_stored(key, variable, stored, f"{spec.name}'s alerts need {what}")
        if key == SLACK_KEY and not found[key].startswith("https://"):
            raise InputError(f"{variable} is not an https:// URL", "set it to the URL Slack shows for the incoming webhook")
    return found


def receivers_of(home: Home, spec: InstanceSpec) -> Receivers:
    """Where an instance's alerts go: its spec's webhooks, e-mail addresses (through its mail
    server), Slack channel and PagerDuty service, with their secrets from its secret store; the
    host's mailbox when the spec names none."""
    alerts = spec.alerts
    if not (alerts.webhooks or alerts.emails or alerts.slack or alerts.pagerduty):
        monitoring = monitoring_of(home)
        relay = Smtp(host="127.0.0.1", port=monitoring.mailbox_port, security="none", username=mailbox.LOGIN,
                     from_address=mailbox.SENDER)
        password = monitoring.password_file.read_text().strip() if monitoring.password_file.exists() else ""
        return Receivers(emails=(EmailReceiver(mailbox.address(spec.name), relay, password),))
    stored = SecretStore(home.instance(spec.name).secrets_file).load() \
        if (spec.smtp and spec.smtp.username) or alerts.slack or alerts.pagerduty else {}
    emails = tuple(EmailReceiver(address, spec.smtp, stored.get(smtp.PASSWORD_KEY, ""))
                   for address in alerts.emails if spec.smtp)
    slack = ((stored.get(SLACK_KEY, ""), alerts.slack.channel),) if alerts.slack else ()
    pagerduty = (stored.get(PAGERDUTY_KEY, ""),) if alerts.pagerduty else ()
    return Receivers(tuple(alerts.webhooks), emails, slack, pagerduty)


def _write_routes(home: Home) -> bool:
    """Alertmanager's routes for every published instance, from its saved spec. The file holds
    mail passwords: Alertmanager's account reads it, no other."""
    receivers = {name: receivers_of(home, spec) for name, spec in _published(home).items()}
    return write_file(home.monitoring_dir / "alertmanager.yml", render_alertmanager_config(receivers), mode=0o640,
                      owner="root" if is_root() else None, group=monitor_user() if is_root() else None)


def _write_prometheus(home: Home, monitoring: Monitoring | None = None) -> bool:
    """Prometheus's configuration, with the synthetic checks and the PostgreSQL of every
    published instance."""
    monitoring = monitoring or monitoring_of(home)
    published = _published(home)
    postgres = {name: _ports(home, name)["postgres"] for name, spec in published.items() if spec.metadata_db.url is None}
    return write_file(home.monitoring_dir / "prometheus.yml", render_prometheus_config(home, monitoring, published, postgres))


def _ports(home: Home, name: str) -> dict[str, int]:
    return home.instance(name).read_state().get("ports", {})


MONITOR_ROLE = "setpoint_monitor"  # in each managed cluster: pg_monitor (statistics), no data
MONITOR_PASSWORD_KEY = "monitor_db_password"


def _write_exporter_access(home: Home, monitoring: Monitoring | None = None) -> bool:
    """What the host's exporters connect with: a PostgreSQL connection string and a Redis
    password per published instance, in files only the monitoring account reads (0640)."""
    monitoring = monitoring or monitoring_of(home)
    dsns, passwords = [], {}
    for name, spec in _published(home).items():
        ports, secrets = _ports(home, name), SecretStore(home.instance(name).secrets_file).load()
        if spec.metadata_db.url is None and MONITOR_PASSWORD_KEY in secrets:
            dsns.append(f"postgresql://{MONITOR_ROLE}:{quote(secrets[MONITOR_PASSWORD_KEY], safe='')}"
                        f"@127.0.0.1:{ports['postgres']}/postgres?sslmode=disable")
        if spec.cache.url is None and "redis_password" in secrets:
            passwords[f"redis://127.0.0.1:{ports['redis']}"] = secrets["redis_password"]
    owner = {"owner": "root", "group": monitoring.user} if is_root() else {}
    written = [write_file(home.monitoring_dir / "postgres-exporter.dsn", ",".join(dsns), mode=0o640, **owner),
               write_file(home.monitoring_dir / "redis-passwords.json", json.dumps(passwords, indent=2, sort_keys=True) + "\n",
                          mode=0o640, **owner)]
    return any(written)


def publish(home: Home, ctx: InstanceContext) -> Changes:
    """Have the host's monitoring observe the instance: its Superset scraped, its public URL probed
    from the host and its spec's probe points, its rules evaluated with its spec's thresholds, its
    alerts routed to its spec's webhooks."""
    labels = {"setpoint_instance": ctx.spec.name}
    target = [{"targets": [f"127.0.0.1:{ctx.ports.web}"], "labels": labels}]
    scraped = write_file(_targets_file(home, ctx.spec.name), json.dumps(target, indent=2) + "\n")
    if ctx.managed_redis:
        redis = [{"targets": [f"redis://127.0.0.1:{ctx.ports.redis}"], "labels": labels}]
        scraped = write_file(_redis_targets_file(home, ctx.spec.name), json.dumps(redis, indent=2) + "\n") or scraped
    rules = write_file(_rules_file(home, ctx.spec.name), render_instance_rules(ctx.spec))
    probed = _write_prometheus(home)
    return Changes(prometheus=scraped or rules or probed, alertmanager=_write_routes(home),
                   blackbox=_write_probe_ca(home), exporters=_write_exporter_access(home))


def withdraw(home: Home, name: str) -> Changes:
    """Stop observing an instance (it is down or gone): no target, no probes, no rules, no routes."""
    files = (_targets_file(home, name), _redis_targets_file(home, name), _rules_file(home, name))
    existed = any(f.exists() for f in files)
    for file in files:
        file.unlink(missing_ok=True)
    probed = _write_prometheus(home)
    return Changes(prometheus=existed or probed, alertmanager=_write_routes(home), exporters=_write_exporter_access(home))


def reload(supervisor, changes: Changes) -> None:
    """Have Prometheus and Alertmanager read the configurations that changed (SIGHUP)."""
    if not supervisor.is_running():
        return
    if changes.prometheus:
        supervisor.signal("HUP", "prometheus")
    if changes.alertmanager:
        supervisor.signal("HUP", "alertmanager")
    if changes.blackbox:
        supervisor.signal("HUP", "blackbox")
    if changes.exporters:
        supervisor.restart("postgres-exporter", "redis-exporter")


def api_auth(monitoring: Monitoring) -> tuple[str, str] | None:
    """The login of the monitoring's APIs and of every metrics endpoint Prometheus scrapes."""
    return (MONITORING_API_USER, monitoring.password_file.read_text()) if monitoring.password_file.exists() else None


@dataclass(frozen=True)
class Target:
    job: str
    url: str
    health: str  # up, down or unknown (not scraped yet)
    error: str
    instance: str | None


class _MonitoringApi:
    """An HTTP API of the host's monitoring on loopback, with its password."""

    def __init__(self, monitoring: Monitoring, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.auth = api_auth(monitoring)

    def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = httpx.request(method, f"{self.url}{path}", auth=self.auth, timeout=10, **kwargs)
        response.raise_for_status()
        return response

    def _get(self, path: str, **params) -> httpx.Response:
        return self._request("GET", path, params=params)


class Prometheus(_MonitoringApi):
    """The host's Prometheus, over its HTTP API on loopback."""

    def __init__(self, monitoring: Monitoring) -> None:
        super().__init__(monitoring, monitoring.prometheus_port)

    def _data(self, path: str, **params) -> dict:
        return self._get(path, **params).json()["data"]

    def targets(self) -> list[Target]:
        return [Target(t["labels"].get("job", ""), t["scrapeUrl"], t["health"], t.get("lastError", ""),
                       t["labels"].get("setpoint_instance"))
                for t in self._data("/api/v1/targets", state="active")["activeTargets"]]

    def flags(self) -> dict[str, str]:
        """The command-line flags Prometheus runs with (its retention among them)."""
        return self._data("/api/v1/status/flags")

    def query(self, expression: str) -> list[dict]:
        return self._data("/api/v1/query", query=expression)["result"]

    def alert_rules(self) -> dict[str, dict[str, str]]:
        """Each group of alert rules Prometheus has loaded: {group: {rule: state}}."""
        return {group["name"]: {rule["name"]: rule["state"] for rule in group["rules"]}
                for group in self._data("/api/v1/rules", type="alert")["groups"]}

    def probe_points(self, name: str) -> dict[str, bool]:
        """Each probe point with a fresh probe of instance `name`, and whether its checks of the
        public URL (/health, the login page) succeeded (a point whose scrape fails drops out at
        once: its series are stale). The chart's check has its own alert."""
        found = self.query(f'min by (probe_point) (probe_success{{setpoint_instance="{name}",check!="chart"}})')
        return {r["metric"].get("probe_point", ""): r["value"][1] == "1" for r in found}

    def scraped(self, name: str) -> list[Target]:
        """The targets that observe instance `name`: its Superset and Redis, and the host."""
        return [t for t in self.targets() if t.instance == name or t.job == "node"]


MAILBOX = "the host's mailbox"  # a kind of receiver (Alertmanager.receivers_of)


class Alertmanager(_MonitoringApi):
    """The host's Alertmanager, over its HTTP API on loopback."""

    def __init__(self, monitoring: Monitoring) -> None:
        super().__init__(monitoring, monitoring.alertmanager_port)

    def receivers_of(self, name: str) -> dict[str, list[str]]:
        """What the running Alertmanager sends instance `name`'s alerts to, by kind of receiver."""
        config = yaml.safe_load(self._get("/api/v2/status").json()["config"]["original"])
        routes = config.get("route", {}).get("routes") or []
        receiver = next((r["receiver"] for r in routes if f'setpoint_instance="{name}"' in r.get("matchers", [])), None)
        entry = next((e for e in config.get("receivers", []) if e["name"] == receiver), {})
        emails = [mail["to"] for mail in entry.get("email_configs", [])]
        return {"webhook": [hook["url"] for hook in entry.get("webhook_configs", [])],
                "e-mail": [to for to in emails if not mailbox.is_mailbox_address(to)],
                MAILBOX: [to for to in emails if mailbox.is_mailbox_address(to)],
                "Slack channel": [slack.get("channel", "") for slack in entry.get("slack_configs", [])],
                "PagerDuty service": ["" for _ in entry.get("pagerduty_configs", [])]}


    def _samples(self, *names: str):
        from prometheus_client.parser import text_string_to_metric_families

        return [sample for family in text_string_to_metric_families(self._get("/metrics").text)
                for sample in family.samples if sample.name in names]

    def notifications(self) -> dict[str, tuple[float, float]]:
        """By integration (webhook, email, slack, pagerduty): how many notifications Alertmanager
        sent since it started, and how many of them failed."""
        counts: dict[str, list[float]] = {}
        wanted = {"alertmanager_notification_requests_total": 0, "alertmanager_notification_requests_failed_total": 1}
        for sample in self._samples(*wanted):
            counts.setdefault(sample.labels["integration"], [0.0, 0.0])[wanted[sample.name]] = sample.value
        return {integration: (sent, failed) for integration, (sent, failed) in counts.items()}

    def last_reload(self) -> float:
        """When Alertmanager last read its configuration successfully (Unix time)."""
        found = self._samples("alertmanager_config_last_reload_success_timestamp_seconds")
        return found[0].value if found else 0.0

    def raise_alert(self, labels: dict[str, str], summary: str, ends_at: str) -> None:
        self._request("POST", "/api/v2/alerts", json=[{"labels": labels, "annotations": {"summary": summary}, "endsAt": ends_at}])

    def alerts(self, name: str) -> list[dict]:
        """The alerts being sent now about instance `name` or its host, oldest first: name,
        severity, since, summary."""
        found = [alert for alert in self._get("/api/v2/alerts", active="true", silenced="false", inhibited="false").json()
                 if alert["labels"].get("setpoint_instance") in (name, None)]
        return [{"alert": a["labels"].get("alertname", ""), "severity": a["labels"].get("severity", ""),
                 "since": a.get("startsAt", ""), "summary": a.get("annotations", {}).get("summary", ""),
                 "instance": a["labels"].get("setpoint_instance") or "host"}
                for a in sorted(found, key=lambda a: a.get("startsAt", ""))]


@dataclass(frozen=True)
class Observation:
    """One source of an instance's metrics, as the host's Prometheus has it now."""

    ok: bool
    evidence: str


def observations(home: Home, spec: InstanceSpec) -> list[Observation]:
    """What the host's Prometheus sees of an instance: its Superset, the host, and the data
    servers Setpoint runs for it (the evidence of checklist point 19; what `up` waits for).
    Raises httpx.HTTPError when Prometheus does not answer."""
    prometheus, name = Prometheus(monitoring_of(home)), spec.name
    targets = prometheus.scraped(name)
    jobs = [("superset", f"{name}'s Superset"), ("node", "the host (node exporter)")]
    if spec.cache.url is None:
        jobs.append(("redis", f"{name}'s Redis (redis exporter)"))
    found = []
    for job, what in jobs:
        scraped = [t for t in targets if t.job == job]
        if not scraped:
            found.append(Observation(False, f"Prometheus has no target for {what}"))
        found += [Observation(t.health == "up", f"Prometheus scrapes {what} at {t.url}: {t.health}"
                              + (f" ({t.error})" if t.error else "")) for t in scraped]
    if spec.metadata_db.url is None:
        # One exporter serves every instance's PostgreSQL: its series carry the instance.
        seen = bool(prometheus.query(f'pg_static{{job="postgres",setpoint_instance="{name}"}}'))
        found.append(Observation(seen, f"Prometheus {'has' if seen else 'has no'} metrics of {name}'s PostgreSQL "
                                       "(postgres exporter)"))
    return found


def wait_scraped(home: Home, spec: InstanceSpec, timeout: float = 90) -> None:
    """Wait until Prometheus scrapes everything of the instance successfully."""
    deadline = time.monotonic() + timeout
    seen: list[Observation] = []
    while time.monotonic() < deadline:
        try:
            seen = observations(home, spec)
        except httpx.HTTPError:
            seen = []
        if seen and all(o.ok for o in seen):
            return
        time.sleep(2)
    missing = "; ".join(o.evidence for o in seen if not o.ok) or "Prometheus does not answer"
    raise SetpointError(f"Prometheus does not observe {spec.name} within {timeout:.0f} s ({missing})",
                        f"see {home.monitoring_dir}/prometheus.log, then run: setpoint up {spec.name}")
