"""Task safety's pure parts: the status read from the broker, the PostgreSQL statement timeout, the
broker's visibility timeout. The hooks themselves are exercised against real processes in
tests/scenarios/test_work_in_flight.py."""

import importlib.util
import json
from pathlib import Path

from setpoint.cli import task_line
from setpoint.runtime.local.task_queue import parse_stats

SOURCE = Path(__file__).resolve().parents[2] / "src/setpoint/runtime/local/superset_side/task_safety.py"
_spec = importlib.util.spec_from_file_location("task_safety", SOURCE)
task_safety = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(task_safety)

SAFETY = task_safety.TaskSafety("redis://:pw@127.0.0.1:1/0", "postgresql://x", time_limit_s=600, grace_s=60)


class Url:
    def __init__(self, backend: str) -> None:
        self.backend = backend

    def get_backend_name(self) -> str:
        return self.backend


def test_postgres_analytics_connections_get_the_time_limit_as_statement_timeout():
    url = Url("postgresql")
    assert SAFETY.connection_mutator(url, {}, "alice", None, None) == (url, {"connect_args": {"options": "-c statement_timeout=600000"}})
    _, params = SAFETY.connection_mutator(url, {"connect_args": {"options": "-c search_path=sales"}})
    assert params["connect_args"]["options"] == "-c search_path=sales -c statement_timeout=600000"
    # A timeout the database's own settings name is kept; other engines are left alone.
    _, params = SAFETY.connection_mutator(url, {"connect_args": {"options": "-c statement_timeout=5s"}})
    assert params["connect_args"]["options"] == "-c statement_timeout=5s"
    mysql = Url("mysql")
    assert SAFETY.connection_mutator(mysql, {}) == (mysql, {})


def test_the_broker_redelivers_only_after_the_longest_task_and_its_grace():
    assert SAFETY.visibility_timeout_s > 600 + 60 + 60


def test_published_tasks_are_stamped_once():
    headers = {}
    task_safety.TaskSafety.stamp(headers=headers)
    first = headers["setpoint_queued_at"]
    task_safety.TaskSafety.stamp(headers=headers)
    assert headers["setpoint_queued_at"] == first


def stats(**fields) -> str:
    return json.dumps({"now": 1000.0, "queues": [{"name": "celery", "queued": 0}], "running": 0, **fields})


def test_status_reads_queue_depth_and_ages():
    status = parse_stats(stats(queues=[{"name": "celery", "queued": 3, "oldest_queued_at": 988.0}],
                               running=1, oldest_running_since=960.0), time_limit_s=600)
    assert (status.queues[0].queued, status.queues[0].oldest_queued_s) == (3, 12.0)
    assert (status.running, status.oldest_running_s, status.overdue) == (1, 40.0, False)
    assert task_line(status.to_dict()) == "tasks: 3 queued in celery (oldest 12 s), 1 running (for 40 s)"


def test_a_task_past_its_limit_and_hard_kill_is_overdue():
    status = parse_stats(stats(running=1, oldest_running_since=1000.0 - 661), time_limit_s=600)
    assert status.overdue
    assert "past the 600 s limit" in task_line(status.to_dict())


def test_an_idle_broker_and_a_silent_one():
    status = parse_stats(stats(queues={}), time_limit_s=600)  # cjson writes an empty list as {}
    assert (status.queues, status.running, status.oldest_running_s) == ([], 0, None)
    assert parse_stats("", time_limit_s=600) is None


def test_the_worker_freezes_what_it_loaded_before_forking_its_pool():
    import gc

    gc.unfreeze()
    try:
        task_safety.TaskSafety.share_loaded_code(sender=None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
