"""Probes of the backups, monitoring and compliance points (14-25).

Each looks at the running system: the backups' records and repositories, the host's log store,
Prometheus and Alertmanager, the documents kept beside the backups, the upgrades' records.
For a Superset that Setpoint does not manage, this evidence is not visible from outside: the
points are UNVERIFIED with what would verify them.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import uuid
from datetime import datetime, timedelta, timezone

import httpx

from setpoint.backup import dr
from setpoint.backup.service import backup_report, now, read_record
from setpoint.checklist.evidence import Evidence
from setpoint.checklist.model import Finding, combine, failed, passed, unverified
from setpoint.errors import SetpointError
from setpoint.net import is_loopback_name
from setpoint.operations import advisories, documents, gdpr, runbook
from setpoint.readiness import wait_until
from setpoint.services.postgres import cluster_of
from setpoint.spec import supported_superset_versions, version_key


FULL_BACKUP_MAX_AGE = timedelta(hours=26)
DRILL_MAX_AGE = timedelta(days=92)
EXPORT_MAX_AGE = timedelta(hours=48)
MIN_RETENTION_DAYS = 30
MIN_FULL_BACKUPS_ROOM = 2  # the next scheduled full, and one more


def _age(iso: str) -> timedelta:
    return now() - datetime.fromisoformat(iso)


def probe_backups(ev: Evidence) -> Finding:
    managed = ev.target.managed
    if managed is None:
        return unverified("backups are not visible from outside: pgBackRest info of the metadata cluster "
                          "and a restore-test record would verify it")
    ctx = managed.context
    if not ctx.managed_postgres:
        return unverified("the metadata database is external: its own backups are not visible to Setpoint")
    report = ev.backups
    parts = []
    last = read_record(ctx.paths).get("last_backup") or {}
    if last and not last.get("ok"):
        parts.append(failed(f"the last backup ({last['at'][:16]}) failed: {last.get('error')}",
                            f"fix the cause, then: setpoint backup {ctx.spec.name}"))
    fulls = [b for b in report.backups if b.type == "full" and not b.error]
    if not fulls:
        parts.append(failed("no full backup in the repository"))
    else:
        age = now() - fulls[-1].stopped
        verdict = passed if age < FULL_BACKUP_MAX_AGE else failed
        parts.append(verdict(f"last full backup {fulls[-1].label}, {age.total_seconds() / 3600:.1f} h old"))
    archiving = report.archiving
    last, failed_at, behind = archiving.get("last_archived"), archiving.get("last_failed"), archiving.get("segments_behind")
    if failed_at and (not last or failed_at > last):
        parts.append(failed(f"WAL archiving fails since {failed_at}"))
    elif behind is None:
        parts.append(failed("no WAL segment is in the repository"))
    elif behind > 0:
        parts.append(failed(f"WAL archiving is {behind} segments behind ({archiving['archived_segment']} archived)"))
    else:
        parts.append(passed(f"WAL archiving current ({archiving['archived_segment']} archived, "
                            f"{archiving['current_segment']} being written)"))
    room = report.room
    if room and room.full_backups is not None and room.full_backups < MIN_FULL_BACKUPS_ROOM:
        parts.append(failed(f"the local repository's disk has {room.free_bytes // 2**20} MiB free, room for "
                            f"{room.full_backups} more full backup(s) of {room.full_backup_bytes // 2**20} MiB",
                            f"free space on that disk (df -h {room.path}) before the next backup fails"))
    conf = (ctx.paths.config / "pgbackrest.conf").read_text()
    retention = re.search(r"^repo1-retention-full=(\d+)$", conf, re.M)
    days = int(retention.group(1)) if retention and "repo1-retention-full-type=time" in conf else 0
    parts.append((passed if days >= MIN_RETENTION_DAYS else failed)(f"retention {days} days"))
    drill = read_record(ctx.paths).get("last_drill")
    if not drill:
        parts.append(failed("no restore drill has run", f"run: setpoint backup verify {ctx.spec.name}"))
    elif not drill.get("ok"):
        parts.append(failed(f"the last restore drill failed: {drill.get('error')}", f"see: setpoint backup verify {ctx.spec.name}"))
    elif _age(drill["at"]) > DRILL_MAX_AGE:
        parts.append(failed(f"the last successful restore drill is {_age(drill['at']).days} days old"))
    else:
        parts.append(passed(f"restore drill passed {drill['at'][:16]} in {drill['seconds']} s"))
    return combine(parts)


def probe_dr_plan(ev: Evidence) -> Finding:
    managed = ev.target.managed
    if managed is None:
        return unverified("a disaster-recovery plan naming the backup, the secrets and the steps would verify it")
    path = documents.local_copy(managed.context, dr.FILE)
    if not path.exists():
        return failed(f"no disaster-recovery plan ({path} is missing)", f"run: setpoint dr plan {managed.spec.name}")
    text = path.read_text()
    names = {"the backup repository": str(managed.paths.backup / "repo"), "the secrets": str(managed.paths.secrets_file),
             "the restore steps": f"setpoint restore {managed.spec.name}"}
    offsite = managed.spec.backup.offsite
    if offsite:
        names["the off-site repository"] = f"s3://{offsite.bucket}"
        names["the rebuild from it"] = f"setpoint dr rebuild {managed.spec.name}"
    missing = [what for what, needle in names.items() if needle not in text]
    if missing:
        return failed(f"{path} does not name {', '.join(missing)}", f"run: setpoint dr plan {managed.spec.name}")
    return passed(f"{path} names {', '.join(names)}")


def probe_dashboard_export(ev: Evidence) -> Finding:
    managed = ev.target.managed
    if managed is None:
        return unverified("a git repository of dashboard exports less than 48 h old would verify it")
    export = read_record(managed.paths).get("last_export")
    if not export:
        return failed("dashboards have never been exported as YAML into git", f"run: setpoint export {managed.spec.name}")
    parts = [(passed if _age(export["at"]) < EXPORT_MAX_AGE else failed)(
        f"last export to {export['target']} at {export['at'][:16]} (commit {export['commit'][:8]})")]
    # Dashboards created since the export are the next export's business; every one that
    # existed then must be in it.
    at = datetime.fromisoformat(export["at"]).astimezone(timezone.utc).replace(tzinfo=None)
    live = int(cluster_of(managed.context).sql(
        f"SELECT count(*) FROM dashboards WHERE created_on <= '{at.isoformat()}'", database="superset"))
    verdict = passed if export["dashboards"] >= live else failed
    parts.append(verdict(f"{export['dashboards']} dashboards exported, {live} existed at the time"))
    return combine(parts)
def is_this_host(hostname: str) -> bool:
    """Whether a name is this machine's: *.localhost, or resolving to loopback or an own address."""
    if is_loopback_name(hostname):
        return True
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(hostname, None)}
    except OSError:
        return False
    own = {"127.0.0.1", "::1"}
    try:
        own |= {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
    except OSError:
        pass
    return any(ipaddress.ip_address(a.split("%")[0]).is_loopback or a in own for a in addresses)


def probe_offsite(ev: Evidence) -> Finding:
    managed = ev.target.managed
    if managed is None:
        return unverified("off-site copies are not visible from outside: the repository listing with its age would verify it")
    offsite = managed.spec.backup.offsite
    if offsite is None:
        return failed("the spec names no off-site repository (backup.offsite)")
    parts = []
    if is_this_host(offsite.endpoint):
        parts.append(failed(f"{offsite.endpoint} is this host: a repository here is not off-site"))
    last = read_record(managed.paths).get("last_backup") or {}
    if last and not last.get("ok"):
        parts.append(failed(f"the last backup failed: {last.get('error')}"))
    copies = [b for b in ev.backups.backups if b.repo == 2 and not b.error]
    if not copies:
        parts.append(failed(f"no backup in the off-site repository s3://{offsite.bucket}{offsite.path}"))
    else:
        age = now() - copies[-1].stopped
        verdict = passed if age < FULL_BACKUP_MAX_AGE else failed
        parts.append(verdict(f"off-site backup {copies[-1].label} in s3://{offsite.bucket}, {age.total_seconds() / 3600:.1f} h old"))
    return combine(parts)


LOG_WAIT_S = 10  # how soon a record written now must be in the store
PROBE_CONNECT_S = 5


def probe_central_logs(ev: Evidence) -> Finding:
    """A request made now reaches the host's log store from gunicorn's and Caddy's logs within
    10 s; the store reads the worker's and PostgreSQL's logs too; a remote store, when named,
    accepts connections."""
    managed = ev.target.managed
    if managed is None:
        return unverified("the central log store's recent web, worker and database entries would verify it")
    from setpoint.observability import logstore
    from setpoint.render import logged_components

    home, name = managed.platform.home, managed.spec.name
    marker = f"setpoint-log-probe-{uuid.uuid4().hex[:12]}"
    if ev.get(f"/health?{marker}") is None:
        return failed("the instance did not answer the probe's request")
    parts = []
    for component, what in (("web", "gunicorn's access log"), ("access", "Caddy's access log")):
        try:
            seconds = logstore.wait_for(home, name, component, marker, timeout=LOG_WAIT_S)
            parts.append(passed(f"a request made now reached the host's log store through {what} in {seconds:.1f} s"))
        except SetpointError as exc:
            parts.append(failed(exc.message))
    read = {component for component, _ in logged_components(managed.context)}
    missing = [c for c in ("worker", "postgres") if c not in read and (c != "postgres" or managed.context.managed_postgres)]
    parts.append(failed(f"the log store does not read {', '.join(missing)}") if missing
                 else passed(f"the log store reads {', '.join(sorted(read))} ({logstore.records_dir(home, name)})"))
    address = managed.spec.logs.remote_address
    if address:
        try:
            socket.create_connection(address, timeout=PROBE_CONNECT_S).close()
            parts.append(passed(f"the remote log store {managed.spec.logs.remote} accepts connections"))
        except OSError as exc:
            parts.append(failed(f"the remote log store {managed.spec.logs.remote} is unreachable ({exc}); "
                                f"records wait in the host's queue"))
    return combine(parts)


def probe_metrics(ev: Evidence) -> Finding:
    """The host's Prometheus scrapes the instance's Superset, its PostgreSQL and Redis, and the
    host, successfully, now."""
    managed = ev.target.managed
    if managed is None:
        return unverified("the Prometheus targets of Superset and its host would verify it")
    from setpoint.observability.monitoring import observations

    try:
        seen = observations(managed.platform.home, managed.spec)
    except (httpx.HTTPError, SetpointError) as exc:
        return failed(f"the host's Prometheus does not answer ({exc})")
    return combine([(passed if o.ok else failed)(o.evidence) for o in seen])

# The alerts the checklist names, and the rule of the host's Prometheus that raises each.
REQUIRED_ALERTS = {"HostCpuSaturated": "CPU at 99% for 5 min", "SupersetErrorRate": "5xx above 5% of requests",
                   "BackupFailed": "a failed backup"}


def probe_alerts(ev: Evidence) -> Finding:
    """The host's Prometheus evaluates the rules for this instance, its Alertmanager routes the
    instance's alerts to a receiver (the host's mailbox when the spec names none), and the last
    test notification sent to those receivers (by up) was delivered."""
    managed = ev.target.managed
    if managed is None:
        return unverified("alert rules for CPU, 5xx and backup failure with a receiver would verify it")
    from setpoint.observability import notification
    from setpoint.observability.monitoring import MAILBOX, Alertmanager, Prometheus, monitoring_of, receivers_of

    name = managed.spec.name
    monitored = monitoring_of(managed.platform.home)
    try:
        groups = Prometheus(monitored).alert_rules()
        receivers = Alertmanager(monitored).receivers_of(name)
    except (httpx.HTTPError, SetpointError) as exc:
        return failed(f"the host's Prometheus or Alertmanager does not answer ({exc})")
    loaded = {**groups.get("host", {}), **groups.get(f"instance {name}", {})}
    parts = [(passed if rule in loaded else failed)(f"{'a' if rule in loaded else 'no'} rule for {what} ({rule})")
             for rule, what in REQUIRED_ALERTS.items()]
    reached = [f"the host's mailbox (setpoint alerts {name} --mailbox)" if kind == MAILBOX else f"{len(targets)} {kind}(s)"
               for kind, targets in receivers.items() if targets]
    if reached:
        parts.append(passed(f"Alertmanager sends {name}'s alerts to {' and '.join(reached)}"))
    else:
        parts.append(failed(f"Alertmanager has no receiver for {name}'s alerts"))
    test, home = notification.last(managed.paths.read_state()), managed.platform.home
    current = receivers_of(home, managed.spec)
    if test is None or test.receivers != notification.receivers_digest(current):
        parts.append(failed("no test notification went to these receivers yet"))
    else:
        sent = f"the test notification of {test.at.replace('T', ' ')[:16]} UTC"
        if test.delivered and not notification.in_mailbox(home, name, current, datetime.fromisoformat(test.at)):
            parts.append(failed(f"{sent} is not in the host's mailbox"))
        else:
            parts.append((passed if test.delivered else failed)(
                f"{sent} {'reached them' if test.delivered else 'failed'} ({test.detail})"))
    return combine(parts)

PROBE_POINTS = 3  # the checklist's "from 3 points"
PROBE_EVERY_S = 60


def probe_synthetic(ev: Evidence) -> Finding:
    """At least 3 probe points (the host's blackbox exporter and those of the spec) reached the
    instance's /health and login page over HTTPS in their last probe, every 60 s or more often."""
    managed = ev.target.managed
    if managed is None:
        return unverified("an external check of /health every 60 s from 3 points with recent results would verify it")
    from setpoint.observability.monitoring import Prometheus, monitoring_of
    from setpoint.render import LOCAL_PROBE_POINT

    spec = managed.spec
    try:
        points = Prometheus(monitoring_of(managed.platform.home)).probe_points(spec.name)
    except (httpx.HTTPError, SetpointError) as exc:
        return failed(f"the host's Prometheus does not answer ({exc})")
    succeeded = sorted(p for p, ok in points.items() if ok)
    notes = [f"{len(succeeded)} probe point(s) reached /health and the login page in their last probe"
             + (f" ({', '.join(succeeded)})" if succeeded else "") + f", {PROBE_POINTS} needed"]
    notes += [f"{p}'s last probe failed" for p, ok in sorted(points.items()) if not ok]
    notes += [f"{p} has no recent probe (is its blackbox exporter running and reachable?)"
              for p in [LOCAL_PROBE_POINT, *spec.probes.points] if p not in points]
    often = spec.probes.interval_s <= PROBE_EVERY_S
    if not often:
        notes.append(f"the probes run every {spec.probes.interval_s} s, not every {PROBE_EVERY_S} s")
    return (passed if len(succeeded) >= PROBE_POINTS and often else failed)("; ".join(notes))

def probe_audit(ev: Evidence) -> Finding:
    """The scorecard's own login is in the instance's audit trail in the host's log store (outside
    the instance: root's, which no instance account reads or writes) within 10 s."""
    managed = ev.target.managed
    if managed is None:
        return unverified("an audit store outside the instance with logins, logouts and queries would verify it")
    from setpoint.observability import logstore

    home, name, user = managed.platform.home, managed.spec.name, managed.spec.admin.username
    if ev.api is None:
        return failed(f"could not log in as {user} to produce an audit record")
    since, trail = ev.started - timedelta(seconds=1), logstore.records_dir(home, name) / logstore.AUDIT
    logins: list[dict] = []

    def logged_in() -> bool:
        logins[:] = [e for e in logstore.audit_records(home, name, since, user) if e.get("event") == "login"]
        return bool(logins)

    try:
        wait_until(logged_in, LOG_WAIT_S, SetpointError("no login record"), interval=0.25)
    except SetpointError:
        return failed(f"the scorecard's login as {user} is not in the audit trail of the host's log store "
                      f"after {LOG_WAIT_S} s (looked in {trail})")
    return passed(f"the scorecard's login as {user} ({logins[-1]['time']}) is in the audit trail "
                  f"of the host's log store ({trail})")


def probe_gdpr(ev: Evidence) -> Finding:
    """A processing register outside the instance, naming the controller the spec names, and an
    erasure drill that passed within the spec's period."""
    managed = ev.target.managed
    if managed is None:
        return unverified("a processing register and a tested erasure procedure would verify it")
    spec, ctx = managed.spec, managed.context
    remedy = f"add a gdpr: section (controller, hosting_location) to the spec and run: setpoint up {spec.name} --spec FILE"
    if spec.gdpr is None:
        return failed("the spec has no gdpr: section, so there is no processing register and no erasure drill", remedy)
    parts = []
    for place, text in documents.copies(ctx, gdpr.REGISTER_FILE).items():
        if text is None or spec.gdpr.controller not in text:
            parts.append(failed(f"no current processing register in {place}", f"run: setpoint up {spec.name} --spec FILE"))
        else:
            parts.append(passed(f"processing register in {place}"))
    drill = read_record(managed.paths).get("last_erasure_drill")
    if not drill:
        parts.append(failed("no erasure drill has run", f"run: setpoint gdpr drill {spec.name}"))
    elif not drill.get("ok"):
        parts.append(failed(f"the last erasure drill ({drill['at'][:16]}) failed: "
                            f"{drill.get('error') or drill.get('still_mentioned')}", f"run: setpoint gdpr drill {spec.name}"))
    elif _age(drill["at"]) > timedelta(days=spec.gdpr.erasure_drill_every_days + 1):
        parts.append(failed(f"the last erasure drill is {_age(drill['at']).days} days old", f"run: setpoint gdpr drill {spec.name}"))
    else:
        parts.append(passed(f"erasure drill passed {drill['at'][:16]} in {drill['seconds']} s: a person found in "
                            f"{drill['found_before']} places before, in none after"))
    return combine(parts)




def probe_runbook(ev: Evidence) -> Finding:
    """Every copy outside the instance (each backup repository, the dashboards' git repository)
    is there and names the instance as it is now: its version, components and the commands."""
    managed = ev.target.managed
    if managed is None:
        return unverified("a runbook outside the instance (restart, clear cache, emergency user) would verify it")
    ctx, name = managed.context, managed.spec.name
    remedy = f"run: setpoint up {name} (it writes the runbook beside the backups), or see it with: setpoint runbook {name}"
    parts = []
    for place, text in documents.copies(ctx, runbook.FILE).items():
        if text is None:
            parts.append(failed(f"no runbook in {place}", remedy))
            continue
        gaps = runbook.gaps(ctx, text)
        parts.append(failed(f"the runbook in {place} does not name {', '.join(gaps)}", remedy) if gaps
                     else passed(f"the runbook in {place} names Superset {managed.spec.superset_version}, every "
                                 "component, restart, clear-cache and emergency-access"))
    return combine(parts)


def probe_updates(ev: Evidence) -> Finding:
    """The newest supported release with no known advisory; for a managed instance, its last
    upgrade (or its creation) went through staging, and its restore point is still restorable."""
    version = (ev.config_section("superset") or {}).get("version")
    newest = supported_superset_versions()[-1]
    parts = []
    if version is None:
        parts.append(unverified("the running Superset version is unknown: give --config"))
    else:
        if version_key(version) < version_key(newest):
            parts.append(failed(f"Superset {version} runs; {newest} is the newest supported release",
                                f"upgrade: setpoint upgrade NAME --to {newest}"))
        else:
            parts.append(passed(f"Superset {version} is the newest supported release"))
        unfixed = advisories.of_version(version)
        if unfixed:
            parts.append(failed(f"known advisories affect Superset {version}: "
                                + ", ".join(f"{a['id']} (fixed in {a['fixed']})" for a in unfixed)))
    managed = ev.target.managed
    if managed is None:
        parts.append(unverified("a staging rehearsal and a rollback path are not visible from outside"))
        return combine(parts)
    name = managed.spec.name
    last = read_record(managed.paths).get("last_upgrade")
    if last and last.get("ok") and last["to_version"] == managed.spec.superset_version:
        parts.append(passed(f"upgraded from {last['from_version']} on {last['started_at'][:10]} through staging "
                            f"({last['staging_s']} s; {last['downtime_s']} s of downtime)"))
        point = datetime.fromisoformat(last["restore_point"]["at"])
        if backup_report(managed.context).window.contains(point):
            parts.append(passed(f"rollback path: restore point {last['restore_point']['label']} "
                                f"(setpoint upgrade {name} --rollback)"))
        else:
            parts.append(failed(f"the restore point of the last upgrade ({point:%Y-%m-%d}) has left the recovery window",
                                f"keep backup.retention_days above the time between upgrades; restore points: setpoint backups {name}"))
    else:
        created = managed.paths.read_state().get("created_at", "")[:10]
        parts.append(passed(f"created on Superset {managed.spec.superset_version} {created}, never upgraded: "
                            "nothing to roll back"))
    return combine(parts)
