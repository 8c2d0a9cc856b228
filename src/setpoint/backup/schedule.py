"""The backup scheduler: one supervised process per host keeps every instance's full backups,
restore drills and dashboard exports current. Not a crontab the user must remember.

`due_jobs` is pure (what is due, given the record and the spec); `run_forever` is the loop that
supervisord keeps running (`python -m setpoint.backup.schedule HOME`). It runs each instance's
due jobs in a process of their own (`python -m setpoint.backup.schedule HOME --instance NAME`),
inside that instance's cgroup: what a tenant's backups and drills cost counts against its own
limits, and its slow or stuck jobs never delay another instance's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from setpoint.errors import SetpointError
from setpoint.home import Home, InstancePaths, write_file
from setpoint.spec import InstanceSpec

EXPORT_EVERY = timedelta(hours=24)
RETRY_AFTER = timedelta(minutes=10)
TICK_S = 60
EXPIRY_CHECK_S = 10  # emergency admins are shut out this soon after their expiry, whatever the jobs do

log = logging.getLogger("setpoint.schedule")


# The record entry each job writes when it ends, well or not.
RECORDS = {"backup": "last_backup", "drill": "last_drill", "export": "last_export", "erasure_drill": "last_erasure_drill"}
# Jobs whose entry the scheduler marks failed when their process dies before them. The export's
# entry is left as it was: it names the repository the next export and `setpoint import` use.
FAILS_ON_RECORD = ("backup", "drill", "erasure_drill")
JOBS_TIME_LIMIT = timedelta(hours=6)  # an instance's jobs past this are stopped (TERM, then KILL a tick later)
MAX_RUNNING = max(2, os.cpu_count() or 2)  # instances whose jobs run at once


def _older_than(entry: dict | None, period: timedelta, now: datetime) -> bool:
    """Whether a job is due: never ran, last ran `period` ago, or failed `RETRY_AFTER` ago."""
    if not entry:
        return True
    age = now - datetime.fromisoformat(entry["at"])
    return age >= (period if entry.get("ok", True) else min(period, RETRY_AFTER))


def due_jobs(spec: InstanceSpec, record: dict, now: datetime) -> list[str]:
    """Which of `backup`, `drill`, `export`, `erasure_drill` are due for an instance."""
    periods = {"backup": timedelta(hours=spec.backup.full_every_hours),
               "drill": timedelta(days=spec.backup.drill_every_days),
               "export": EXPORT_EVERY}
    if spec.gdpr:
        periods["erasure_drill"] = timedelta(days=spec.gdpr.erasure_drill_every_days)
    return [job for job, period in periods.items() if _older_than(record.get(RECORDS[job]), period, now)]


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
        run_drill(ctx, log=lambda message: log.info("%s: drill: %s", name, message))
    elif job == "erasure_drill":
        gdpr.run_drill(home, ctx)
    elif job == "export":
        secrets = SecretStore(ctx.paths.secrets_file).load()
        with admin_client(ctx.spec, load_platform(home), secrets) as api:
            export.export_instance(api, ctx.paths)
    documents.publish(ctx)


def due_now(home: Home, name: str, now: datetime) -> list[str]:
    """The jobs due for one instance; none for an instance not running, made ephemeral, or on an
    external metadata database. A spec, state or record that does not parse (a hand edit) stops
    only this instance's jobs, and says so."""
    from setpoint.backup.service import read_record
    from setpoint.runtime.local.instance import saved_spec

    paths = home.instance(name)
    try:
        spec = saved_spec(paths)
        if (not home.programs_conf(name).exists() or spec is None or spec.metadata_db.url
                or paths.read_state().get("ephemeral")):
            return []
        return due_jobs(spec, read_record(paths), now)
    except Exception as exc:  # noqa: BLE001 - one instance's failure never stops the others
        log.error("%s: its jobs are skipped: its spec, state or backup record does not read (%s); "
                  "run: setpoint up %s", name, str(exc)[:200], name)
        return []


def run_due_jobs(home: Home, name: str, now: datetime) -> None:
    """Run an instance's due jobs, one after the other, under its lock: never beside a converge,
    a restore or a command. This is the body of the process `start_jobs` starts. While they run,
    the instance's jobs file names them and this process: a scheduler that finds it left behind
    by a process that is gone records them failed (`settle`)."""
    from setpoint.runtime.local.instance import instance_lock
    from setpoint.runtime.local.superset_side.web_master import start_time

    paths = home.instance(name)
    try:
        with instance_lock(home, name):
            due = due_now(home, name, now)
            if not due:
                return
            write_file(paths.jobs_file, json.dumps({"pid": os.getpid(), "since": start_time(os.getpid()),
                                                    "due": due, "started": now.isoformat()}) + "\n", mode=0o600)
            for job in due:
                started = time.monotonic()
                try:
                    run_job(home, name, job)
                    log.info("%s: %s done in %.1f s", name, job, time.monotonic() - started)
                except SetpointError as exc:
                    log.error("%s: %s failed: %s", name, job, exc.message)
                except Exception:  # noqa: BLE001 - the next job still runs
                    log.exception("%s: %s failed", name, job)
            paths.jobs_file.unlink(missing_ok=True)  # each job ended and recorded how
    except SetpointError:
        log.info("%s: busy (another command is changing it); its jobs wait for the next tick", name)


