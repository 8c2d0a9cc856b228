"""What the backup scheduler considers due."""

import json
from datetime import datetime, timedelta, timezone

from setpoint.backup.schedule import due_jobs
from setpoint.spec import parse_spec

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)
SPEC = parse_spec({"name": "demo"})


def at(delta: timedelta, ok: bool = True) -> dict:
    return {"at": (NOW - delta).isoformat(), "ok": ok}


def test_everything_is_due_on_a_new_instance():
    assert due_jobs(SPEC, {}, NOW) == ["backup", "drill", "export"]


def test_nothing_is_due_right_after_the_first_converge():
    record = {"last_backup": at(timedelta(minutes=5)), "last_drill": at(timedelta(minutes=5)),
              "last_export": at(timedelta(minutes=5))}
    assert due_jobs(SPEC, record, NOW) == []


def test_daily_full_backup_and_quarterly_drill():
    record = {"last_backup": at(timedelta(hours=24)), "last_drill": at(timedelta(days=89)),
              "last_export": at(timedelta(hours=23))}
    assert due_jobs(SPEC, record, NOW) == ["backup"]
    record["last_drill"] = at(timedelta(days=90))
    assert due_jobs(SPEC, record, NOW) == ["backup", "drill"]


def test_a_failed_backup_or_drill_is_retried_after_ten_minutes():
    record = {"last_backup": at(timedelta(minutes=1), ok=False), "last_drill": at(timedelta(minutes=1), ok=False),
              "last_export": at(timedelta(minutes=1))}
    assert due_jobs(SPEC, record, NOW) == []
    record = {**record, "last_backup": at(timedelta(minutes=10), ok=False), "last_drill": at(timedelta(minutes=11), ok=False)}
    assert due_jobs(SPEC, record, NOW) == ["backup", "drill"]


def test_spec_sets_the_rhythm():
    spec = parse_spec({"name": "demo", "backup": {"full_every_hours": 6, "drill_every_days": 7}})
    record = {"last_backup": at(timedelta(hours=7)), "last_drill": at(timedelta(days=8)),
              "last_export": at(timedelta(hours=1))}
    assert due_jobs(spec, record, NOW) == ["backup", "drill"]


def test_emergency_admins_are_checked_every_few_seconds_beside_the_jobs(monkeypatch):
    """The expiry check runs in a thread of its own every EXPIRY_CHECK_S: a tick's backups and
    drills (minutes) no longer keep an expired emergency admin in; a check that fails is tried
    again at the next one."""
    import threading
    import time

    from setpoint.backup import schedule

    checks = []

    def check(home, at):
        checks.append(at)
        if len(checks) == 1:
            raise RuntimeError("PostgreSQL is restarting")

    monkeypatch.setattr(schedule, "EXPIRY_CHECK_S", 0.05)
    monkeypatch.setattr(schedule, "expire_emergency_access", check)
    stop = threading.Event()
    watcher = threading.Thread(target=schedule.watch_emergency_access, args=(None, stop), daemon=True)
    watcher.start()
    time.sleep(0.5)
    stop.set()
    watcher.join(timeout=5)
    assert not watcher.is_alive() and len(checks) >= 3


def jobs_of(home, name: str, due: list[str], argv: list[str], started: datetime):
    """Jobs running `argv`, with the jobs file a jobs process writes when it begins them."""
    import json
    import subprocess

    from setpoint.backup import schedule
    from setpoint.runtime.local.superset_side.web_master import start_time

    process = subprocess.Popen(argv, start_new_session=True)
    home.instance(name).jobs_file.write_text(json.dumps(
        {"pid": process.pid, "since": start_time(process.pid), "due": due, "started": started.isoformat()}))
    return schedule.Jobs(name, process.pid, started, process)


