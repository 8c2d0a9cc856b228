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


def rebinding_guard():
    """A guard whose every later lookup of rebind.example.com answers this host."""
    answers = iter([["93.184.216.34"]])
    return guard_module.Guard(["postgresql", "mysql", "trino", "mssql"], OWN,
                              resolver=lambda host: next(answers, ["127.0.0.1"]))


def test_c_clients_of_mysql_and_sql_server_connect_to_the_address_judged():
    guard = rebinding_guard()
    mysql = {"host": "rebind.example.com", "port": 3306, "user": "u"}
    guard.check_connection("mysql", mysql, "mysqldb")
    assert mysql["host"] == "93.184.216.34"
    guard = rebinding_guard()
    mssql = {"host": "rebind.example.com:1433", "user": "u"}  # as SQLAlchemy hands it to pymssql
    guard.check_connection("mssql", mssql, "pymssql")
    assert mssql["host"] == "93.184.216.34:1433"
    with pytest.raises(guard_module.RefusedDatabase):  # a port does not hide a loopback host
        GUARD.check_connection("mssql", {"host": "127.0.0.1:20002", "user": "superset"}, "pymssql")
    with pytest.raises(guard_module.RefusedDatabase):
        guard_module.Guard(["mssql"], OWN, resolver).check_connection("mssql", {"host": "evil.example.com:1433"}, "pymssql")


def test_a_driver_resolving_in_python_gets_the_address_judged_not_a_rebound_one():
    """Trino, ClickHouse, Databricks and PyMySQL look the name up themselves, later, in this
    process: the wrapped lookups answer with the judged address, whatever DNS says by then."""
    guard = rebinding_guard()
    guard.check_connection("trino", {"host": "rebind.example.com", "port": 8443, "user": "u"}, "rest")
    lookups, connections = [], []

    def dns(host, port, *args, **kwargs):  # DNS now points the name at this host
        lookups.append(host)
        address = "127.0.0.1" if host == "rebind.example.com" else host
        return [(2, 1, 6, "", (address, port))]

    getaddrinfo, create_connection = guard_module.pin_lookups(guard, dns, lambda address, *a, **k: connections.append(address))
    assert getaddrinfo("REBIND.example.com.", 8443) == [(2, 1, 6, "", ("93.184.216.34", 8443))]
    create_connection(("rebind.example.com", 8443), timeout=3)
    assert connections == [("93.184.216.34", 8443)]
    assert getaddrinfo("other.example.com", 443)[0][4] == ("other.example.com", 443)  # not judged: as before
    assert "rebind.example.com" not in lookups and "REBIND.example.com." not in lookups


def test_the_pinned_lookups_carry_the_standard_library_s_http_client(monkeypatch):
    """A real connection: http.client (what Databricks' thrift client uses) reaches the pinned
    address, not the one the name resolves to now."""
    import http.client
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    guard = guard_module.Guard(["trino"], OWN, resolver=resolver)
    guard.pins["warehouse.example.com"] = ["127.0.0.1"]  # where the judged address listens here
    pinned = guard_module.pin_lookups(guard, socket.getaddrinfo, socket.create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", pinned[0])
    monkeypatch.setattr(socket, "create_connection", pinned[1])
    try:
        connection = http.client.HTTPConnection("warehouse.example.com", server.server_port, timeout=5)
        connection.request("GET", "/")
        assert connection.getresponse().status == 204
    finally:
        server.shutdown()


def test_a_name_is_judged_by_what_it_resolves_to_now_not_by_its_pin(monkeypatch):
    import socket

    pinning = guard_module.Guard(["trino"], OWN)
    pinning.pins["localhost"] = ["93.184.216.34"]
    monkeypatch.setattr(socket, "getaddrinfo", guard_module.pin_lookups(pinning, socket.getaddrinfo, None)[0])
    assert socket.getaddrinfo("localhost", 80)[0][4][0] == "93.184.216.34"
    assert "127.0.0.1" in guard_module.resolve("localhost")  # the guard's own lookup is not pinned
    guard = guard_module.Guard(["trino"], OWN, resolver=lambda host: ["93.184.216.35"])
    guard.pins["warehouse.example.com"] = ["93.184.216.34"]
    guard.check_connection("trino", {"host": "warehouse.example.com", "port": 443}, "rest")
    assert guard.pins["warehouse.example.com"] == ["93.184.216.35"]  # the warehouse moved: so does the pin