@dataclass
class Jobs:
    """An instance's jobs, running in a process of their own: one this scheduler started, or one an
    earlier scheduler started (a session of its own, it outlives a restart: a backup finishes)."""

    name: str
    pid: int
    started: datetime
    process: subprocess.Popen | None = None  # None: adopted from an earlier scheduler
    since: int | None = None  # an adopted process's start time, so that a reused pid is not taken for it
    stopping_since: datetime | None = None

    def ended(self) -> str | None:
        """None while the process runs; else how it ended."""
        from setpoint.runtime.local.superset_side.web_master import start_time

        if self.process is None:
            alive = self.since is not None and start_time(self.pid) == self.since
            return None if alive else "unseen: it outlived a restart of the scheduler"
        code = self.process.poll()
        if code is None:
            return None
        return f"signal {-code}" if code < 0 else f"code {code}"


def jobs_command(home: Home, name: str) -> list[str]:
    """The command that runs an instance's due jobs: inside the instance's cgroup where Setpoint
    confines its processes, so a backup's or a drill's memory, CPU and processes (pgBackRest, the
    drill's scratch PostgreSQL) count against the instance's own limits, never its neighbours'."""
    from setpoint.runtime.local.confine import confine_prefix
    from setpoint.runtime.local.instance import confinement

    command = [sys.executable, "-m", "setpoint.backup.schedule", str(home.root), "--instance", name]
    confined = confinement(home, name)
    if not confined:
        return command
    return [*confine_prefix(sys.executable, confined["cgroup"], "root", home.instance(name).config / "limits.json"),
            *command]


def start_jobs(home: Home, name: str, due: list[str], now: datetime) -> Jobs:
    # A session of its own: stopping the scheduler (supervisord's TERM) leaves a backup to finish.
    process = subprocess.Popen(jobs_command(home, name), stdin=subprocess.DEVNULL, start_new_session=True)
    log.info("%s: %s due, running in process %d", name, ", ".join(due), process.pid)
    return Jobs(name, process.pid, now, process)


def jobs_left(paths: InstancePaths) -> dict | None:
    """What the instance's jobs file says (`run_due_jobs` writes it), or None when there is none."""
    try:
        return json.loads(paths.jobs_file.read_text())
    except FileNotFoundError:
        return None


def _jobs_of(name: str, left: dict) -> Jobs:
    return Jobs(name, left["pid"], datetime.fromisoformat(left["started"]), since=left["since"])


def running_jobs(paths: InstancePaths) -> dict | None:
    """The scheduled jobs running now for an instance, and their process; None when none run."""
    left = jobs_left(paths)
    if left is None or _jobs_of(paths.name, left).ended() is not None:
        return None
    return {"jobs": left["due"], "since": left["started"], "pid": left["pid"]}


def stop_jobs(home: Home, name: str, grace_s: float = 60) -> dict | None:
    """End the scheduler's jobs of an instance that is going away: TERM, which lets a drill stop
    its scratch cluster, then, if the instance is still held after `grace_s`, KILL to their process
    and everything below it. The jobs it stopped, or None when none ran."""
    from setpoint.runtime.local.instance import instance_lock

    jobs = running_jobs(home.instance(name))
    if jobs is None:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(jobs["pid"], signal.SIGTERM)
    try:
        with instance_lock(home, name, wait_s=grace_s):  # free once their process has ended
            pass
    except SetpointError:
        _kill_tree(jobs["pid"])
    return jobs


def adopt(home: Home, name: str, now: datetime) -> Jobs | None:
    """The jobs an earlier scheduler started for an instance, when they still run: watched (their
    time limit, their end) as this scheduler's own. When they ended meanwhile, unseen, what they
    left undone is recorded failed."""
    left = jobs_left(home.instance(name))
    if left is None:
        return None
    jobs = _jobs_of(name, left)
    how = jobs.ended()
    if how is None:
        log.info("%s: its jobs (%s) still run in process %d, which an earlier scheduler started: watching them",
                 name, ", ".join(left["due"]), jobs.pid)
        return jobs
    settle(home, name, how, now)
    return None


def watch(home: Home, jobs: Jobs, now: datetime) -> bool:
    """Whether an instance's jobs still run. Jobs past JOBS_TIME_LIMIT get TERM (their cleanups
    run: a drill stops its scratch cluster), and a tick later KILL, with every process below."""
    how = jobs.ended()
    if how is not None:
        settle(home, jobs.name, how, now)
        return False
    if now - jobs.started < JOBS_TIME_LIMIT:
        return True
    if jobs.stopping_since is None:
        log.error("%s: its jobs still run after %s: stopping them", jobs.name, JOBS_TIME_LIMIT)
        jobs.stopping_since = now
        with contextlib.suppress(ProcessLookupError):
            os.kill(jobs.pid, signal.SIGTERM)
    elif now - jobs.stopping_since >= timedelta(seconds=TICK_S):
        _kill_tree(jobs.pid)
    return True


