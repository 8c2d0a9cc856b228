"""The secrets of alert receivers: from the environment into the secret store, never echoed."""

import pytest

from setpoint.errors import InputError
from setpoint.observability.monitoring import PAGERDUTY_KEY, SLACK_KEY, receiver_credentials
from setpoint.spec import parse_spec

SLACK_URL = "https://hooks.slack.com/services/T0/B0/XYZ"
PAGED = parse_spec({"name": "demo", "alerts": {"slack": {"channel": "#bi"}, "pagerduty": {}}})


def test_secrets_come_from_the_environment_then_from_the_store(monkeypatch):
    monkeypatch.setenv("SETPOINT_SLACK_WEBHOOK_URL", SLACK_URL)
    monkeypatch.setenv("SETPOINT_PAGERDUTY_ROUTING_KEY", "KEY-1")
    assert receiver_credentials(PAGED, {}) == {SLACK_KEY: SLACK_URL, PAGERDUTY_KEY: "KEY-1"}
    monkeypatch.delenv("SETPOINT_PAGERDUTY_ROUTING_KEY")
    assert receiver_credentials(PAGED, {PAGERDUTY_KEY: "KEY-0"})[PAGERDUTY_KEY] == "KEY-0"
    assert receiver_credentials(parse_spec({"name": "demo"}), {}) == {}


def test_a_missing_secret_names_the_variable_to_set(monkeypatch):
    monkeypatch.setenv("SETPOINT_SLACK_WEBHOOK_URL", SLACK_URL)
    monkeypatch.delenv("SETPOINT_PAGERDUTY_ROUTING_KEY", raising=False)
    with pytest.raises(InputError) as caught:
        receiver_credentials(PAGED, {})
    assert "SETPOINT_PAGERDUTY_ROUTING_KEY" in caught.value.hint


def test_a_webhook_url_that_is_not_https_is_refused_without_echoing_it(monkeypatch):
    monkeypatch.setenv("SETPOINT_SLACK_WEBHOOK_URL", "http://hooks.example.com/SECRET-PART")
    monkeypatch.setenv("SETPOINT_PAGERDUTY_ROUTING_KEY", "KEY-1")
    with pytest.raises(InputError) as caught:
        receiver_credentials(PAGED, {})
    assert "SECRET-PART" not in str(caught.value) + caught.value.hint
