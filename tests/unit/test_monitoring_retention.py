"""The host's one Prometheus keeps its data as long as the longest any instance's spec asks, and
is served through Caddy on every HTTPS port an instance uses."""

import pytest
import yaml

from setpoint.errors import InputError
from setpoint.home import Home
from setpoint.observability.monitoring import console_ports, console_url, host_retention_days, host_specs
from setpoint.spec import parse_spec


def saved(home: Home, name: str, days: int | None) -> None:
    paths = home.instance(name)
    paths.root.mkdir(parents=True)
    paths.write_state({})
    spec = parse_spec({"name": name, **({"metrics": {"retention_days": days}} if days else {})})
    paths.spec_file.write_text(yaml.safe_dump(spec.model_dump(mode="json")))


def test_the_longest_retention_any_instance_asks_wins(tmp_path):
    home = Home(tmp_path)
    assert host_retention_days(host_specs(home)) == 30  # no instance: the default
    saved(home, "a", 90)
    saved(home, "b", None)
    assert host_retention_days(host_specs(home)) == 90
    # The spec an up is applying counts as it will be saved: b asks more, then a asks less.
    assert host_retention_days(host_specs(home, parse_spec({"name": "b", "metrics": {"retention_days": 400}}))) == 400
    assert host_retention_days(host_specs(home, parse_spec({"name": "a", "metrics": {"retention_days": 7}}))) == 30


def test_the_consoles_are_served_on_every_https_port_and_linked_from_443_first():
    assert console_url([]) is None
    specs = [parse_spec({"name": "a", "https_port": 8443}), parse_spec({"name": "b", "https_port": 9443})]
    assert console_ports(specs) == [8443, 9443] and console_url(specs) == "https://localhost:8443"
    specs.append(parse_spec({"name": "c"}))
    assert console_ports(specs) == [443, 8443, 9443] and console_url(specs) == "https://localhost"


def test_a_retention_out_of_bounds_is_refused():
    with pytest.raises(InputError, match="retention_days"):
        parse_spec({"name": "a", "metrics": {"retention_days": 0}})
