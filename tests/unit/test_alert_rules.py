"""The host's alert rules, evaluated by Prometheus's own rule tester (promtool, from the
`prometheus` package that `setpoint doctor --install` installs)."""

import shutil
from pathlib import Path

from setpoint import proc
from setpoint.render import render_host_rules, render_instance_rules
from setpoint.spec import parse_spec

TESTS = Path(__file__).parent / "prometheus" / "rules_test.yml"


def test_rules_fire_when_they_should_and_not_before(tmp_path):
    """Instance alpha with the default thresholds of the spec, and the host's rules."""
    (tmp_path / "host.yml").write_text(render_host_rules())
    (tmp_path / "alpha.yml").write_text(render_instance_rules(parse_spec({"name": "alpha"})))
    shutil.copy(TESTS, tmp_path / "rules_test.yml")
    promtool = proc.find_binary("promtool")
    checked = proc.run([promtool, "check", "rules", tmp_path / "host.yml", tmp_path / "alpha.yml"], check=False)
    assert checked.ok and "SUCCESS: 11 rules found" in checked.stdout + checked.stderr, checked.stdout + checked.stderr
    tested = proc.run([promtool, "test", "rules", tmp_path / "rules_test.yml"], check=False)
    assert tested.ok, tested.stdout + tested.stderr


def test_thresholds_and_durations_come_from_the_spec():
    rules = render_instance_rules(parse_spec({"name": "beta", "alerts": {
        "instance_down_after_s": 15, "error_ratio": 0.2, "error_for_s": 60, "backup_max_age_h": 2}}))
    assert "for: 15s" in rules and "> 0.2" in rules and "for: 60s" in rules and "> 7200" in rules
    assert 'setpoint_instance="beta"' in rules and 'setpoint_instance="alpha"' not in rules
