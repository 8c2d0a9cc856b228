"""A managed PostgreSQL cluster: create it, know it is ready, run maintenance SQL."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from setpoint import proc
from setpoint.errors import SetpointError
from setpoint.home import own_directory, write_file
from setpoint.readiness import wait_until
from setpoint.render import METADATA_DATABASE, METADATA_ROLE, InstanceContext

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class PostgresCluster:
    """One instance's cluster, reached by Setpoint over its unix socket: commands run as the
    instance's data account `user`, which pg_ident.conf lets in as the superuser `role`."""

    data_dir: Path
    socket_dir: Path
    port: int
    user: str
    role: str

    def is_initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def initialize(self, superuser_password: str) -> None:
        """initdb with scram-sha-256 for TCP and peer for the local data account."""
        own_directory(self.data_dir.parent, self.data_dir, self.user, mode=0o700)
        pwfile = self.socket_dir / ".initdb-password"
        write_file(pwfile, superuser_password + "\n", mode=0o600, owner=self.user)
        try:
            proc.run(
                [
                    "initdb",
                    "-D", self.data_dir,
                    "-U", self.role,
                    "--auth-local=peer",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    "--data-checksums",
                    f"--pwfile={pwfile}",
                ],
                user=self.user,
                cwd=self.socket_dir,
                timeout=180,
                what="initializing the PostgreSQL cluster",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def is_ready(self) -> bool:
        # As the one role pg_hba.conf lets in over the socket: any other is refused with a FATAL
        # line in the server's log on every poll.
        result = proc.run(
            ["pg_isready", "-q", "-h", self.socket_dir, "-p", str(self.port), "-U", self.role, "-d", "postgres"],
            user=self.user, cwd=self.socket_dir, check=False, timeout=10,
        )
        return result.ok

    def wait_ready(self, timeout: float = 60) -> None:
        wait_until(self.is_ready, timeout, SetpointError(
            f"PostgreSQL on port {self.port} did not become ready within {timeout:.0f} s",
            "see: setpoint logs NAME postgres"))

    def is_primary(self) -> bool:
        """Ready and out of recovery (a restored cluster replays WAL read-only first)."""
        if not self.is_ready():
            return False
        result = self.sql_result("SELECT pg_is_in_recovery()", timeout=10, check=False)
        return result.ok and result.stdout.strip() == "f"

    def wait_primary(self, timeout: float = 600) -> None:
        wait_until(self.is_primary, timeout, SetpointError(
            f"PostgreSQL on port {self.port} did not finish recovery within {timeout:.0f} s",
            "see: setpoint logs NAME postgres"), interval=1)

    def sql(self, statements: str, database: str = "postgres", timeout: float = 120) -> str:
        """Run SQL (sent on stdin, so values never show in a process list); return its rows."""
        return self.sql_result(statements, database, timeout).stdout.strip()

    def sql_result(self, statements: str, database: str = "postgres", timeout: float = 120, check: bool = True) -> proc.Result:
        # In the metadata database, as the role that owns it and never as the superuser: that
        # role's password is in the Superset account's hands, and with it a view, a trigger or a
        # function of the same name can stand in the way of any statement there, running with the
        # powers of whoever connected.
        role = METADATA_ROLE if database == METADATA_DATABASE else self.role
        result = proc.run(
            [
                "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                "-h", self.socket_dir, "-p", str(self.port), "-U", role, "-d", database, "-f", "-",
            ],
            input=statements,
            user=self.user,
            cwd=self.socket_dir,
            timeout=timeout,
            what=f"SQL on database {database}",
            check=check,
        )
        return result

    def ensure_role(self, role: str, password: str) -> None:
        """A login role with this password (created, or its password set again)."""
        _check_identifier(role)
        exists = self.sql(f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'")
        verb = "ALTER" if exists else "CREATE"
        self.sql(f"{verb} ROLE {role} WITH LOGIN PASSWORD '{sql_literal(password)}'")

    def ensure_database(self, database: str, owner: str) -> bool:
        """Create a database owned by `owner` unless it exists; return whether it was created."""
        _check_identifier(database)
        if self.sql(f"SELECT 1 FROM pg_database WHERE datname = '{database}'"):
            return False
        self.sql(f"CREATE DATABASE {database} OWNER {owner}")
        return True

    def server_version(self) -> str:
        return self.sql("SHOW server_version")

    def reload_client_auth(self, timeout: float = 30) -> None:
        """Have the server read pg_hba.conf and pg_ident.conf again (no restart, no connection
        dropped), and wait until the metadata database's owner gets in over the socket."""
        self.sql("SELECT pg_reload_conf()")
        wait_until(lambda: self.sql_result("SELECT 1", METADATA_DATABASE, timeout=10, check=False).ok, timeout,
                   SetpointError(f"PostgreSQL on port {self.port} did not take its new client authentication "
                                 f"within {timeout:.0f} s", "see: setpoint logs NAME postgres"), interval=0.5)


def cluster_of(ctx: InstanceContext) -> PostgresCluster:
    """The managed cluster of an instance."""
    return PostgresCluster(ctx.paths.pg_data, ctx.paths.run, ctx.ports.postgres, ctx.data_user, ctx.db_superuser)


def _check_identifier(name: str) -> None:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a safe SQL identifier: {name!r}")


def sql_literal(value: str) -> str:
    return value.replace("'", "''")
