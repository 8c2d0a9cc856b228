"""The database guard's policy, table-tested: what an instance admin's connection may reach."""

import importlib.util
from pathlib import Path

import pytest

from setpoint.render import database_guard_policy
from tests.unit.test_render import context

SOURCE = Path(__file__).resolve().parents[2] / "src/setpoint/runtime/local/superset_side/database_guard.py"
_spec = importlib.util.spec_from_file_location("database_guard", SOURCE)
guard_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(guard_module)

NAMES = {
    "warehouse.example.com": ["93.184.216.34"],
    "localhost": ["127.0.0.1", "::1"],
    "evil.example.com": ["127.0.0.1"],  # a public name pointing back at this host
    "split.example.com": ["93.184.216.34", "10.1.2.3"],
    "warehouse.internal": ["10.20.0.5"],
    "metadata.google.internal": ["169.254.169.254"],
}


def resolver(host):
    if host in NAMES:
        return NAMES[host]
    try:
        guard_module.ipaddress.ip_address(host.split("%")[0])
        return [host]
    except ValueError:
        return []  # does not resolve


OWN = [{"host": "127.0.0.1", "port": 20002, "user": "superset"},
       {"host": "127.0.0.1", "port": 20002, "user": "examples_reader"},
       {"host": "warehouse.internal", "port": 5432, "user": None}]
GUARD = guard_module.Guard(["postgresql", "mysql", "bigquery"], OWN, resolver=resolver)


@pytest.mark.parametrize("driver, hosts, port, user", [
    ("postgresql+psycopg2", ["warehouse.example.com"], 5432, "analyst"),
    ("postgresql", ["93.184.216.34"], None, None),
    ("mysql+mysqldb", ["warehouse.example.com"], 3306, "bi"),
    ("postgresql+psycopg2", ["127.0.0.1"], 20002, "superset"),  # the instance's own metadata role
    ("postgresql+psycopg2", ["127.0.0.1"], 20002, "examples_reader"),
    ("postgresql", ["warehouse.internal"], 5432, "anyone"),  # allowed by name in the spec
    ("bigquery", [None], None, None),  # names a project, not a host
])
def test_allowed(driver, hosts, port, user):
    GUARD.judge(driver, hosts, port, user, networked=guard_module.is_networked(driver))


@pytest.mark.parametrize("driver, hosts, port, user", [
    ("postgresql", ["/var/lib/setpoint/instances/bars/run"], 20004, "setpoint"),  # another tenant's socket
    ("postgresql", [None], None, "setpoint"),  # no host: libpq's default socket
    ("postgresql", ["@abstract"], None, None),
    ("postgresql", ["127.0.0.1"], 20002, "setpoint"),  # own cluster, but not as its superuser
    ("postgresql", ["127.0.0.1"], 20004, "superset"),  # another instance's port
    ("postgresql", ["localhost"], 20002, "superset"),
    ("postgresql", ["::1"], 5432, None),
    ("postgresql", ["::ffff:127.0.0.1"], 5432, None),
    ("postgresql", ["10.0.0.5"], 5432, None),
    ("postgresql", ["192.168.1.10"], 5432, None),
    ("postgresql", ["169.254.169.254"], 80, None),
    ("postgresql", ["metadata.google.internal"], 80, None),
    ("postgresql", ["evil.example.com"], 5432, None),
    ("postgresql", ["split.example.com"], 5432, None),
    ("postgresql", ["warehouse.example.com", "10.1.2.3"], 5432, None),
    ("postgresql", ["does-not-resolve.example"], 5432, None),
    ("postgresql", ["warehouse.internal"], 6432, None),  # allowed only on its named port
    ("mssql+pymssql", ["warehouse.example.com"], 1433, None),  # not a driver of the spec
    ("shillelagh+sqlglot", ["warehouse.example.com"], None, None),
    ("shillelagh+csv", [None], None, None),
    ("shillelagh", [None], None, None),
    ("duckdb", [None], None, None),
    ("duckdb+duckdb_engine", [None], None, None),
    ("sqlite", [None], None, None),
    ("superset", [None], None, None),
])
def test_refused_with_one_sentence(driver, hosts, port, user):
    with pytest.raises(guard_module.RefusedDatabase) as caught:
        GUARD.judge(driver, hosts, port, user, networked=guard_module.is_networked(driver))
    assert str(caught.value) == guard_module.REFUSED


def test_policy_of_an_instance_allows_its_own_roles_and_the_spec_hosts():
    dialects, allowed = database_guard_policy(context(drivers=["clickhouse"], databases={"allowed_hosts": ["dwh.corp:9000"]}))
    assert dialects == ["clickhouse", "clickhousedb", "postgresql"]
    assert {"host": "127.0.0.1", "port": 20002, "user": "superset"} in allowed
    assert {"host": "dwh.corp", "port": 9000, "user": None} in allowed
    assert not any(entry["user"] == "setpoint" for entry in allowed)


def test_external_metadata_database_is_allowed_as_its_own_role_only():
    _, allowed = database_guard_policy(context(metadata_db={"url": "postgresql://meta:pw@10.0.0.7:6432/superset"}))
    assert allowed == [{"host": "10.0.0.7", "port": 6432, "user": "meta"}]


def test_duckdb_is_refused_in_the_spec():
    from setpoint.errors import InputError
    from setpoint.spec import parse_spec

    with pytest.raises(InputError, match="duckdb reads and writes this host's files"):
        parse_spec({"name": "x", "drivers": ["duckdb"]})


def test_a_postgresql_connection_is_pinned_to_the_address_judged():
    """DNS rebinding: the name resolves to a public address when judged, then to this host."""
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])
    guard = guard_module.Guard(["postgresql", "mysql"], OWN, resolver=lambda host: next(answers))
    params = {"host": "rebind.example.com", "port": 5432, "user": "u"}
    guard.check_connection("postgresql", params)
    assert params["hostaddr"] == "93.184.216.34"  # libpq connects there and resolves nothing
    with pytest.raises(guard_module.RefusedDatabase):  # judged again, the name now points home
        guard.check_connection("postgresql", {"host": "rebind.example.com", "port": 5432})


def test_pinning_leaves_targets_allowed_by_name_and_given_addresses_alone():
    own = {"host": "127.0.0.1", "port": 20002, "user": "superset"}
    GUARD.check_connection("postgresql", own)
    assert "hostaddr" not in own
    given = {"host": "warehouse.example.com", "hostaddr": "93.184.216.34", "port": 5432}
    GUARD.check_connection("postgresql", given)
    assert given["hostaddr"] == "93.184.216.34"
    with pytest.raises(guard_module.RefusedDatabase):
        GUARD.check_connection("postgresql", {"host": "warehouse.example.com", "hostaddr": "127.0.0.1"})
    other = {"host": "warehouse.example.com", "port": 3306, "user": "u"}
    GUARD.check_connection("mysql", other)
    assert "hostaddr" not in other  # no such parameter outside libpq
