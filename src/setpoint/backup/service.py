"""Backups of a managed instance: take them, list them with the recovery window, record results."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from setpoint.backup.escrow import check_offsite, escrow_instance
from setpoint.backup.pgbackrest import BackupSet, PgBackRest
from setpoint.errors import SetpointError
from setpoint.home import InstancePaths, write_file
from setpoint.render import InstanceContext
from setpoint.secret import SecretStore
from setpoint.services.postgres import cluster_of


def now() -> datetime:
    return datetime.now(timezone.utc)


def read_record(paths: InstancePaths) -> dict[str, Any]:
    """What Setpoint recorded of an instance's backups and drills (backup/state.json)."""
    path = paths.backup / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def update_record(paths: InstancePaths, **entries: Any) -> None:
    record = read_record(paths)
    record.update(entries)
    paths.backup.mkdir(parents=True, exist_ok=True)
    write_file(paths.backup / "state.json", json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")


@dataclass
class RecoveryWindow:
    """The times a point-in-time restore can reach."""

    earliest: datetime | None
    latest: datetime | None

    def contains(self, moment: datetime) -> bool:
        return bool(self.earliest and self.latest and self.earliest <= moment <= self.latest)


@dataclass
class BackupReport:
    name: str
    backups: list[BackupSet]
    window: RecoveryWindow
    archiving: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "instance": self.name,
            "backups": [b.to_dict() for b in self.backups],
            "recovery_window": {
                "earliest": self.window.earliest.isoformat() if self.window.earliest else None,
                "latest": self.window.latest.isoformat() if self.window.latest else None,
            },
            "archiving": self.archiving,
        }


def archiver_status(ctx: InstanceContext) -> dict[str, Any]:
    """pg_stat_archiver of the live cluster: the last WAL archived, and the last failure."""
    row = cluster_of(ctx).sql(
        "SELECT coalesce(extract(epoch FROM last_archived_time)::bigint, 0), failed_count, "
        "coalesce(extract(epoch FROM last_failed_time)::bigint, 0) FROM pg_stat_archiver"
    )
    archived, failed_count, failed = (int(x) for x in row.split("|"))
    return {
        "last_archived": datetime.fromtimestamp(archived, tz=timezone.utc) if archived else None,
        "failed_count": failed_count,
        "last_failed": datetime.fromtimestamp(failed, tz=timezone.utc) if failed else None,
    }


def backup_report(ctx: InstanceContext) -> BackupReport:
    """Every backup with its type, time, size and repository, and the recovery window."""
    backups = PgBackRest(ctx).backups()
    good = [b for b in backups if not b.error]
    try:
        archiving = archiver_status(ctx)
    except SetpointError:
        archiving = {}
    latest = archiving.get("last_archived") or (good[-1].stopped if good else None)
    if good and latest and latest < good[-1].stopped:
        latest = good[-1].stopped
    window = RecoveryWindow(good[0].stopped if good else None, latest)
    shown = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in archiving.items()}
    return BackupReport(ctx.spec.name, backups, window, shown)


def take_backup(ctx: InstanceContext, kind: str = "full") -> BackupSet:
    """Take a backup, record the outcome (success or failure), and return it."""
    started = time.monotonic()
    backrest = PgBackRest(ctx)
    try:
        if ctx.spec.backup.offsite:
            check_offsite(ctx.spec.backup.offsite, SecretStore(ctx.paths.secrets_file).load())
        # Each repository gets its own backup; a failure of either is a failed backup.
        for repo in backrest.repos:
            backrest.backup(kind, repo)
    except SetpointError as exc:
        update_record(ctx.paths, last_backup={"at": now().isoformat(), "ok": False, "type": kind, "error": exc.message})
        raise
    newest = [b for b in backrest.backups() if b.repo == 1][-1]
    escrow_instance(ctx, SecretStore(ctx.paths.secrets_file).load())
    update_record(
        ctx.paths,
        last_backup={"at": now().isoformat(), "ok": True, "type": kind, "label": newest.label,
                     "seconds": round(time.monotonic() - started, 1)},
    )
    return newest
