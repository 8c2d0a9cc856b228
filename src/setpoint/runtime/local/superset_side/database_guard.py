"""Setpoint's guard on every database connection a Superset instance makes. Runs inside Superset.

Rendered verbatim beside superset_config.py, which installs it. An instance's admin is a tenant,
not a host administrator: a database they add must not reach this host (a Unix socket, loopback),
its private networks, another instance's servers, or a driver that reads the server's files or
fetches URLs (sqlite, every shillelagh and duckdb variant: Superset blocks only some of them in
6.1.0). Two hooks enforce it:

- `validate_url` is Superset's DB_SQLA_URI_VALIDATOR, called before every engine is made (test
  connection, create, update, SQL Lab, charts, imported databases when they are used);
- `check_connect` runs on SQLAlchemy's do_connect event, on the final connection arguments, so
  a host hidden in `extra` (engine_params.connect_args) or in the URL's query is judged too. The
  connection is then pinned to the addresses judged, so that a public name re-pointed at this
  host after the check (DNS rebinding) is never resolved again: libpq gets `hostaddr`, the C
  clients of MySQL and SQL Server get the address itself, and every driver that resolves in
  Python (Trino, ClickHouse and Databricks over HTTP, PyMySQL) gets the judged addresses from
  the process's `socket.getaddrinfo` and `socket.create_connection`, which `install` wraps.
  TLS still checks the name: only the lookup is pinned.

Every refusal raises the same sentence: the answers do not tell an open port from a closed one.
Stdlib only at import; SQLAlchemy is imported by `install`.
"""

from __future__ import annotations

import ipaddress
import os
import socket

REFUSED = (
    "Setpoint refuses this database: an instance may connect only with the drivers its spec names, "
    "to hosts outside this machine and its private networks, or to hosts its spec allows by name "
    "(databases.allowed_hosts)"
)

# Dialect families that read the server's files, fetch URLs, or open Superset's own metadata.
BLOCKED_DIALECTS = ("sqlite", "shillelagh", "duckdb", "superset", "gsheets")


class RefusedDatabase(ValueError):
    """A database connection the guard does not allow (always with the same message)."""

    def __init__(self) -> None:
        super().__init__(REFUSED)


