"""Celery beat for an instance, without Superset. Runs inside the instance's Superset virtualenv
(`celery --app=setpoint_beat:app beat`, with the config directory on PYTHONPATH).

Beat only sends Superset's periodic tasks, by name, to the broker: it needs Celery, the broker's
address and the schedule, none of Superset. Started on Superset's own Celery app it loaded all of
Superset and held about 210 MiB; this holds a fraction of that. The schedule and the broker come
from beat.json beside this file (rendered by Setpoint, no secret in it); the Redis password from
superset-secrets.json. Each send is stamped with its time (setpoint_task_safety.py), so that the
worker runs a scheduled task once per minute it was due even if beat sends it twice.
"""

from __future__ import annotations

import json
import os
from urllib.parse import quote

from celery import Celery, signals
from celery.schedules import crontab

HERE = os.path.dirname(os.path.abspath(__file__))


def _load(name: str) -> dict:
    with open(os.path.join(HERE, name)) as handle:
        return json.load(handle)


def broker_url(broker: dict, secrets: dict) -> str:
    """The broker's URL: the instance's own Redis with its password, or the spec's Redis URL."""
    if "url" in broker:
        return broker["url"]
    return f"redis://:{quote(secrets['redis_password'])}@{broker['host']}:{broker['port']}/{broker['db']}"


def make_app() -> Celery:
    settings = _load("beat.json")
    beat = Celery("setpoint_beat")
    beat.conf.update(
        broker_url=broker_url(settings["broker"], _load("superset-secrets.json")),
        broker_connection_retry_on_startup=True,
        beat_sync_every=1,  # each send is recorded at once (see superset_config.py)
        beat_schedule={name: {"task": entry["task"], "schedule": crontab(**entry["crontab"]),
                              "options": entry.get("options", {})}
                       for name, entry in settings["schedule"].items()},
    )
    return beat


def _stamp_sends() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("setpoint_task_safety", os.path.join(HERE, "setpoint_task_safety.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    signals.before_task_publish.connect(module.TaskSafety.stamp, weak=False)


_stamp_sends()
app = make_app()
