"""Setpoint's guard on every database connection a Superset instance makes. Runs inside Superset.

Rendered verbatim beside superset_config.py, which installs it. An instance's admin is a tenant,
not a host administrator: a database they add must not reach this host (a Unix socket, loopback),
its private networks, another instance's servers, or a driver that reads the server's files or
fetches URLs (sqlite, every shillelagh and duckdb variant: Superset blocks only some of them in
6.1.0). Two hooks enforce it:

- `validate_url` is Superset's DB_SQLA_URI_VALIDATOR, called before every engine is made (test
  connection, create, update, SQL Lab, charts, imported databases when they are used);
- `check_connect` runs on SQLAlchemy's do_connect event, on the final connection arguments, so
  a host hidden in `extra` (engine_params.connect_args) or in the URL's query is judged too. A
  PostgreSQL connection is then pinned to the addresses judged (libpq's `hostaddr`): a public
  name re-pointed at this host after the check (DNS rebinding) is never resolved again.

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


def resolve(host: str) -> list[str]:
    try:
        return sorted({info[4][0] for info in socket.getaddrinfo(host, None)})
    except (OSError, UnicodeError):
        return []


class Guard:
    """The policy of one instance: its allowed dialects and the targets its spec allows by name."""

    def __init__(self, dialects: list[str], allowed: list[dict], resolver=resolve) -> None:
        self.dialects = {d.lower() for d in dialects}
        # Each allowed target: {"host": ..., "port": int | None, "user": str | None}.
        self.allowed = allowed
        self.resolver = resolver

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


    def check_connection(self, dialect: str, cparams: dict) -> None:
        """Judge a connection's final keyword arguments (raise RefusedDatabase), and pin a
        PostgreSQL connection to the addresses judged by setting libpq's `hostaddr` in `cparams`."""
        hosts: list[str | None] = []
        for key in ("host", "hostaddr", "server", "server_hostname", "unix_socket"):
            if key in cparams:
                hosts += _split_hosts(cparams[key])
        port = int(cparams["port"]) if cparams.get("port") else None
        approved = self.judge(dialect, hosts, port, cparams.get("user") or cparams.get("username"),
                              networked=is_networked(dialect))
        if dialect == "postgresql" and "hostaddr" not in cparams and approved and all(approved):
            cparams["hostaddr"] = ",".join(addresses[0] for addresses in approved)


def _split_hosts(value) -> list[str | None]:
    if value is None:
        return [None]
    return [h.strip() or None for h in str(value).split(",")]


def is_networked(dialect: str) -> bool:
    """Whether a dialect's connection names a network host (BigQuery and Snowflake name an
    account or project of their cloud service instead)."""
    return dialect.split("+")[0] not in ("bigquery", "snowflake")


def install(guard: Guard):
    """Hook the guard into SQLAlchemy (every engine's connect) and return DB_SQLA_URI_VALIDATOR."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

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
        guard.check_connection(dialect.name, cparams)

    event.listen(Engine, "do_connect", check_connect)
    return validate_url