def is_public(address: str) -> bool:
    """Whether an IP address is neither loopback, private, link-local, reserved nor unspecified."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


# The lookup as it was before `install` pinned it: a name is judged by what it resolves to now.
_getaddrinfo = socket.getaddrinfo


def resolve(host: str) -> list[str]:
    try:
        return sorted({info[4][0] for info in _getaddrinfo(host, None)})
    except (OSError, UnicodeError):
        return []


class Guard:
    """The policy of one instance: its allowed dialects and the targets its spec allows by name."""

    def __init__(self, dialects: list[str], allowed: list[dict], resolver=resolve) -> None:
        self.dialects = {d.lower() for d in dialects}
        # Each allowed target: {"host": ..., "port": int | None, "user": str | None}.
        self.allowed = allowed
        self.resolver = resolver
        # The public addresses each name was last judged by: what this process connects to.
        self.pins: dict[str, list[str]] = {}

    def pinned(self, host) -> list[str] | None:
        if isinstance(host, bytes):
            host = host.decode(errors="replace")
        return self.pins.get(host.lower().rstrip(".")) if isinstance(host, str) else None

    def is_allowed_dialect(self, drivername: str) -> bool:
        dialect = drivername.lower().split("+")[0]
        if any(dialect.startswith(blocked) for blocked in BLOCKED_DIALECTS):
            return False
        return dialect in self.dialects

    def approved_addresses(self, host: str | None, port: int | None, user: str | None) -> list[str] | None:
        """None if a connection to `host`:`port` as `user` is refused; else the public addresses
        it was judged by (empty for a target the spec allows by name)."""
        if not host or host.startswith(("/", "@")):
            return None  # no host means libpq's or MySQL's default Unix socket
        for entry in self.allowed:
            if entry["host"].lower() == host.lower() and entry.get("port") in (None, port) \
                    and entry.get("user") in (None, user):
                return []
        addresses = self.resolver(host)
        return addresses if addresses and all(is_public(a) for a in addresses) else None

    def judge(self, drivername: str, hosts: list[str | None], port: int | None, user: str | None,
              networked: bool = True) -> list[list[str]]:
        """Raise RefusedDatabase unless the dialect and every host are allowed; return each host's
        approved addresses (see approved_addresses)."""
        if not self.is_allowed_dialect(drivername):
            raise RefusedDatabase()
        if not networked:
            return []
        approved = [self.approved_addresses(host, port, user) for host in hosts or [None]]
        if any(addresses is None for addresses in approved):
            raise RefusedDatabase()
        return approved


    def check_connection(self, dialect: str, cparams: dict, driver: str = "") -> None:
        """Judge a connection's final keyword arguments (raise RefusedDatabase), and pin it to the
        addresses judged (see the module's docstring); `driver` is SQLAlchemy's (psycopg2, mysqldb)."""
        hosts: list[str | None] = []
        for key in HOST_KEYS:
            if key in cparams:
                hosts += _split_hosts(cparams[key])
        port = int(cparams["port"]) if cparams.get("port") else None
        if dialect == "mssql":  # SQLAlchemy hands pymssql "host:port"
            hosts, ports = zip(*(_host_port(h) for h in hosts)) if hosts else ((), ())
            hosts, port = list(hosts), port or next((p for p in ports if p), None)
        approved = self.judge(dialect, hosts, port, cparams.get("user") or cparams.get("username"),
                              networked=is_networked(dialect))
        for host, addresses in zip(hosts, approved):
            if host and addresses:
                self.pins[host.lower().rstrip(".")] = addresses
        if not approved or not all(approved):
            return  # a target allowed by name is trusted as it resolves
        if dialect == "postgresql" and "hostaddr" not in cparams:
            cparams["hostaddr"] = ",".join(addresses[0] for addresses in approved)
        elif len(approved) == 1 and (dialect, driver) in (("mysql", "mysqldb"), ("mssql", "pymssql")):
            key = next(key for key in HOST_KEYS if cparams.get(key))
            cparams[key] = approved[0][0] + (f":{port}" if dialect == "mssql" and port else "")


HOST_KEYS = ("host", "hostaddr", "server", "server_hostname", "unix_socket")


def _host_port(host: str | None) -> tuple[str | None, int | None]:
    name, _, port = (host or "").rpartition(":")
    return (name, int(port)) if name and port.isdigit() else (host, None)


def _split_hosts(value) -> list[str | None]:
    if value is None:
        return [None]
    return [h.strip() or None for h in str(value).split(",")]


def is_networked(dialect: str) -> bool:
    """Whether a dialect's connection names a network host (BigQuery and Snowflake name an
    account or project of their cloud service instead)."""
    return dialect.split("+")[0] not in ("bigquery", "snowflake")


def pin_lookups(guard: Guard, getaddrinfo, create_connection):
    """`socket.getaddrinfo` and `socket.create_connection` that answer a name the guard judged
    with the addresses it judged, and resolve any other name as before. Both are wrapped: under
    gevent, `socket.create_connection` resolves through gevent's own lookup."""

    def pinned_getaddrinfo(host, port, *args, **kwargs):
        addresses = guard.pinned(host)
        if not addresses:
            return getaddrinfo(host, port, *args, **kwargs)
        return [info for address in addresses for info in getaddrinfo(address, port, *args, **kwargs)]

    def pinned_create_connection(address, *args, **kwargs):
        addresses = guard.pinned(address[0])
        if not addresses:
            return create_connection(address, *args, **kwargs)
        for number, pinned in enumerate(addresses, 1):
            try:
                return create_connection((pinned, *address[1:]), *args, **kwargs)
            except OSError:
                if number == len(addresses):
                    raise

    return pinned_getaddrinfo, pinned_create_connection


def install(guard: Guard):
    """Hook the guard into SQLAlchemy (every engine's connect) and this process's name lookups,
    and return DB_SQLA_URI_VALIDATOR."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    socket.getaddrinfo, socket.create_connection = pin_lookups(
        guard, socket.getaddrinfo, socket.create_connection)

    def validate_url(url) -> None:
        query = dict(url.query)
        hosts = _split_hosts(query.get("host", url.host))
        if "hostaddr" in query:
            hosts += _split_hosts(query["hostaddr"])
        port = query.get("port", url.port)
        guard.judge(url.drivername, hosts, int(port) if port else None, url.username,
                    networked=is_networked(url.drivername))

    def check_connect(dialect, conn_rec, cargs, cparams) -> None:
        if os.environ.get("SETPOINT_TRUSTED_CONNECTION") == "1":
            return  # Setpoint's own one-off commands (a drill opening a restored copy)
        if cargs and isinstance(cargs[0], str) and "host=" in cargs[0]:
            raise RefusedDatabase()  # a libpq connection string passed positionally
        guard.check_connection(dialect.name, cparams, dialect.driver)

    event.listen(Engine, "do_connect", check_connect)
    return validate_url
