"""The backup scheduler: one supervised process per host keeps every instance's full backups,
restore drills and dashboard exports current. Not a crontab the user must remember.

`due_jobs` is pure (what is due, given the record and the spec); `run_forever` is the loop that
supervisord keeps running (`python -m setpoint.backup.schedule HOME`).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

from setpoint.errors import SetpointError
from setpoint.home import Home
from setpoint.spec import InstanceSpec

EXPORT_EVERY = timedelta(hours=24)
RETRY_AFTER = timedelta(minutes=10)
TICK_S = 60
EXPIRY_CHECK_S = 10  # emergency admins are shut out this soon after their expiry, whatever the jobs do

log = logging.getLogger("setpoint.schedule")


def _older_than(entry: dict | None, period: timedelta, now: datetime) -> bool:
    """Whether a job is due: never ran, last ran `period` ago, or failed `RETRY_AFTER` ago."""
    if not entry:
        return True
    age = now - datetime.fromisoformat(entry["at"])
    return age >= (period if entry.get("ok", True) else min(period, RETRY_AFTER))


def due_jobs(spec: InstanceSpec, record: dict, now: datetime) -> list[str]:
    """Which of `backup`, `drill`, `export`, `erasure_drill` are due for an instance."""
    jobs = []
    if _older_than(record.get("last_backup"), timedelta(hours=spec.backup.full_every_hours), now):
        jobs.append("backup")
    if _older_than(record.get("last_drill"), timedelta(days=spec.backup.drill_every_days), now):
        jobs.append("drill")
    if _older_than(record.get("last_export"), EXPORT_EVERY, now):
        jobs.append("export")
    if spec.gdpr and _older_than(record.get("last_erasure_drill"), timedelta(days=spec.gdpr.erasure_drill_every_days), now):
        jobs.append("erasure_drill")
    return jobs


def run_job(home: Home, name: str, job: str) -> None:
    """Run one due job of one instance; failures are recorded by the job itself."""
    from setpoint.backup import export
    from setpoint.operations import documents, gdpr
    from setpoint.backup.drill import run_drill
    from setpoint.backup.service import take_backup
    from setpoint.runtime.local.converge import admin_client
    from setpoint.runtime.local.instance import load_context
    from setpoint.runtime.local.platform import load_platform
    from setpoint.secret import SecretStore

    ctx = load_context(home, name)
    if job == "backup":
        take_backup(ctx, "full")
    elif job == "drill":
        run_drill(ctx)
    elif job == "erasure_drill":
        gdpr.run_drill(home, ctx)
    elif job == "export":
        secrets = SecretStore(ctx.paths.secrets_file).load()
        with admin_client(ctx.spec, load_platform(home), secrets) as api:
            export.export_instance(api, ctx.paths)
    documents.publish(ctx)


def tick(home: Home, now: datetime) -> None:
    """One pass over every running instance of the home."""
    from setpoint.backup.service import read_record
    from setpoint.runtime.local.instance import instance_lock, saved_spec

    for name in home.instance_names():
        paths = home.instance(name)
        try:  # a spec, state or record that does not parse (a hand edit) stops only its own jobs
            spec = saved_spec(paths)
            if (not home.programs_conf(name).exists() or spec is None or spec.metadata_db.url
                    or paths.read_state().get("ephemeral")):
                continue
            jobs = due_jobs(spec, read_record(paths), now)
        except Exception as exc:  # noqa: BLE001 - one instance's failure never stops the others
            log.error("%s: its jobs are skipped: its spec, state or backup record does not read (%s); "
                      "run: setpoint up %s", name, str(exc)[:200], name)
            continue
        if not jobs:
            continue
        try:
            with instance_lock(home, name):  # never beside a converge, a restore or another job
                for job in jobs:
                    started = time.monotonic()
                    try:
                        run_job(home, name, job)
                        log.info("%s: %s done in %.1f s", name, job, time.monotonic() - started)
                    except SetpointError as exc:
                        log.error("%s: %s failed: %s", name, job, exc.message)
                    except Exception:  # noqa: BLE001 - one instance's failure never stops the others
                        log.exception("%s: %s failed", name, job)
        except SetpointError:
            log.info("%s: busy (another command is changing it); its jobs wait for the next tick", name)


def expire_emergency_access(home: Home, now: datetime) -> None:
    """Deactivate the emergency admins whose time is over (operations/emergency.py)."""
    from setpoint.backup.service import read_record
    from setpoint.operations import emergency
    from setpoint.runtime.local.instance import instance_lock, load_context

    for name in home.instance_names():
        try:
            pending = [g for g in read_record(home.instance(name)).get(emergency.RECORD, []) if not g.get("revoked_at")]
            if not any(datetime.fromisoformat(g["expires_at"]) <= now for g in pending):
                continue
            with instance_lock(home, name):
                for username in emergency.revoke_expired(load_context(home, name), now):
                    log.info("%s: emergency access of %s expired: deactivated", name, username)
        except SetpointError as exc:  # busy, or PostgreSQL down: the next tick tries again
            log.warning("%s: emergency access not revoked yet: %s", name, exc.message)
        except Exception:  # noqa: BLE001 - one instance's failure never stops the others
            log.exception("%s: emergency access not revoked yet", name)


def watch_emergency_access(home: Home, stop: threading.Event) -> None:
    """Every EXPIRY_CHECK_S, beside the jobs, in a thread of its own: an emergency admin is shut
    out at its expiry, not once the tick's backups, drills and exports (minutes, for a large
    instance) are done. An instance busy with a command is tried again at the next check; the
    instance lock keeps this apart from the jobs."""
    from setpoint.backup.service import now

    while not stop.wait(EXPIRY_CHECK_S):
        try:
            expire_emergency_access(home, now())
        except Exception:  # noqa: BLE001 - the next check tries again
            log.exception("could not check the emergency admins' expiry")


def publish_facts(home: Home) -> None:
    """Setpoint's facts of every instance, for the host's Prometheus (observability/facts.py)."""
    from setpoint.observability.facts import write_facts

    try:
        write_facts(home)
    except Exception:  # noqa: BLE001 - metrics never stop the backups
        log.exception("could not write Setpoint's facts for Prometheus")


def prune_logs(home: Home) -> None:
    """Delete the log store's days past each instance's retention, and rotate each instance's
    audit file and empty its access log past their sizes (observability/logstore.py)."""
    from setpoint.observability.logstore import prune, rotate_audit_trail, trim_access_log

    try:
        for path in prune(home):
            log.info("deleted %s: past its retention", path)
        for name in home.instance_names():
            paths = home.instance(name)
            if rotate_audit_trail(paths):
                log.info("%s: rotated its audit file", name)
            if trim_access_log(paths):
                log.info("%s: emptied its access log", name)
    except Exception:  # noqa: BLE001 - retention never stops the backups
        log.exception("could not apply the log store's retention")


def run_forever(home: Home) -> None:
    from setpoint.backup.service import now

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    log.info("scheduler started for %s", home.root)
    threading.Thread(target=watch_emergency_access, args=(home, threading.Event()), name="emergency-access",
                     daemon=True).start()
    while True:
        tick(home, now())
        publish_facts(home)
        prune_logs(home)
        time.sleep(TICK_S)


if __name__ == "__main__":
    run_forever(Home(Path(sys.argv[1])))
