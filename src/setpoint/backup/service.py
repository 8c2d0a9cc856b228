"""Backups of a managed instance: take them, list them with the recovery window, record results."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from setpoint.backup.escrow import check_offsite, escrow_instance
from setpoint.backup.pgbackrest import BackupSet, PgBackRest
from setpoint.errors import SetpointError
from setpoint.home import InstancePaths, is_root, open_beneath, write_file
from setpoint.render import InstanceContext
from setpoint.secret import SecretStore
from setpoint.services.postgres import cluster_of


def now() -> datetime:
    return datetime.now(timezone.utc)


def read_record(paths: InstancePaths) -> dict[str, Any]:
    """What Setpoint recorded of an instance's backups, drills and exports: records.json, or, for
    an instance an earlier Setpoint made (its directory still its data account's) until `up` moves
    it (move_record), the record in backup/, read without following a link."""
    if paths.records_file.exists():
        return json.loads(paths.records_file.read_text())
    if is_root() and paths.root.exists() and paths.root.stat().st_uid != 0:
        try:
            return json.loads(_former_record(paths))
        except OSError:
            return {}
    return {}


@contextmanager
def record_lock(paths: InstancePaths) -> Iterator[None]:
    """One read-modify-write of records.json at a time, whoever makes it: a command, a scheduled
    job, the emergency admins' expiry. Apart from the instance's lock, and held for milliseconds:
    emergency access is granted and revoked while a long backup or drill holds the instance."""
    paths.root.parent.mkdir(parents=True, exist_ok=True)
    with open(paths.root.parent / f".{paths.root.name}.record.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def amend_record(paths: InstancePaths, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply `change` to the record as it is now, and write it, under the record's lock."""
    with record_lock(paths):
        record = read_record(paths)
        change(record)
        write_file(paths.records_file, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")


def update_record(paths: InstancePaths, **entries: Any) -> None:
    amend_record(paths, lambda record: record.update(entries))


FORMER_RECORD = "state.json"  # in backup/, where Setpoint kept the record before records.json


def _former_record(paths: InstancePaths) -> str:
    """The text of the record an earlier Setpoint kept in backup/, opened without following a link
    (OSError when it is missing, or is a link)."""
    with os.fdopen(open_beneath(paths.root, paths.backup / FORMER_RECORD)) as handle:
        return handle.read()


def move_record(paths: InstancePaths) -> bool:
    """Move the record an earlier Setpoint kept in backup/ (the data account's directory) beside
    the spec; return whether there was one. A record planted as a link to another file is dropped,
    never read."""
    former = paths.backup / FORMER_RECORD
    try:
        text = _former_record(paths)
    except OSError:
        if not former.is_symlink():
            return False
        former.unlink()
        return True
    if not paths.records_file.exists():
        try:
            update_record(paths, **json.loads(text))
        except ValueError:
            pass  # not a record: the next backup, drill and export write a new one
    former.unlink()
    return True


@dataclass
class RecoveryWindow:
    """The times a point-in-time restore can reach."""

    earliest: datetime | None
    latest: datetime | None

    def contains(self, moment: datetime) -> bool:
        return bool(self.earliest and self.latest and self.earliest <= moment <= self.latest)


@dataclass
class RepositoryRoom:
    """Room left on the local repository's disk, counted in full backups of the newest's size."""

    path: str
    free_bytes: int
    full_backup_bytes: int

    @property
    def full_backups(self) -> int | None:
        return self.free_bytes // self.full_backup_bytes if self.full_backup_bytes else None


@dataclass
class BackupReport:
    name: str
    backups: list[BackupSet]
    window: RecoveryWindow
    archiving: dict[str, Any] = field(default_factory=dict)
    room: RepositoryRoom | None = None
    repositories: dict[int, str] = field(default_factory=dict)  # repo -> "ok", or what is wrong

    def to_dict(self) -> dict:
        return {
            "instance": self.name,
            "backups": [b.to_dict() for b in self.backups],
            "recovery_window": {
                "earliest": self.window.earliest.isoformat() if self.window.earliest else None,
                "latest": self.window.latest.isoformat() if self.window.latest else None,
            },
            "archiving": self.archiving,
            "repositories": {str(repo): answer for repo, answer in self.repositories.items()},
            "local_repository": self.room and {**asdict(self.room), "full_backups_that_fit": self.room.full_backups},
        }


def segment_number(wal_file: str) -> int:
    """The position of a WAL segment file, whatever its timeline (16 MB segments)."""
    return int(wal_file[8:16], 16) * 0x100 + int(wal_file[16:24], 16)


def archiver_status(ctx: InstanceContext, archived_max: str | None = None) -> dict[str, Any]:
    """How far archiving has got: the segment being written, the newest one in the repository,
    and pg_stat_archiver's last success and failure (its counters restart with the server)."""
    row = cluster_of(ctx).sql(
        "SELECT coalesce(extract(epoch FROM last_archived_time)::bigint, 0), failed_count, "
        "coalesce(extract(epoch FROM last_failed_time)::bigint, 0), pg_walfile_name(pg_current_wal_lsn()) "
        "FROM pg_stat_archiver"
    )
    archived, failed_count, failed, current = row.split("|")
    return {
        "last_archived": datetime.fromtimestamp(int(archived), tz=timezone.utc) if int(archived) else None,
        "failed_count": int(failed_count),
        "last_failed": datetime.fromtimestamp(int(failed), tz=timezone.utc) if int(failed) else None,
        "current_segment": current,
        "archived_segment": archived_max,
        # The segment being written is archived when it is full or archive_timeout passes.
        "segments_behind": segment_number(current) - segment_number(archived_max) - 1 if archived_max else None,
    }


def backup_report(ctx: InstanceContext) -> BackupReport:
    """Every backup with its type, time, size and repository, and the recovery window."""
    backrest = PgBackRest(ctx)
    repositories = backrest.repositories()
    backups = backrest.backups(repositories)
    good = [b for b in backups if not b.error]
    archives = repositories[1].get("archive", [])
    try:
        archiving = archiver_status(ctx, archives[-1].get("max") if archives else None)
    except SetpointError:
        archiving = {}
    latest = archiving.get("last_archived") or (good[-1].stopped if good else None)
    if good and latest and latest < good[-1].stopped:
        latest = good[-1].stopped
    window = RecoveryWindow(good[0].stopped if good else None, latest)
    shown = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in archiving.items()}
    answers = {repo: repository_answer(info) for repo, info in repositories.items()}
    return BackupReport(ctx.spec.name, backups, window, shown, repository_room(ctx, good), answers)


def repository_answer(info: dict) -> str:
    """What a repository says of the stanza (pgBackRest's status message), or that it is silent."""
    if not info:
        return "not answering"
    statuses = [r.get("status", {}).get("message", "") for r in info.get("repo", [])]
    return statuses[0] if statuses else info.get("status", {}).get("message", "unknown")


def repository_room(ctx: InstanceContext, backups: list[BackupSet]) -> RepositoryRoom | None:
    repo = ctx.paths.backup / "repo"
    if not repo.exists():
        return None
    fulls = [b for b in backups if b.repo == 1 and b.type == "full"]
    return RepositoryRoom(str(repo), shutil.disk_usage(repo).free, fulls[-1].repo_bytes if fulls else 0)


def take_backup(ctx: InstanceContext, kind: str = "full") -> BackupSet:
    """Take a backup, record the outcome (success or failure), and return it."""
    started = time.monotonic()
    backrest = PgBackRest(ctx)
    secrets = SecretStore(ctx.paths.secrets_file).load()
    try:
        if ctx.spec.backup.offsite:
            check_offsite(ctx.spec.backup.offsite, secrets)
        # Each repository gets its own backup; a failure of either is a failed backup.
        for repo in backrest.repos:
            backrest.backup(kind, repo)
    except SetpointError as exc:
        update_record(ctx.paths, last_backup={"at": now().isoformat(), "ok": False, "type": kind, "error": exc.message})
        raise
    newest = [b for b in backrest.backups() if b.repo == 1][-1]
    escrow_instance(ctx, secrets)
    update_record(
        ctx.paths,
        last_backup={"at": now().isoformat(), "ok": True, "type": kind, "label": newest.label,
                     "seconds": round(time.monotonic() - started, 1)},
    )
    return newest
