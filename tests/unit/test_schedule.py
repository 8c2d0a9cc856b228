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