def test_jobs_whose_process_dies_are_recorded_failed_except_the_export(tmp_path):
    """An instance's jobs process killed midway (its memory limit, kill -9) leaves the jobs it had
    not finished marked failed: retried after ten minutes, not at every tick, and `setpoint check`
    says why. The export's entry names its repository, so it is left as it was; an entry written
    since the process started is the job's own and is kept."""
    from setpoint.backup import schedule
    from setpoint.backup.service import read_record, update_record
    from setpoint.home import Home

    home = Home(tmp_path)
    paths = home.instance("alpha")
    paths.root.mkdir(parents=True)
    export = {"at": at(timedelta(days=2))["at"], "target": "/somewhere", "commit": "abc", "dashboards": 1}
    update_record(paths, last_backup=at(timedelta(days=2)), last_drill=at(timedelta(days=100)), last_export=export)
    started = datetime.now(timezone.utc)
    jobs = jobs_of(home, "alpha", ["backup", "drill", "export"], ["sh", "-c", "kill -9 $$"], started)
    jobs.process.wait(timeout=10)
    update_record(paths, last_backup={"at": datetime.now(timezone.utc).isoformat(), "ok": True})  # done before the kill
    assert schedule.watch(home, jobs, datetime.now(timezone.utc)) is False
    record = read_record(paths)
    assert record["last_backup"]["ok"] is True
    assert record["last_drill"]["ok"] is False and "ended (signal 9)" in record["last_drill"]["error"]
    assert record["last_export"] == export
    assert due_jobs(SPEC, record, datetime.now(timezone.utc) + timedelta(minutes=1)) == ["export"]
    assert not paths.jobs_file.exists()


def test_jobs_that_outlive_a_scheduler_restart_are_watched_and_their_death_recorded(tmp_path, monkeypatch):
    """The jobs process has a session of its own, so a restart of the scheduler (an upgrade of
    Setpoint) leaves a backup to finish. The next scheduler finds it by its jobs file: it starts
    no second one beside it, and when it dies (kill -9) records its unfinished jobs failed, as it
    would for a process of its own."""
    from setpoint.backup import schedule
    from setpoint.backup.service import read_record, update_record
    from setpoint.home import Home

    home = Home(tmp_path)
    paths = home.instance("alpha")
    paths.root.mkdir(parents=True)
    paths.write_state({"desired": "up"})
    started = datetime.now(timezone.utc)
    update_record(paths, last_backup=at(timedelta(days=2)), last_drill=at(timedelta(days=100)),
                  last_export={"at": started.isoformat(), "ok": True})
    orphan = jobs_of(home, "alpha", ["backup", "drill"], ["sleep", "300"], started).process
    monkeypatch.setattr(schedule, "due_now", lambda home, name, now: due_jobs(SPEC, read_record(home.instance(name)), now))
    monkeypatch.setattr(schedule, "jobs_command", lambda home, name: ["true"])
    running: dict = {}  # a new scheduler's
    schedule.tick(home, datetime.now(timezone.utc), running)
    assert running["alpha"].process is None and running["alpha"].pid == orphan.pid, "no second process beside it"
    orphan.kill()
    orphan.wait()
    schedule.tick(home, datetime.now(timezone.utc), running)
    record = read_record(paths)
    assert record["last_backup"]["ok"] is False and "outlived a restart of the scheduler" in record["last_backup"]["error"]
    assert record["last_drill"]["ok"] is False and not paths.jobs_file.exists()
    assert "alpha" not in running, "retried in ten minutes, not at once"


def test_a_pid_in_use_again_is_not_taken_for_the_jobs_process(tmp_path):
    """The jobs file names its process by pid and start time: a pid the kernel gave another
    process since (here: this test's own) does not pass for the jobs."""
    import json
    import os

    from setpoint.backup import schedule
    from setpoint.home import Home

    home = Home(tmp_path)
    paths = home.instance("alpha")
    paths.root.mkdir(parents=True)
    paths.jobs_file.write_text(json.dumps({"pid": os.getpid(), "since": 1, "due": ["backup"],
                                           "started": datetime.now(timezone.utc).isoformat()}))
    assert schedule.adopt(home, "alpha", datetime.now(timezone.utc)) is None
    assert not paths.jobs_file.exists()


