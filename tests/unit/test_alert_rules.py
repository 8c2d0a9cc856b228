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
    assert checked.ok and "SUCCESS: 16 rules found" in checked.stdout + checked.stderr, checked.stdout + checked.stderr
    tested = proc.run([promtool, "test", "rules", tmp_path / "rules_test.yml"], check=False)
    assert tested.ok, tested.stdout + tested.stderr


def test_thresholds_and_durations_come_from_the_spec():
    rules = render_instance_rules(parse_spec({"name": "beta", "alerts": {
        "instance_down_after_s": 15, "error_ratio": 0.2, "error_for_s": 60, "backup_max_age_h": 2}}))
    assert "for: 15s" in rules and "> 0.2" in rules and "for: 60s" in rules and "> 7200" in rules
    assert 'setpoint_instance="beta"' in rules and 'setpoint_instance="alpha"' not in rules


def test_certificates_from_a_public_ca_are_watched_and_caddys_local_ones_not(tmp_path):
    """A public name's certificate alerts 14 days before it expires; a local name's (Caddy's own
    CA, renewed every few hours) never."""
    public = render_instance_rules(parse_spec({"name": "bi", "hostname": "bi.example.com", "https_port": 443}))
    assert "CertificateExpiring" in public and "CertificateExpiring" not in render_instance_rules(parse_spec({"name": "alpha"}))
    (tmp_path / "bi.yml").write_text(public)
    (tmp_path / "test.yml").write_text("""rule_files: [bi.yml]
evaluation_interval: 1h
tests:
  - interval: 1h
    input_series:
      # Expires 20 days after the start: 14 days before, from hour 144 on.
      - series: 'probe_ssl_earliest_cert_expiry{setpoint_instance="bi",probe_point="local",check="health"}'
        values: '1728000+0x200'
    alert_rule_test:
      - eval_time: 140h
        alertname: CertificateExpiring
        exp_alerts: []
      - eval_time: 150h
        alertname: CertificateExpiring
        exp_alerts:
          - exp_labels: {severity: ticket, setpoint_instance: bi}
            exp_annotations: {summary: "bi's TLS certificate expires within 14 days and Caddy has not renewed it: see the host's Caddy log (SETPOINT_HOME/supervisor/caddy.log)"}
""")
    tested = proc.run([proc.find_binary("promtool"), "test", "rules", tmp_path / "test.yml"], check=False)
    assert tested.ok, tested.stdout + tested.stderr


def test_a_failing_chart_check_pages_without_calling_the_instance_unreachable(tmp_path):
    """The public URL answers (health, login) while the probed chart's data fails: the chart's
    alert fires after the spec's duration, the unreachable one does not; with no chart to probe
    (no sample data, no probes.chart) there is no chart rule."""
    assert "ChartCheckFailing" not in render_instance_rules(parse_spec({"name": "bare", "examples": False}))
    (tmp_path / "beta.yml").write_text(render_instance_rules(parse_spec({"name": "beta", "probes": {"chart": "Sales"}})))
    (tmp_path / "test.yml").write_text("""rule_files: [beta.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'probe_success{setpoint_instance="beta",probe_point="local",check="health"}'
        values: '1+0x8'
      - series: 'probe_success{setpoint_instance="beta",probe_point="local",check="login"}'
        values: '1+0x8'
      - series: 'probe_success{setpoint_instance="beta",probe_point="local",check="chart"}'
        values: '1 1 0 0 0 0 0 0'
      - series: 'probe_success{setpoint_instance="beta",probe_point="10.0.0.9:9115",check="chart"}'
        values: '1+0x8'
    alert_rule_test:
      - eval_time: 3m
        alertname: ChartCheckFailing
        exp_alerts: []
      - eval_time: 5m
        alertname: ChartCheckFailing
        exp_alerts:
          - exp_labels: {severity: page, setpoint_instance: beta}
            exp_annotations: {summary: "beta's probed chart loads no data (its database or query fails): setpoint logs beta web --grep setpoint_probe"}
      - eval_time: 7m
        alertname: InstanceUnreachable
        exp_alerts: []
""")
    tested = proc.run([proc.find_binary("promtool"), "test", "rules", tmp_path / "test.yml"], check=False)
    assert tested.ok, tested.stdout + tested.stderr
