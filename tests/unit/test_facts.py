"""Setpoint's facts as the node exporter serves them to Prometheus."""

import json

from prometheus_client.parser import text_string_to_metric_families

from setpoint.home import Home
from setpoint.observability.facts import write_facts


def test_facts_of_each_instance_in_prometheus_text_format(tmp_path):
    home = Home(tmp_path)
    for name, desired in (("alpha", "up"), ("beta", "down")):
        paths = home.instance(name)
        paths.root.mkdir(parents=True)
        paths.write_state({"desired": desired})
    home.instance("alpha").records_file.write_text(json.dumps({
        "last_backup": {"at": "2026-11-30T10:00:00+00:00", "ok": True, "seconds": 2.5},
        "last_drill": {"at": "2026-11-29T10:00:00+00:00", "ok": False, "error": "restore failed"},
    }))
    path = write_facts(home)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(path.read_text()) for s in family.samples}

    def value(metric, **labels):
        return samples[(metric, tuple(sorted(labels.items())))]

    assert value("setpoint_task_last_run_timestamp_seconds", setpoint_instance="alpha", task="backup") == 1796032800
    assert value("setpoint_task_last_run_success", setpoint_instance="alpha", task="backup") == 1
    assert value("setpoint_task_last_run_duration_seconds", setpoint_instance="alpha", task="backup") == 2.5
    assert value("setpoint_task_last_run_success", setpoint_instance="alpha", task="drill") == 0
    assert value("setpoint_instance_desired_up", setpoint_instance="alpha") == 1
    assert value("setpoint_instance_desired_up", setpoint_instance="beta") == 0
    assert not any(labels == (("setpoint_instance", "alpha"), ("task", "export")) for _, labels in samples)