def _kill_tree(pid: int) -> None:
    """KILL a jobs process and every process below it (pgBackRest, a drill's scratch cluster)."""
    from setpoint.host.capacity import process_tree

    for each in process_tree([pid]):
        with contextlib.suppress(ProcessLookupError):
            os.kill(each, signal.SIGKILL)


def settle(home: Home, name: str, how: str, now: datetime) -> None:
    """An instance's jobs process has ended. If it left its jobs file, it ended before its jobs did
    (killed by the instance's memory limit, by the time limit, or a crash): each job it left
    without a new record entry is recorded as failed, so that it is retried after RETRY_AFTER
    rather than at every tick, and `setpoint check` says so."""
    from setpoint.backup.service import read_record, update_record

    paths = home.instance(name)
    left = jobs_left(paths)
    if left is None:  # its jobs all ended and recorded how, it never began them, or the instance is gone
        if how != "code 0" and paths.exists():
            log.error("%s: the process that was to run its jobs ended (%s) before them", name, how)
        return
    log.error("%s: the process running its jobs ended (%s) before them; see the lines above", name, how)
    error = (f"the scheduled jobs' process ended ({how}) before this job was done: "
             f"see {home.supervisor_dir / 'scheduler.log'}")
    try:
        record, started = read_record(paths), datetime.fromisoformat(left["started"])
        failed = {RECORDS[job]: {"at": now.isoformat(), "ok": False, "error": error}
                  for job in left["due"] if job in FAILS_ON_RECORD and not _written_since(record.get(RECORDS[job]), started)}
        if failed:
            update_record(paths, **failed)
        paths.jobs_file.unlink()
    except Exception:  # noqa: BLE001 - the record is the instance's; the others' jobs go on
        log.exception("%s: could not record its jobs' failure", name)


def _written_since(entry: dict | None, moment: datetime) -> bool:
    return bool(entry) and datetime.fromisoformat(entry["at"]) >= moment


def tick(home: Home, now: datetime, running: dict[str, Jobs]) -> None:
    """One pass over every instance of the home: reap the jobs that ended, stop those past their
    time, and start each due instance's jobs in a process of its own. One instance's slow or stuck
    jobs never hold back another's."""
    for name, jobs in list(running.items()):
        if not watch(home, jobs, now):
            del running[name]
    for name in home.instance_names():
        if name in running:
            continue
        if adopted := adopt(home, name, now):
            running[name] = adopted
            continue
        if len(running) >= MAX_RUNNING:
            continue
        due = due_now(home, name, now)
        if due:
            running[name] = start_jobs(home, name, due, now)


def expire_emergency_access(home: Home, now: datetime) -> None:
    """Deactivate the emergency admins whose time is over (operations/emergency.py)."""
    from setpoint.backup.service import read_record
    from setpoint.operations import emergency
    from setpoint.runtime.local.instance import load_context

    for name in home.instance_names():
        try:
            pending = [g for g in read_record(home.instance(name)).get(emergency.RECORD, []) if not g.get("revoked_at")]
            if not any(datetime.fromisoformat(g["expires_at"]) <= now for g in pending):
                continue
            for username in emergency.revoke_expired(load_context(home, name), now):
                log.info("%s: emergency access of %s expired: deactivated", name, username)
        except SetpointError as exc:  # PostgreSQL down: the next check tries again
            log.warning("%s: emergency access not revoked yet: %s", name, exc.message)
        except Exception:  # noqa: BLE001 - one instance's failure never stops the others
            log.exception("%s: emergency access not revoked yet", name)


def watch_emergency_access(home: Home, stop: threading.Event) -> None:
    """Every EXPIRY_CHECK_S, beside the jobs, in a thread of its own: an emergency admin is shut
    out at its expiry, even while a command or the instance's jobs (hours, for a large instance's
    drill) hold the instance's lock, which revoking does not take."""
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
    running: dict[str, Jobs] = {}
    while True:
        tick(home, now(), running)
        publish_facts(home)
        prune_logs(home)
        time.sleep(TICK_S)


def main(argv: list[str]) -> None:
    from setpoint.backup.service import now

    parser = argparse.ArgumentParser(prog="python -m setpoint.backup.schedule")
    parser.add_argument("home", type=Path)
    parser.add_argument("--instance", help="run this instance's due jobs, then exit")
    args = parser.parse_args(argv)
    if not args.instance:
        run_forever(Home(args.home))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # TERM (the time limit) ends the jobs through their cleanups: a drill stops its scratch cluster.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(f"{args.instance}: its jobs were stopped"))
    run_due_jobs(Home(args.home), args.instance, now())


if __name__ == "__main__":
    main(sys.argv[1:])
