"""Point-in-time recovery of a managed instance into a new instance beside it."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone

import yaml

from setpoint.backup.pgbackrest import PgBackRest
from setpoint.backup.service import backup_report
from setpoint.errors import InputError, SetpointError
from setpoint.home import Home, chown, write_file
from setpoint.runtime.local import converge
from setpoint.runtime.local.instance import load_context


def parse_moment(text: str) -> datetime | None:
    """ISO 8601 (a time without offset is UTC) or `latest` (None)."""
    if text == "latest":
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"--to {text!r} is not an ISO 8601 time", "example: --to 2026-11-21T18:30:00Z, or --to latest") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def restore_as_new(home: Home, source: str, to: str, new_name: str, log=lambda m: None, step=lambda m: None):
    """Restore `source` as it was at `to` into a new instance `new_name`; the source is untouched."""
    ctx = load_context(home, source)
    moment = parse_moment(to)
    target = home.instance(new_name)
    if target.root.exists():
        raise InputError(f"an instance named '{new_name}' already exists", "choose another name with --as")
    backrest = PgBackRest(ctx)
    step("pushing the source's current WAL to the repository")
    backrest.check()
    window = backup_report(ctx).window
    if moment is not None and not window.contains(moment):
        raise InputError(
            f"{moment.isoformat()} is outside the recovery window of {source} "
            f"({window.earliest.isoformat() if window.earliest else 'no backup'} to "
            f"{window.latest.isoformat() if window.latest else 'none'})",
            f"choose a time inside it (see: setpoint backups {source})",
        )
    spec = ctx.spec.model_copy(update={
        "name": new_name, "hostname": None, "web_port": None, "examples": False,
        "metadata_db": ctx.spec.metadata_db.model_copy(update={"port": None}),
        "cache": ctx.spec.cache.model_copy(update={"port": None}),
    })
    try:
        step(f"restoring {source} as of {moment.isoformat() if moment else 'the latest archived WAL'}")
        for directory in (target.root, target.data, target.pg_data):
            directory.mkdir(parents=True, exist_ok=True)
            chown(directory, ctx.service_user)
        target.pg_data.chmod(0o700)
        # The same SECRET_KEY decrypts the database passwords kept in the restored metadata.
        write_file(target.secrets_file, ctx.paths.secrets_file.read_text(), mode=0o600, owner=ctx.service_user)
        write_file(target.spec_file, yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
        restored_from = {"instance": source, "to": moment.isoformat() if moment else "latest"}
        target.write_state({"migrated": spec.superset_version, "examples_loaded": True, "restored_from": restored_from})
        backrest.restore(target.pg_data, target_time=moment.strftime("%Y-%m-%d %H:%M:%S.%f+00") if moment else None)
        log(f"restored the metadata database of {source} as of {restored_from['to']}")
        return converge.up(home, spec, log=log, step=step)
    except (SetpointError, OSError):
        # Nothing half-made stays behind; the source was never touched.
        from setpoint.runtime.local import lifecycle

        if target.exists():
            lifecycle.destroy(home, new_name)
        shutil.rmtree(target.root, ignore_errors=True)
        raise