def test_the_jobs_file_names_the_jobs_while_they_run_and_is_gone_when_they_all_ended(tmp_path, monkeypatch):
    """A job that fails (a SetpointError, or any exception) is its own record's business: the next
    job runs, and the jobs file goes. A process stopped midway (TERM, the time limit) leaves it."""
    import json

    import pytest

    from setpoint.backup import schedule
    from setpoint.errors import SetpointError
    from setpoint.home import Home

    home = Home(tmp_path)
    paths = home.instance("alpha")
    paths.root.mkdir(parents=True)
    seen = []

    def run_job(home, name, job):
        seen.append((job, json.loads(paths.jobs_file.read_text())["due"]))
        if job == "backup":
            raise SetpointError("pgBackRest failed")
        if job == "drill":
            raise RuntimeError("a bug")

    monkeypatch.setattr(schedule, "due_now", lambda home, name, now: ["backup", "drill", "export"])
    monkeypatch.setattr(schedule, "run_job", run_job)
    schedule.run_due_jobs(home, "alpha", datetime.now(timezone.utc))
    assert seen == [(job, ["backup", "drill", "export"]) for job in ("backup", "drill", "export")]
    assert not paths.jobs_file.exists()

    def stopped(home, name, job):
        raise SystemExit("alpha: its jobs were stopped")  # what TERM does

    monkeypatch.setattr(schedule, "run_job", stopped)
    with pytest.raises(SystemExit):
        schedule.run_due_jobs(home, "alpha", datetime.now(timezone.utc))
    assert json.loads(paths.jobs_file.read_text())["due"] == ["backup", "drill", "export"]


