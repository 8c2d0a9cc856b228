"""Setpoint's own facts about each instance, as metrics: when its last backup, restore drill and
dashboard export ran, how long they took, whether they succeeded, and whether the instance
should be running. The scheduler writes them every minute into monitoring/facts/setpoint.prom,
which the node exporter's textfile collector serves to the host's Prometheus."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from setpoint.backup.service import read_record
from setpoint.home import Home

# Each task, and the entry of the instance's backup record that describes its last run.
TASKS = {"backup": "last_backup", "drill": "last_drill", "export": "last_export"}


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
    for name in home.instance_names():
        paths = home.instance(name)
        desired.labels(name).set(1 if paths.read_state().get("desired", "up") == "up" else 0)
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


def write_facts(home: Home) -> Path:
    """Write the facts of every instance of `home` where the node exporter reads them."""
    path = home.monitoring_dir / "facts" / "setpoint.prom"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), facts_registry(home))  # a temporary file, then a rename
    return path
