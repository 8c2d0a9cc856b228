"""Point-in-time recovery of a managed instance into a new instance beside it."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone

import yaml

from setpoint.backup.pgbackrest import PgBackRest
from setpoint.backup.recovery import recovered
from setpoint.backup.service import backup_report, take_backup
from setpoint.errors import InputError, SetpointError
from setpoint.home import Home, own_directory, write_file
from setpoint.operations import rotation
from setpoint.runtime.local import converge
from setpoint.render import REDIS_DBS_OF_THE_PRESENT, instance_programs
from setpoint.runtime.local.instance import instance_lock, load_context
from setpoint.runtime.local.platform import load_platform
from setpoint.secret import SecretStore
from setpoint.services.redis import RedisServer
from setpoint.services.superset import SupersetCommands


def parse_moment(text: str) -> datetime | None:
    """ISO 8601 (a time without offset is UTC) or `latest` (None)."""
    if text == "latest":
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"--to {text!r} is not an ISO 8601 time", "example: --to 2026-11-21T18:30:00Z, or --to latest") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def check_reachable(ctx, moment: datetime | None, step) -> None:
    """Push the current WAL to the repository, then refuse a time outside the recovery window."""
    step(f"pushing the current WAL of {ctx.spec.name} to the repository")
    PgBackRest(ctx).check()
    window = backup_report(ctx).window
    if moment is not None and not window.contains(moment):
        raise InputError(
            f"{moment.isoformat()} is outside the recovery window of {ctx.spec.name} "
            f"({window.earliest.isoformat() if window.earliest else 'no backup'} to "
            f"{window.latest.isoformat() if window.latest else 'none'})",
            f"choose a time inside it (see: setpoint backups {ctx.spec.name})",
        )


def pgbackrest_time(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f+00") if moment else None


def restore_in_place(home: Home, name: str, to: str, log=lambda m: None, step=lambda m: None):
    """Rewind an instance to `to`, after a safety backup of its present state."""
    ctx = load_context(home, name)
    moment = parse_moment(to)
    with instance_lock(home, name, 300):
        check_reachable(ctx, moment, step)
        step("taking a safety backup of the present state")
        safety = take_backup(ctx, "full")
        log(f"took the safety backup {safety.label}: `setpoint restore {name} --to latest --in-place` returns to it")
        step("stopping the instance")
        rewind_metadata(home, ctx, moment)
        log(f"rewound the metadata database of {name} to {moment.isoformat() if moment else 'the latest archived WAL'}")
    report = converge.up(home, ctx.spec, log=log, step=step)
    if previous_key := rotation.key_at(ctx, moment):
        values = SupersetCommands(ctx).re_encrypt_secrets(previous_key)
        log(f"re-encrypted {values} secret(s) of the rewound metadata, kept with the SECRET_KEY of before its last "
            "rotation, with the current one")
    # The rewound cluster writes a new timeline; the newest backup must be on it, or a restore of
    # "the latest backup" would start from the safety backup, past the point the timeline forked.
    step("taking a full backup of the rewound instance")
    log(f"took the full backup {take_backup(ctx, 'full').label} on the new timeline")
    return report


def rewind_metadata(home: Home, ctx, moment: datetime | None) -> None:
    """Stop the instance (Redis aside), rewind its metadata database to `moment` (the latest
    archived WAL when None), and drop what Redis held of the present."""
    load_platform(home).supervisor.stop(*[p.name for p in reversed(instance_programs(ctx)) if p.component != "redis"])
    PgBackRest(ctx).restore(ctx.paths.pg_data, target_time=pgbackrest_time(moment), delta=True)
    flush_present(ctx)


def flush_present(ctx) -> None:
    """After the metadata is rewound: cached results, queued work and async events describe the
    present, so they go (sessions and rate limits stay)."""
    redis = RedisServer(ctx.ports.redis, SecretStore(ctx.paths.secrets_file).load()["redis_password"])
    for db in REDIS_DBS_OF_THE_PRESENT:
        redis.command("-n", str(db), "FLUSHDB")


def restore_as_new(home: Home, source: str, to: str, new_name: str, log=lambda m: None, step=lambda m: None,
                   superset_version: str | None = None, ephemeral: bool = False):
    """Restore `source` as it was at `to` into a new instance `new_name`; the source is untouched.
    With `superset_version`, the copy runs that version, its metadata migrated to it; an
    `ephemeral` copy (an upgrade's staging) is neither monitored nor backed up."""
    ctx = load_context(home, source)
    moment = parse_moment(to)
    target = home.instance(new_name)
    if target.root.exists():
        raise InputError(f"an instance named '{new_name}' already exists", "choose another name with --as")
    backrest = PgBackRest(ctx)
    check_reachable(ctx, moment, step)
    spec = ctx.spec.model_copy(update={
        "name": new_name, "hostname": None, "web_port": None,
        "metadata_db": ctx.spec.metadata_db.model_copy(update={"port": None}),
        "cache": ctx.spec.cache.model_copy(update={"port": None}),
        "superset_version": superset_version or ctx.spec.superset_version,
    })
    try:
        step(f"restoring {source} as of {moment.isoformat() if moment else 'the latest archived WAL'}")
        # The source's data account, which alone reads the source's repository, restores into
        # the copy: it traverses the copy's directories, root's, and owns only its database files
        # until the copy's own accounts take them (lay_out).
        for directory in (target.root, target.data):
            own_directory(home.instances_dir, directory, "root", ctx.data_user, mode=0o750)
        own_directory(home.instances_dir, target.pg_data, ctx.data_user, mode=0o700)
        # The SECRET_KEY the restored metadata was encrypted with decrypts its database passwords:
        # the source's, or the one it had before its last rotation.
        secrets = SecretStore(ctx.paths.secrets_file).load()
        if previous_key := rotation.key_at(ctx, moment):
            secrets["secret_key"] = previous_key
        SecretStore(target.secrets_file, owner=ctx.data_user).update(secrets)
        write_file(target.spec_file, yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
        restored_from = {"instance": source, "to": moment.isoformat() if moment else "latest"}
        # Restored as the source's version; a newer one migrates it when the copy starts.
        target.write_state({"migrated": ctx.spec.superset_version, "examples_loaded": True, "restored_from": restored_from})
        backrest.restore(target.pg_data, target_time=pgbackrest_time(moment))
        # The WAL is replayed here, by the source's data account, which alone reads its
        # repository; the copy's own account then takes the files (converge's lay_out).
        step("replaying the WAL up to that moment")
        with recovered(ctx, target.pg_data, ctx.paths.data_logs / "restore-postgres.log"):
            pass
        log(f"restored the metadata database of {source} as of {restored_from['to']}")
        return converge.up(home, spec, log=log, step=step, ephemeral=ephemeral)
    except (SetpointError, OSError):
        # Nothing half-made stays behind; the source was never touched.
        from setpoint.runtime.local import lifecycle

        if target.exists():
            lifecycle.destroy(home, new_name)
        shutil.rmtree(target.root, ignore_errors=True)
        raise