def test_jobs_past_their_time_limit_get_term_then_kill_with_every_process_below(tmp_path):
    import time
    from pathlib import Path

    from setpoint.backup import schedule
    from setpoint.home import Home

    home = Home(tmp_path)
    home.instance("alpha").root.mkdir(parents=True)
    late = datetime.now(timezone.utc) - schedule.JOBS_TIME_LIMIT - timedelta(seconds=1)
    # A job that ignores TERM, with a child of its own in another session (as pgBackRest runs).
    jobs = jobs_of(home, "alpha", ["backup"],
                   ["sh", "-c", f"trap '' TERM; setsid sleep 300 & echo $! > {tmp_path}/child; wait"], late)
    time.sleep(0.5)
    child = int((tmp_path / "child").read_text())
    now = datetime.now(timezone.utc)
    assert schedule.watch(home, jobs, now) is True and jobs.stopping_since == now
    time.sleep(0.5)
    assert jobs.process.poll() is None, "TERM is ignored: it still runs"
    assert schedule.watch(home, jobs, now + timedelta(seconds=schedule.TICK_S - 1)) is True
    assert jobs.process.poll() is None, "KILL comes a whole tick after TERM"
    assert schedule.watch(home, jobs, now + timedelta(seconds=schedule.TICK_S)) is True
    assert jobs.process.wait(timeout=10) == -9
    time.sleep(0.2)
    stat = Path(f"/proc/{child}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z", "its child in another session ended too"


def test_one_instances_stuck_jobs_hold_back_no_other_instance(tmp_path, monkeypatch):
    """Each instance's jobs run in a process of their own: one that never ends (a hung export)
    neither delays another instance's jobs nor gets a second process beside it."""
    import time

    from setpoint.backup import schedule
    from setpoint.home import Home

    home = Home(tmp_path)
    for name in ("stuck", "quick"):
        home.instance(name).root.mkdir(parents=True)
        home.instance(name).write_state({"desired": "up"})
    commands = {"stuck": ["sleep", "300"], "quick": ["true"]}
    monkeypatch.setattr(schedule, "due_now", lambda home, name, now: ["backup"])
    monkeypatch.setattr(schedule, "jobs_command", lambda home, name: commands[name])
    running: dict = {}
    schedule.tick(home, datetime.now(timezone.utc), running)
    assert set(running) == {"stuck", "quick"}
    stuck = running["stuck"].process
    running["quick"].process.wait(timeout=10)
    schedule.tick(home, datetime.now(timezone.utc), running)
    assert running["stuck"].process is stuck and running["quick"].process.pid != stuck.pid
    time.sleep(0.2)
    assert running["quick"].process.poll() == 0, "quick's next jobs ran beside stuck's"
    stuck.kill()
    stuck.wait()


def test_record_writes_from_two_processes_at_once_lose_nothing(tmp_path):
    """The scheduler's jobs, a command and the emergency admins' expiry write the same record.json
    at once: each read-modify-write happens under the record's lock, so no entry is lost."""
    import multiprocessing

    from setpoint.backup.service import read_record, update_record
    from setpoint.home import Home

    paths = Home(tmp_path).instance("alpha")
    paths.root.mkdir(parents=True)

    def write(key: str) -> None:
        for count in range(1, 201):
            update_record(paths, **{key: count})

    writers = [multiprocessing.get_context("fork").Process(target=write, args=(key,)) for key in ("jobs", "expiry")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=60)
    assert [w.exitcode for w in writers] == [0, 0]
    assert read_record(paths) == {"jobs": 200, "expiry": 200}


def test_a_command_the_scheduler_holds_back_is_told_which_jobs_and_since_when(tmp_path):
    """A drill of a large instance takes hours: the command it holds back names it, not 'another
    command'. Once its process is gone, the jobs are no longer said to run."""
    import json
    import os

    import pytest

    from setpoint.backup.schedule import running_jobs
    from setpoint.errors import SetpointError
    from setpoint.home import Home
    from setpoint.runtime.local.instance import instance_lock
    from setpoint.runtime.local.superset_side.web_master import start_time

    home = Home(tmp_path)
    paths = home.instance("alpha")
    paths.root.mkdir(parents=True)
    with instance_lock(home, "alpha"):
        with pytest.raises(SetpointError, match="another setpoint command is already changing instance 'alpha'"):
            with instance_lock(home, "alpha"):
                pass
        paths.jobs_file.write_text(json.dumps({"pid": os.getpid(), "since": start_time(os.getpid()), "due": ["drill"],
                                               "started": "2026-12-03T18:15:01.307630+00:00"}))
        with pytest.raises(SetpointError) as held:
            with instance_lock(home, "alpha"):
                pass
    assert held.value.message == (f"the scheduler's drill of instance 'alpha' is running "
                                  f"(since 2026-12-03 18:15:01 UTC, process {os.getpid()})")
    assert "setpoint status alpha" in held.value.hint
    assert running_jobs(paths)["jobs"] == ["drill"]
    paths.jobs_file.write_text(paths.jobs_file.read_text().replace(f'"pid": {os.getpid()}', '"pid": 999999999'))
    assert running_jobs(paths) is None


def test_stopping_an_instances_jobs_sends_term_then_kill_to_jobs_that_hold_on(tmp_path):
    """What `destroy` does first: TERM lets the jobs end (a drill stops its scratch cluster); jobs
    that still hold the instance after the grace time are killed."""
    import subprocess
    import sys

    from setpoint.backup import schedule
    from setpoint.home import Home
    from setpoint.runtime.local.superset_side.web_master import start_time

    home = Home(tmp_path)
    paths = home.instance("alpha")
    paths.root.mkdir(parents=True)
    holder = ("import fcntl, signal, sys, time\n"
              "signal.signal(signal.SIGTERM, signal.SIG_IGN if sys.argv[2] == 'ignore' else signal.SIG_DFL)\n"
              "lock = open(sys.argv[1], 'w'); fcntl.flock(lock, fcntl.LOCK_EX); print('held', flush=True); time.sleep(300)")
    for on_term, ends_with in (("ignore", -9), ("end", -15)):
        jobs = subprocess.Popen([sys.executable, "-c", holder, str(home.instances_dir / ".alpha.lock"), on_term],
                                stdout=subprocess.PIPE, text=True)
        assert jobs.stdout.readline() == "held\n"
        paths.jobs_file.write_text(json.dumps({"pid": jobs.pid, "since": start_time(jobs.pid), "due": ["drill"],
                                               "started": datetime.now(timezone.utc).isoformat()}))
        assert schedule.stop_jobs(home, "alpha", grace_s=1)["jobs"] == ["drill"]
        assert jobs.wait(timeout=10) == ends_with
        jobs.stdout.close()
    paths.jobs_file.unlink()
    assert schedule.stop_jobs(home, "alpha") is None
