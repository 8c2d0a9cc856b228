"""`setpoint up`: bring an instance on this host to its spec, changing only what differs."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import yaml

from setpoint import examples, proc
from setpoint.backup.pgbackrest import PgBackRest
from setpoint.backup import export
from setpoint.backup.drill import run_drill
from setpoint.backup.service import move_record, read_record, take_backup
from setpoint.operations import documents, emergency, gdpr, runbook
from setpoint.backup.escrow import check_offsite, format_key, offsite_credentials
from setpoint.errors import SetpointError
from setpoint.home import Home, caddy_user, write_file
from setpoint.host.capacity import limits_up, require_room
from setpoint.net import http_client
from setpoint.render import (
    METADATA_DATABASE,
    METADATA_ROLE,
    POSTGRES_AUTH,
    REDIS_DB,
    InstanceContext,
    instance_programs,
    render_instance,
    render_programs_conf,
    render_site,
)
from setpoint.runtime.local.instance import (
    allocate_ports,
    instance_lock,
    build_context,
    check_superset_version_change,
    preflight,
    saved_spec,
)
from setpoint.runtime.local import startup
from setpoint.runtime.local.superset_side import permission_cache
from setpoint.observability import logstore, monitoring, notification
from setpoint.runtime.local.accounts import lay_out, moving_data, write_config
from setpoint.runtime.local.platform import Platform, ensure_platform
from setpoint.secret import SecretStore
from setpoint.identity import access, sso
from setpoint.services import caddy as caddy_service, screenshots, smtp
from setpoint.services.cgroup import host_cgroups
from setpoint.services.postgres import cluster_of
from setpoint.services.redis import RedisServer
from setpoint.services.superset import SupersetCommands, describe_migrations, ensure_venv
from setpoint.spec import InstanceSpec
from setpoint.spec.sizing import cpu_text
from setpoint.superset_api import SupersetClient

Log = Callable[[str], None]


@dataclass
class UpReport:
    """What a converge did, in sentences, and where the instance is."""

    name: str
    url: str
    ca_root: str | None
    actions: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.actions)


def up(home: Home, spec: InstanceSpec, log: Log = lambda m: None, step: Log = lambda m: None,
       wait_lock_s: float = 300, restore_data: Callable[[InstanceContext], None] | None = None,
       version_change: bool = False, ephemeral: bool = False) -> UpReport:
    """Converge instance `spec.name` to `spec`; log one sentence per change.

    A scheduled backup or drill of the instance finishes first (up to `wait_lock_s`).
    `restore_data` fills an empty data directory from a backup instead of initdb.
    `version_change` lets an upgrade (operations/upgrade.py), which holds the instance's lock
    already, move the instance to the spec's Superset version: its processes must be stopped, the
    metadata is migrated before they start. An `ephemeral` instance (an upgrade's staging copy)
    is neither monitored nor backed up, and the scheduler leaves it alone."""
    if version_change:
        return _converge(home, spec, log, step, restore_data, version_change, ephemeral)
    with instance_lock(home, spec.name, wait_lock_s):
        return _converge(home, spec, log, step, restore_data, version_change, ephemeral)


def _converge(home: Home, spec: InstanceSpec, log: Log, step: Log, restore_data, version_change: bool = False,
              ephemeral: bool = False) -> UpReport:
    started = time.monotonic()
    paths = home.instance(spec.name)
    state = paths.read_state()
    if state.get("examples_loaded") and not spec.examples:
        # The sample data stays in the instance's database, and so must the rules that guard it:
        # without them sales_europe would see every region.
        spec = spec.model_copy(update={"examples": True})
    saved = saved_spec(paths)
    if not version_change:
        check_superset_version_change(saved, spec)
    if saved is None:
        require_room(home, spec, limits_up(home, except_instance=spec.name))
    actions: list[str] = []

    def act(sentence: str) -> None:
        actions.append(sentence)
        log(sentence)

    step("checking the host")
    ports = allocate_ports(home, spec, state.get("ports", {}))
    granted = _allow_low_ports(spec)
    platform = ensure_platform(home, act, step, converging=spec)
    if granted:
        platform.supervisor.restart("caddy")  # capabilities apply from the next exec
        act("allowed Caddy to bind ports below 1024 (cap_net_bind_service)")
    own = platform.supervisor.states(spec.name)
    running_ports = set(state.get("ports", {}).values()) if any(s.is_running for s in own.values()) else set()
    preflight(home, spec, ports, running_ports, platform.caddy.listening_ports())
    logstore.remote_ca_certificate(spec)  # one the store cannot use stops `up` before anything changes
    # Secrets the spec's services need: from the environment now, or stored by an earlier converge.
    stored = SecretStore(paths.secrets_file).load()
    offsite_keys = offsite_credentials(spec, stored) if spec.backup.offsite else {}
    if spec.backup.offsite and (saved is None or saved.backup.offsite != spec.backup.offsite):
        # A new or changed off-site repository is tried before anything is written: a wrong
        # endpoint, bucket or key leaves the instance as it was.
        step("checking the off-site repository")
        check_offsite(spec.backup.offsite, offsite_keys)
    smtp_keys = smtp.credentials(spec.smtp, stored) if spec.smtp else {}
    receiver_keys = monitoring.receiver_credentials(spec, stored)
    if spec.smtp and (saved is None or saved.smtp != spec.smtp or os.environ.get(spec.smtp.password_env)):
        step("checking the mail server")
        smtp.check(spec.smtp, smtp_keys.get(smtp.PASSWORD_KEY, ""))
    sso_keys = sso.credentials(spec.sso, stored) if spec.sso else {}
    if spec.sso and (saved is None or saved.sso != spec.sso or os.environ.get(spec.sso.client_secret_env)):
        step("checking the identity provider")
        sso.check(spec.sso, sso_keys[sso.CLIENT_SECRET_KEY])
        log(f"{spec.sso.issuer} accepts client {spec.sso.client_id}: its redirect URI there must be {sso.redirect_uri(spec)}")

    ctx = build_context(home, spec, ports, platform.user)
    # Remember the spec and ports at once: a converge that fails later keeps its ports next time,
    # and a half-created instance can still be stopped or destroyed.
    state["ports"] = ports.__dict__
    state["desired"] = "up"  # what the host's boot command brings back
    if ephemeral:
        state["ephemeral"] = True
    paths.root.mkdir(parents=True, exist_ok=True)
    write_file(paths.spec_file, yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    paths.write_state(state)
    postgres = own.get(f"{spec.name}-postgres")
    if moving_data(ctx) and postgres and postgres.is_running:
        # Its files change hands, or its account joins a group, now: the server must not write
        # them meanwhile. It starts again below, as the data account with its groups.
        step("stopping PostgreSQL while its files and its account's groups change")
        platform.supervisor.stop(f"{spec.name}-postgres")
        act(f"stopped {spec.name}-postgres while its files and {ctx.data_user}'s groups change")
    for change in lay_out(ctx) + logstore.prepare_audit_trail(ctx) + logstore.open_to_store(home, paths, ctx.superset_user):
        act(change)
    if move_record(paths):
        act(f"moved {spec.name}'s backup record from {paths.backup} to {paths.records_file}")
    store = SecretStore(paths.secrets_file, owner=ctx.data_user)
    new_recovery_key = "recovery_key" not in store.load()
    secrets = store.ensure()
    if new_recovery_key:
        act(f"generated the recovery key of {spec.name}, shown this once (keep it outside this host; "
            f"it opens the secrets escrowed with the backups): {format_key(secrets['recovery_key'])}")
    given = {**offsite_keys, **smtp_keys, **sso_keys, **receiver_keys}
    if store.update(given):
        act(f"stored {', '.join(sorted(given))} in the secret store")
        secrets = store.load()

    step(f"preparing Superset {spec.superset_version}")
    restarts: set[str] = set()
    if ensure_venv(home, spec, on_progress=step):
        act(f"installed Superset {spec.superset_version}'s pinned packages into {ctx.venv}")
        restarts.update(("web", "worker", "beat"))

    step("writing configuration")
    written = set()
    for rendered in render_instance(ctx, secrets):
        if write_config(ctx, rendered):
            act(f"wrote {rendered.path.name}")
            written.add(rendered.path.name)
            restarts.update(rendered.restarts)

    if logstore.publish(home, ctx):
        logstore.reload(platform.supervisor)
        act(f"had the host's log store collect {spec.name}'s logs and audit trail"
            + (f" and forward them to {spec.logs.remote}" if spec.logs.remote else ""))

    if "limits.json" in written and ctx.cgroup:
        apply_limits(ctx, act)

    if ctx.managed_postgres and restore_data and not cluster_of(ctx).is_initialized():
        step("restoring the metadata database from its backup")
        restore_data(ctx)
        act("restored the metadata database from its backup")
    if ctx.managed_postgres and not cluster_of(ctx).is_initialized():
        step("creating the PostgreSQL cluster")
        cluster_of(ctx).initialize(secrets["postgres_password"])
        act("created the PostgreSQL cluster (scram-sha-256, data checksums)")

    programs_conf = home.programs_conf(spec.name)
    app_present = programs_conf.exists()
    step("starting the data servers")
    # The first time, Superset's processes wait until the metadata database is migrated. Later, a
    # process whose command or account changed gets it now, before anything restarts it.
    programs = None
    if not app_present or not state.get("migrated"):
        programs = render_programs_conf(ctx, app=False)
    elif state["migrated"] == spec.superset_version:
        programs = render_programs_conf(ctx)
    if programs and write_file(programs_conf, programs, mode=0o600):
        platform.supervisor.update()
    _restart_changed(platform, ctx, restarts & {"postgres", "redis"}, act)
    startup.start_data(ctx, platform, secrets)
    if ctx.managed_postgres:
        _ensure_databases(ctx, secrets, act)
        if POSTGRES_AUTH in restarts and "postgres" not in restarts:
            cluster_of(ctx).reload_client_auth()
            act(f"had {spec.name}-postgres read its client authentication again (no restart)")
        if state.get("restored_from") or state.get("rebuilt_from"):
            # A restored or rebuilt instance has its own copy of the sample data, on its own port:
            # its connection points there before anything (a drill, SQL Lab) uses it, as the
            # database guard refuses the source's.
            cluster_of(ctx).sql(examples.repoint_sql(ctx.ports.postgres), database=METADATA_DATABASE)
        if PgBackRest(ctx).ensure_stanza():
            act(f"created the encrypted pgBackRest repository ({spec.backup.retention_days}-day retention, WAL archiving)")

    commands = SupersetCommands(ctx)
    if state.get("migrated") != spec.superset_version:
        step("migrating the metadata database")
        applied = commands.migrate()
        act(f"migrated the metadata database to Superset {spec.superset_version}: {describe_migrations(applied)}")
        state["migrated"] = spec.superset_version
        paths.write_state(state)
    if state.get("initialised") != spec.superset_version or "superset_config.py" in written:
        # Superset's version or configuration (single sign-on's views, a feature flag's) decides
        # its base roles' permissions; `superset init` gives them back what the declared access
        # withholds, so the access is made again after it.
        step("synchronising roles and permissions")
        commands.init()
        state["initialised"] = spec.superset_version
        state.pop("access", None)
        paths.write_state(state)
    if written & {"superset_config.py", "setpoint_database_guard.py"} and saved is not None:
        # A database added before (or allowed by a spec that changed since) may be refused now.
        for database in commands.refused_databases():
            act(f"warning: the database guard refuses the saved database '{database}': its charts and SQL Lab "
                f"fail until its host is named in databases.allowed_hosts of the spec (or it is changed)")
    if ctx.managed_postgres:
        _ensure_permission_counter(ctx, act)
    if commands.ensure_admin(secrets["admin_password"]):
        act(f"created the admin user {spec.admin.username} with a generated password")
    if ctx.managed_postgres and (ended := emergency.deactivate_ended(ctx)):
        act(f"deactivated the emergency admin(s) {', '.join(ended)}: their access had ended, and a restore had "
            "brought them back active")

    step("starting Superset")
    if write_file(programs_conf, render_programs_conf(ctx), mode=0o600):
        platform.supervisor.update()
        act("updated the supervised processes")
    _restart_changed(platform, ctx, restarts - {"postgres", "redis"}, act)
    startup.start_app(ctx, platform, before=own)

    step("publishing the site over HTTPS")
    site = home.caddy_dir / "sites" / f"{spec.name}.caddy"
    published = write_file(site, render_site(ctx, secrets["proxy_secret"]), mode=0o600, owner=caddy_user())
    specs = monitoring.host_specs(home, spec)
    consoles = monitoring.write_consoles_site(home, monitoring.monitoring_of(home), specs)
    if published or consoles:
        platform.caddy.reload()
    if published:
        act(f"published {spec.url} through Caddy")
    if consoles:
        act(f"served the host's Prometheus and Alertmanager at {monitoring.console_url(specs)}/prometheus/ and "
            "/alertmanager/ (their password: setpoint credentials --monitoring)")
    ca_root = str(platform.caddy.wait_ca_root()) if spec.is_local_hostname else None
    startup.wait_healthy(spec, platform, timeout=180)
    if not ephemeral:
        _observe(home, ctx, platform, state, act, step)

    if spec.examples and not state.get("examples_loaded"):
        step("loading the sample data and dashboard")
        load_examples(ctx, platform, secrets)
        state["examples_loaded"] = True
        act(f"loaded {examples.ROWS:,} sample rows and the '{examples.DASHBOARD_TITLE}' dashboard")
    if not ephemeral:
        ensure_access(ctx, commands, state, act, step)
        if spec.examples and spec.screenshots.thumbnails and state.get("renders") != spec.superset_version:
            _prove_rendering(ctx, platform, secrets, state, act, step)

    if ctx.managed_postgres and not ephemeral:
        _ensure_proven(home, ctx, platform, secrets, act, step)

    if not ephemeral:  # by now Prometheus has had time to scrape it: no wait, as a rule
        monitoring.wait_scraped(home, spec)
    state.update(url=spec.url, superset_version=spec.superset_version)
    state.setdefault("created_at", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    paths.write_state(state)
    return UpReport(spec.name, spec.url, ca_root, actions, time.monotonic() - started)


def ensure_access(ctx: InstanceContext, commands: SupersetCommands, state: dict, act: Log, step: Log,
                  repair: bool = False) -> None:
    """Make the spec's roles and row-level security, and withhold what only admins may, once they
    changed, or `superset init` ran since, or a dataset they name was missing last time; with
    `repair`, in any case (to undo changes made by hand)."""
    wanted = access.digest(access.declared(ctx.spec))
    if state.get("access") == wanted and not repair:
        return
    step("making the roles and row-level security")
    result = commands.apply_access()
    for change in result["changes"]:
        act(change)
    for problem in result["problems"]:
        act(f"warning: {problem}; fix the spec's roles or row_level_security and run setpoint up {ctx.spec.name} again")
    if not result["problems"]:
        state["access"] = wanted
        ctx.paths.write_state(state)


def _prove_rendering(ctx: InstanceContext, platform: Platform, secrets: dict[str, str], state: dict, act: Log,
                     step: Log) -> None:
    """The self-test of reports' images and thumbnails, on a new instance and a new Superset
    version: the worker renders the sample dashboard's thumbnail, and the image must not be blank.
    A render that fails (a busy host) is tried once more. A second failure is a warning (the
    instance serves all the same), and the next up tries again."""
    step("rendering the sample dashboard in the worker's browser")
    # A failed thumbnail's task is over by its hard time limit; Superset answers 404 for it then.
    timeout = screenshots.task_time_limits(ctx.spec)[1] + 30
    failures = []
    with admin_client(ctx.spec, platform, secrets) as api:
        dashboard = api.find("dashboard", "dashboard_title", examples.DASHBOARD_TITLE)
        for _ in range(2):
            if ctx.managed_redis:  # an image of a previous version, or a failure, would be kept
                RedisServer(ctx.ports.redis, secrets["redis_password"]).delete(REDIS_DB["caches"], "superset_thumbnail_*")
            try:
                if not dashboard:
                    raise screenshots.NotRendered(f"the '{examples.DASHBOARD_TITLE}' dashboard is gone")
                shot = screenshots.self_test(api, dashboard[0]["id"], timeout,
                                             screenshots.rendering_answers(ctx.spec.superset_version))
                break
            except screenshots.NotRendered as failure:
                failures.append(str(failure))
        else:
            act(f"warning: reports' images and thumbnails may fail: rendering the sample dashboard failed twice: "
                f"{'; '.join(failures)}; see setpoint logs {ctx.spec.name} worker, then run setpoint up {ctx.spec.name} again")
            return
    state["renders"] = ctx.spec.superset_version
    retried = f" (the first try failed: {failures[0]})" if failures else ""
    act(f"rendered the '{examples.DASHBOARD_TITLE}' dashboard in the worker's Chromium in {shot.seconds:g} s: "
        f"a {shot.size[0]}x{shot.size[1]} image of {shot.colours:,} colours{retried}")


def _observe(home: Home, ctx: InstanceContext, platform: Platform, state: dict, act: Log, step: Log) -> None:
    """Have the host's Prometheus scrape the instance and route its alerts, and prove with a test
    notification that they reach its receivers (once they changed, or until one is delivered).
    The end of `up` waits until Prometheus scrapes everything of it."""
    spec = ctx.spec
    step("having Prometheus scrape it")
    changes = monitoring.publish(home, ctx)
    configured_at = time.time()
    monitoring.reload(platform.supervisor, changes)
    if changes.prometheus:
        act(f"had the host's Prometheus scrape {spec.name} and evaluate its alert rules")
    alerts = spec.alerts
    reached = [f"{len(targets)} {kind}" for kind, targets in
               (("webhook(s)", alerts.webhooks), ("e-mail address(es)", alerts.emails),
                ("Slack channel", [alerts.slack] if alerts.slack else []),
                ("PagerDuty service", [alerts.pagerduty] if alerts.pagerduty else [])) if targets]
    if changes.alertmanager and reached:
        act(f"routed {spec.name}'s alerts to {' and '.join(reached)}")
    elif changes.alertmanager:
        act(f"routed {spec.name}'s alerts to the host's mailbox (read it with: setpoint alerts {spec.name} --mailbox); "
            "to reach someone elsewhere, name webhooks, emails, slack or pagerduty in the spec's alerts")
    receivers = notification.needed(home, spec, state)
    if receivers is not None:
        step("sending a test alert to its receivers")
        outcome = notification.send(home, spec, receivers,
                                    configured_at=configured_at if changes.alertmanager else None)
        notification.record(state, outcome)
        act(f"sent a test alert to {spec.name}'s receivers: {outcome.detail}" if outcome.delivered else
            f"warning: a test alert did not reach {spec.name}'s receivers ({outcome.detail}); "
            f"check the spec's alerts, then run setpoint up {spec.name} again")


def _ensure_proven(home: Home, ctx: InstanceContext, platform: Platform, secrets: dict[str, str], act: Log, step: Log) -> None:
    """From the first minute: a full backup, a restore drill that proves it, the dashboards in git,
    an erasure drill (with a gdpr: section), and the runbook, DR plan and processing register
    beside the backups. The scheduler keeps them current afterwards."""
    name = ctx.spec.name
    # A rebuilt instance finds its backups off-site only: it gets a local one, on its new timeline.
    if not any(b.repo == 1 for b in PgBackRest(ctx).backups()):
        step("taking the first full backup")
        act(f"took the first full backup ({take_backup(ctx, 'full').label})")
    record = read_record(ctx.paths)
    if not record.get("last_drill"):
        step("proving the backup with a restore drill")
        act(f"restore drill passed in {run_drill(ctx)['seconds']} s")
    if not record.get("last_export"):
        step("exporting the dashboards into git")
        with admin_client(ctx.spec, platform, secrets) as api:
            result = export.export_instance(api, ctx.paths)
        act(f"exported {result.dashboards} dashboard(s) as YAML into {result.repository}")
    if ctx.spec.gdpr is not None and not record.get("last_erasure_drill"):
        step("proving the erasure of a person with a drill")
        act(f"erasure drill passed in {gdpr.run_drill(home, ctx)['seconds']} s")
    first = not documents.local_copy(ctx, runbook.FILE).exists()
    places = documents.publish(ctx)  # refreshed on every converge: they document the state, they do not change it
    if first:
        act(f"wrote the runbook and disaster-recovery plan of {name} into {', '.join(places)}")


def apply_limits(ctx: InstanceContext, act: Log) -> None:
    """Set the instance's limits on its live cgroup: its processes keep running."""
    limits = ctx.limits
    try:
        host_cgroups().apply(ctx.cgroup, limits)
    except OSError as exc:
        raise SetpointError(
            f"the limits of {ctx.spec.name} could not be set ({exc.strerror}): it may use more memory now than "
            f"resources.memory_mb {limits.memory_mb} allows",
            f"see its usage with: setpoint status {ctx.spec.name}; raise resources.memory_mb, or lower it after "
            f"a restart (setpoint down {ctx.spec.name}, then up)",
        ) from None
    act(f"limited {ctx.spec.name} to {limits.memory_mb:,} MiB of memory, {cpu_text(limits)} and {limits.pids} processes")


def _allow_low_ports(spec: InstanceSpec) -> bool:
    """Give Caddy the capability to bind ports below 1024 when the spec needs it; return whether granted."""
    if min(spec.https_port, spec.http_port) >= 1024 or caddy_user() == "root":
        return False
    caddy_bin = proc.find_binary("caddy")
    if caddy_service.can_bind_low_ports(caddy_bin):
        return False
    caddy_service.grant_low_ports(caddy_bin)
    return True


def _restart_changed(platform: Platform, ctx: InstanceContext, components: set[str], act: Log) -> None:
    names = [p.name for p in instance_programs(ctx) if p.component in components]
    states = platform.supervisor.states(ctx.spec.name)
    running = [n for n in names if n in states and states[n].is_running and states[n].uptime_s > 1]
    web = f"{ctx.spec.name}-web"
    if web in running:
        running.remove(web)
        startup.reload_web(ctx, platform)  # no request lost
        act(f"reloaded {web} gracefully (new workers, no dropped request): configuration changed")
    if running:
        platform.supervisor.restart(*running)
        act(f"restarted {', '.join(running)}: configuration changed")


def _ensure_databases(ctx: InstanceContext, secrets: dict[str, str], act: Log) -> None:
    cluster = cluster_of(ctx)
    cluster.ensure_role(METADATA_ROLE, secrets["metadata_db_password"])
    if cluster.ensure_database(METADATA_DATABASE, owner=METADATA_ROLE):
        act("created the metadata database")
    cluster.ensure_role(examples.READER_ROLE, secrets["examples_reader_password"])
    # The host's PostgreSQL exporter: the server's statistics, none of its data.
    cluster.ensure_role(monitoring.MONITOR_ROLE, secrets[monitoring.MONITOR_PASSWORD_KEY])
    cluster.sql(f"GRANT pg_monitor TO {monitoring.MONITOR_ROLE}")


def _ensure_permission_counter(ctx: InstanceContext, act: Log) -> None:
    """The triggers that count the permissions' changes, which let Superset's processes keep their
    permission checks' answers (superset_side/permission_cache.py); made again after a migration
    that replaced a table."""
    cluster = cluster_of(ctx)
    if permission_cache.all_triggered(cluster.sql(permission_cache.TRIGGERED_TABLES_SQL, database=METADATA_DATABASE).split()):
        return
    cluster.sql(permission_cache.counter_sql(METADATA_ROLE), database=METADATA_DATABASE)
    act("counted the permissions' changes in the metadata database: permission checks and row-level security rules are kept between them")


def load_examples(ctx: InstanceContext, platform: Platform, secrets: dict[str, str]) -> None:
    """Generate and load the sample rows, then import the sample dashboard through the API."""
    cluster = cluster_of(ctx)
    cluster.ensure_database(examples.EXAMPLES_DB, owner=ctx.db_superuser)
    cluster.sql(examples.sales_copy_sql(), database=examples.EXAMPLES_DB, timeout=600)
    cluster.sql(examples.reader_grants_sql(), database=examples.EXAMPLES_DB)
    with admin_client(ctx.spec, platform, secrets) as client:
        client.import_dashboards(
            examples.build_bundle(ctx.ports.postgres),
            passwords={examples.DATABASE_FILE: secrets["examples_reader_password"]},
        )


class admin_client:
    """A logged-in admin API client of an instance, as a context manager."""

    def __init__(self, spec: InstanceSpec, platform: Platform, secrets: dict[str, str]) -> None:
        ca = platform.caddy.ca_root if spec.is_local_hostname else None
        self.http = http_client(spec.url, ca_file=ca, timeout=120)
        self.client = SupersetClient(self.http)
        response = self.client.login(spec.admin.username, secrets["admin_password"])
        if response.status_code != 200:
            self.http.close()
            raise SetpointError(
                f"the admin could not log in to {spec.url} ({response.status_code})",
                f"see: setpoint logs {spec.name} web",
            )

    def __enter__(self) -> SupersetClient:
        return self.client

    def __exit__(self, *exc) -> None:
        self.http.close()
