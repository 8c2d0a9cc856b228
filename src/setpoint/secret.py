"""The secret store: values generated once, kept in a 0600 file, never printed or logged."""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from setpoint import proc
from setpoint.errors import InputError
from setpoint.home import write_file

# Every secret an instance has, with its length in characters.
SECRET_LENGTHS = {
    "secret_key": 64,  # Superset's SECRET_KEY; checklist point 1 asks for 42 or more
    "async_jwt_secret": 64,  # GLOBAL_ASYNC_QUERIES_JWT_SECRET
    "guest_token_jwt_secret": 64,  # GUEST_TOKEN_JWT_SECRET (Superset's default is published)
    "admin_password": 24,
    "postgres_password": 32,  # the cluster's superuser
    "metadata_db_password": 32,  # the `superset` role that owns the metadata database
    "examples_reader_password": 32,  # the read-only role of the sample data
    "monitor_db_password": 32,  # the host's PostgreSQL exporter's role (pg_monitor: statistics, no data)
    "redis_password": 48,
    "proxy_secret": 32,  # Caddy proves with it that it forwarded a request (superset_side/proxy.py)
    "backup_cipher_pass": 64,  # pgBackRest repository encryption (aes-256-cbc)
    "offsite_cipher_pass": 64,  # the off-site repository's own passphrase
    "recovery_key": 40,  # opens the secrets escrowed with the backups; shown to the operator, never stored with them
}

# What Superset's own processes read (superset-secrets.json, 0640 to the instance's Superset
# account): never the database superuser's, the backups' or the admin's secrets.
SUPERSET_SECRETS = ("secret_key", "async_jwt_secret", "guest_token_jwt_secret", "metadata_db_password", "redis_password",
                    "sso_client_secret", "smtp_password", "proxy_secret")

ALPHABET = string.ascii_letters + string.digits


def given_or_stored(key: str, variable: str, stored: dict[str, str], needed: str) -> str:
    """A secret the spec names by its environment variable: given there now (`up` then moves it
    into the secret store), else the one `stored` under `key` by an earlier converge. Missing
    from both: an error saying what `needed` it and which variable to set."""
    value = os.environ.get(variable) or stored.get(key, "")
    if not value:
        raise InputError(needed, f"set {variable} in the environment and run the command again")
    return value


def generate_secret(length: int) -> str:
    """A random string of letters and digits (safe inside URLs and config files)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


@dataclass
class SecretStore:
    """The secrets of one instance, in a JSON file readable only by the instance's data account."""

    path: Path
    owner: str | None = None

    def load(self) -> dict[str, str]:
        values = json.loads(self.path.read_text()) if self.path.exists() else {}
        proc.redact.add(*values.values())
        return values

    def update(self, values: dict[str, str]) -> bool:
        """Store values given from outside (such as off-site access keys); return whether any changed."""
        current = self.load()
        if all(current.get(k) == v for k, v in values.items()):
            return False
        current.update(values)
        self._write(current)
        return True

    def ensure(self) -> dict[str, str]:
        """Generate any missing secret (existing ones never change) and return them all."""
        values = self.load()
        missing = {key: generate_secret(n) for key, n in SECRET_LENGTHS.items() if key not in values}
        if missing or not self.path.exists():
            values.update(missing)
            self._write(values)
        return values

    def _write(self, values: dict[str, str]) -> None:
        write_file(self.path, json.dumps(values, indent=2, sort_keys=True) + "\n", mode=0o600, owner=self.owner)
        proc.redact.add(*values.values())
