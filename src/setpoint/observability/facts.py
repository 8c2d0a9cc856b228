"""Setpoint's own facts about each instance, as metrics: when its last backup, restore drill and
dashboard export ran, how long they took, whether they succeeded, whether the instance should be
running, and how many of its Superset alerts and reports ended in error in the last hour (Superset
counts them nowhere else: its report task catches its own errors). The scheduler writes them
every minute into monitoring/facts/setpoint.prom, which the node exporter's textfile collector
serves to the host's Prometheus."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from setpoint.backup.service import read_record
from setpoint.home import Home

# Each task, and the entry of the instance's backup record that describes its last run.
TASKS = {"backup": "last_backup", "drill": "last_drill", "export": "last_export"}
# Superset records every run of an alert or report (times in UTC, without a zone).
FAILED_REPORTS_SQL = ("SELECT count(*) FROM report_execution_log WHERE state = 'Error' "
                      "AND end_dttm > (now() AT TIME ZONE 'UTC') - interval '1 hour'")


def facts_registry(home: Home) -> CollectorRegistry:
    registry = CollectorRegistry()
    # "task", not "job": Prometheus gives every scraped series the job of its target.
    labels = ["setpoint_instance", "task"]
    ran = Gauge("setpoint_task_last_run_timestamp_seconds", "When the task last ran (Unix time).", labels, registry=registry)
    succeeded = Gauge("setpoint_task_last_run_success", "1 if the task's last run succeeded, else 0.", labels,
                      registry=registry)
    took = Gauge("setpoint_task_last_run_duration_seconds", "How long the task's last run took.", labels, registry=registry)
    desired = Gauge("setpoint_instance_desired_up", "1 while the instance should run (setpoint up), 0 after down.",
                    ["setpoint_instance"], registry=registry)
    reports_failed = Gauge("setpoint_reports_failed_last_hour", "Superset alerts and reports whose run ended in "
                           "error in the last hour.", ["setpoint_instance"], registry=registry)
    for name in home.instance_names():
        paths = home.instance(name)
        up = paths.read_state().get("desired", "up") == "up"
        desired.labels(name).set(1 if up else 0)
        failed = failed_reports(home, name) if up else None
        if failed is not None:
            reports_failed.labels(name).set(failed)
        record = read_record(paths)
        for task, key in TASKS.items():
            entry = record.get(key)
            if not entry:
                continue
            ran.labels(name, task).set(datetime.fromisoformat(entry["at"]).timestamp())
            succeeded.labels(name, task).set(1 if entry.get("ok", True) else 0)
            if "seconds" in entry:
                took.labels(name, task).set(entry["seconds"])
    return registry


def failed_reports(home: Home, name: str) -> int | None:
    """How many of the instance's alerts and reports failed in the last hour; None when its
    metadata database cannot say (not managed here, or not answering)."""
    from setpoint.runtime.local.instance import load_context
    from setpoint.services.postgres import cluster_of

    try:
        ctx = load_context(home, name)
        if not ctx.managed_postgres:
            return None
        result = cluster_of(ctx).sql_result(FAILED_REPORTS_SQL, database="superset", timeout=10, check=False)
    except Exception:  # noqa: BLE001 - a fact the next minute tells
        return None
    return int(result.stdout.strip()) if result.ok and result.stdout.strip().isdigit() else None


def write_facts(home: Home) -> Path:
    """Write the facts of every instance of `home` where the node exporter reads them."""
    path = home.monitoring_dir / "facts" / "setpoint.prom"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), facts_registry(home))  # a temporary file, then a rename
    return path
