"""What the backup scheduler considers due."""

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
