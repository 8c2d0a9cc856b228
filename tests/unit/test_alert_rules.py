"""The host's alert rules, evaluated by Prometheus's own rule tester (promtool, from the
`prometheus` package that `setpoint doctor --install` installs)."""

import shutil
from pathlib import Path

from setpoint import proc
from setpoint.render import render_alert_rules

TESTS = Path(__file__).parent / "prometheus" / "rules_test.yml"


def test_rules_fire_when_they_should_and_not_before(tmp_path):
    (tmp_path / "rules.yml").write_text(render_alert_rules())
    shutil.copy(TESTS, tmp_path / "rules_test.yml")
    promtool = proc.find_binary("promtool")
    checked = proc.run([promtool, "check", "rules", tmp_path / "rules.yml"], check=False)
    assert checked.ok and "SUCCESS: 7 rules found" in checked.stdout + checked.stderr, checked.stdout + checked.stderr
    tested = proc.run([promtool, "test", "rules", tmp_path / "rules_test.yml"], check=False)
    assert tested.ok, tested.stdout + tested.stderr
