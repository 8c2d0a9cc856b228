"""SECRET_KEY rotation (`setpoint rotate-secret NAME`): a new key for an instance whose key may
have leaked, or on a schedule.

Superset's SECRET_KEY signs sessions and API tokens and encrypts what the metadata keeps secret
(databases' passwords and extras, SSH tunnels' keys). `rotate` generates a new key, re-encrypts
those with `superset re-encrypt-secrets` (the old key given in the environment as
PREVIOUS_SECRET_KEY), restarts Superset's processes on the new key, ends every session (they live
in Redis, so a cookie from before is refused) and takes a full backup, which escrows the new key:
a disaster-recovery rebuild from then on gets the key its metadata was encrypted with. Every
retired key stays in the secret store (0600) as `retired_secret_key_N` (N: the rotation that
retired it; the last one also as `previous_secret_key`): `key_at` gives a restore to a point in
time the key of that time, however many rotations ago. Everyone logs in again; Superset restarts in
about half a minute.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from setpoint.backup.service import now, read_record, take_backup, update_record
from setpoint.home import Home
from setpoint.observability.logstore import record_audit
from setpoint.render import REDIS_DB, render_instance
from setpoint.runtime.local import lifecycle
from setpoint.runtime.local.accounts import write_config
from setpoint.runtime.local.instance import instance_lock, load_context
from setpoint.secret import SECRET_LENGTHS, SecretStore, generate_secret
from setpoint.services.superset import SupersetCommands

RECORD = "last_secret_rotation"
HISTORY = "secret_rotations"  # every rotation's time, oldest first
SESSION_KEYS = "session:*"  # SESSION_KEY_PREFIX in superset_config.py


@dataclass(frozen=True)
class Rotation:
    rotated_at: str
    values_re_encrypted: int
    sessions_ended: int
    backup: str


def _use_key(ctx, store: SecretStore, keys: dict[str, str]) -> None:
    """Store `keys` and write the file Superset's processes read their secrets from."""
    store.update(keys)
    shared = next(f for f in render_instance(ctx, store.load()) if f.path == ctx.paths.superset_secrets_file)
    write_config(ctx, shared)


def rotate(home: Home, name: str, step=lambda message: None) -> Rotation:
    """Give instance `name` a new SECRET_KEY; see the module's docstring."""
    with instance_lock(home, name, wait_s=300):
        ctx = load_context(home, name)
        store = SecretStore(ctx.paths.secrets_file, owner=ctx.data_user)
        kept = store.load()
        previous, number = kept["secret_key"], len(rotations_of(ctx)) + 1
        retired = retired_key_name(number)
        # A key retired before the history was kept is only `previous_secret_key`: it keeps its number.
        earlier = {retired_key_name(number - 1): kept["previous_secret_key"]} \
            if number > 1 and kept.get("previous_secret_key") and retired_key_name(number - 1) not in kept else {}
        step("re-encrypting the metadata's secrets with the new key")
        _use_key(ctx, store, {**earlier, "secret_key": generate_secret(SECRET_LENGTHS["secret_key"]),
                              "previous_secret_key": previous, retired: previous})
        try:
            values = SupersetCommands(ctx).re_encrypt_secrets(previous)
        except BaseException:
            # Nothing was re-encrypted (one transaction): the instance keeps its key.
            _use_key(ctx, store, {"secret_key": previous, "previous_secret_key": kept.get("previous_secret_key", ""),
                                  retired: ""})
            raise
        # From the re-encryption's commit on, the metadata holds the new key's ciphertexts.
        at = now().isoformat(timespec="seconds")
        update_record(ctx.paths, **{RECORD: at, HISTORY: [*(r.isoformat() for r in rotations_of(ctx)), at]})
        step("restarting Superset on the new key")
        lifecycle.restart(home, name)
        ended = lifecycle.instance_redis(ctx).delete(REDIS_DB["sessions"], SESSION_KEYS)
        step("taking a full backup, which escrows the new key")
        backup = take_backup(ctx, "full")
        record_audit(ctx, "secret_key_rotated", values_re_encrypted=values, sessions_ended=ended, backup=backup.label)
        return Rotation(at, values, ended, backup.label)


def retired_key_name(rotation: int) -> str:
    """Where the secret store keeps the key that rotation number `rotation` (from 1) retired."""
    return f"retired_secret_key_{rotation}"


def rotations_of(ctx) -> list[datetime]:
    """The times of the instance's rotations, oldest first (an instance rotated before the
    history was kept has its last one only)."""
    record = read_record(ctx.paths)
    times = record.get(HISTORY) or ([record[RECORD]] if record.get(RECORD) else [])
    return [datetime.fromisoformat(t) for t in times]


def key_at(ctx, moment: datetime | None) -> str | None:
    """The SECRET_KEY the metadata was encrypted with at `moment`, when it is not the current one:
    the key retired by the first rotation after `moment` (None: the current key fits)."""
    rotations = rotations_of(ctx)
    if moment is None or not rotations or moment >= rotations[-1]:
        return None
    number = next(i for i, at in enumerate(rotations, start=1) if at > moment)
    stored = SecretStore(ctx.paths.secrets_file).load()
    last = number == len(rotations)
    return stored.get(retired_key_name(number)) or (stored.get("previous_secret_key") if last else None) or None
