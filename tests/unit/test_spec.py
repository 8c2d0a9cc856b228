"""The spec: production defaults, strict validation with every problem named by its path."""

import pytest

from setpoint.errors import InputError
from setpoint.spec import load_spec, parse_spec


def test_defaults_are_production_ready():
    spec = parse_spec({"name": "demo"})
    assert spec.superset_version == "6.1.0"
    assert spec.url == "https://demo.localhost/"
    assert spec.is_local_hostname
    assert spec.metadata_db.url is None and spec.cache.url is None  # managed PostgreSQL and Redis
    assert spec.web_timeout_s >= 300
    assert spec.admin.username == "admin"


def test_non_default_port_appears_in_url():
    assert parse_spec({"name": "a", "https_port": 8443, "http_port": 8080}).url == "https://a.localhost:8443/"


def test_public_hostname_uses_acme():
    spec = parse_spec({"name": "bi", "hostname": "bi.example.com"})
    assert not spec.is_local_hostname
    assert spec.url == "https://bi.example.com/"


def test_every_problem_is_reported_with_its_path():
    with pytest.raises(InputError) as caught:
        parse_spec(
            {
                "name": "demo",
                "superset_version": "4.0.0",
                "cache": {"maxmemory_mb": 8},
                "colour": "red",
                "hostname": "not a host",
                "https_port": 70000,
            }
        )
    message = caught.value.message
    assert "superset_version: Superset 4.0.0 is not supported; supported: 4.1.4, 5.0.0, 6.0.0, 6.1.0" in message
    assert "cache.maxmemory_mb: Input should be greater than or equal to 64 (got 8)" in message
    assert "colour: unknown field" in message
    assert "hostname: must be a DNS hostname" in message
    assert "https_port:" in message
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"name": "Demo"}, "name:"),
        ({"name": "demo", "web_timeout_s": 60}, "web_timeout_s:"),
        ({"name": "demo", "feature_flags": {"GLOBAL_ASYNC_QUERIES": False}}, "cannot be turned off"),
        ({"name": "demo", "feature_flags": {"lower": True}}, "UPPER_CASE"),
        ({"name": "demo", "drivers": ["oracle9"]}, "drivers.0:"),
        ({"name": "demo", "metadata_db": {"url": "mysql://x"}}, "metadata_db.url: must be a postgresql:// URL"),
        ({"name": "demo", "https_port": 8443, "http_port": 8443}, "must differ"),
        ({"name": "demo", "tasks": {"sql_lab_timeout_s": 300}}, "must be below web_timeout_s"),
        ({"name": "demo", "tasks": {"query_time_limit_s": 1}}, "tasks.query_time_limit_s:"),
        ({"name": "demo", "sessions": {"idle_timeout_min": 600, "lifetime_h": 8}}, "must not exceed sessions.lifetime_h"),
    ],
)
def test_invalid_values_are_refused(data, fragment):
    with pytest.raises(InputError) as caught:
        parse_spec(data)
    assert fragment in caught.value.message


def test_spec_file_is_overlaid_on_defaults(tmp_path):
    path = tmp_path / "acme.yaml"
    path.write_text("concurrent_users: 200\ncache:\n  maxmemory_mb: 512\n")
    spec = load_spec("acme", path)
    assert spec.concurrent_users == 200 and spec.cache.maxmemory_mb == 512
    assert spec.cache.eviction_policy.value == "volatile-lru"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("name: other\n", "name is 'other'"),
        ("- a list\n", "must hold a YAML mapping"),
        ("key: [unclosed\n", "is not valid YAML"),
    ],
)
def test_bad_spec_files_are_explained(tmp_path, text, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        load_spec("acme", path)
    assert fragment in caught.value.message


def test_missing_spec_file_is_explained(tmp_path):
    with pytest.raises(InputError) as caught:
        load_spec("acme", tmp_path / "nope.yaml")
    assert "cannot read spec file" in caught.value.message


@pytest.mark.parametrize("points", [["probe one:9115"], ["probe.example.net"], ["a:9115", "a:9115"]])
def test_probe_points_are_host_and_port_named_once(points):
    with pytest.raises(InputError, match="probe point"):
        parse_spec({"name": "demo", "probes": {"points": points}})
