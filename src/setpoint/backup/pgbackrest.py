"""pgBackRest for one instance: the stanza, backups, what the repository holds, restores."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from setpoint import proc
from setpoint.errors import SetpointError
from setpoint.home import chown
from setpoint.render import InstanceContext

BACKUP_TYPES = ("full", "diff", "incr")


@dataclass(frozen=True)
class BackupSet:
    """One backup in a repository."""

    label: str
    type: str
    started: datetime
    stopped: datetime
    size_bytes: int  # size of the database it copied
    repo_bytes: int  # what it takes in the repository (compressed)
    repo: int
    error: bool

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "type": self.type,
            "started": self.started.isoformat(),
            "stopped": self.stopped.isoformat(),
            "size_bytes": self.size_bytes,
            "repo_bytes": self.repo_bytes,
            "repo": self.repo,
            "error": self.error,
        }


def _utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


class PgBackRest:
    """Runs pgBackRest with the instance's own configuration, as its service user."""

    def __init__(self, ctx: InstanceContext) -> None:
        self.ctx = ctx
        self.stanza = ctx.spec.name
        self.config = ctx.paths.config / "pgbackrest.conf"

    def run(self, *args: str, timeout: float = 600, what: str | None = None, check: bool = True,
            stanza: str | None = None, config: Path | None = None) -> proc.Result:
        return proc.run(
            ["pgbackrest", f"--config={config or self.config}", f"--stanza={stanza or self.stanza}", *args],
            user=self.ctx.service_user,
            cwd=self.ctx.paths.run,
            timeout=timeout,
            what=what or f"pgbackrest {args[0]}",
            hint=f"see {self.ctx.paths.logs / 'pgbackrest'}",
            check=check,
        )

    def prepare_directories(self) -> None:
        for directory in (self.ctx.paths.backup / "repo", self.ctx.paths.logs / "pgbackrest",
                          self.ctx.paths.run / "pgbackrest"):
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o750)
            chown(directory, self.ctx.service_user)
        chown(self.ctx.paths.backup, self.ctx.service_user)

    def ensure_stanza(self) -> bool:
        """Create the stanza unless it exists; return whether it was created."""
        self.prepare_directories()
        info = self.info()
        if info and info.get("status", {}).get("code") == 0:
            return False
        self.run("stanza-create", what="creating the pgBackRest stanza")
        return True

    def check(self) -> None:
        """pgBackRest's own end-to-end check: archiving works and the repository is writable."""
        self.run("check", timeout=120, what="checking WAL archiving (pgbackrest check)")

    def backup(self, kind: str = "full") -> None:
        if kind not in BACKUP_TYPES:
            raise SetpointError(f"unknown backup type '{kind}'", f"choose one of: {', '.join(BACKUP_TYPES)}")
        self.run("backup", f"--type={kind}", "--repo=1", timeout=3600, what=f"the {kind} backup")

    def info(self) -> dict:
        """The stanza's entry of `pgbackrest info`, or {} before it exists."""
        result = self.run("info", "--output=json", check=False, timeout=60)
        try:
            stanzas = json.loads(result.stdout or "[]")
        except ValueError:
            return {}
        return stanzas[0] if stanzas else {}

    def backups(self) -> list[BackupSet]:
        return [
            BackupSet(
                label=b["label"],
                type=b["type"],
                started=_utc(b["timestamp"]["start"]),
                stopped=_utc(b["timestamp"]["stop"]),
                size_bytes=b["info"]["size"],
                repo_bytes=b["info"]["repository"]["delta"],
                repo=b.get("database", {}).get("repo-key", 1),
                error=bool(b.get("error")),
            )
            for b in self.info().get("backup", [])
        ]

    def restore(self, target_dir: Path, target_time: str | None = None, delta: bool = False) -> None:
        """Restore into `target_dir`: to `target_time` (PITR), or to the end of the archive."""
        args = ["restore", f"--pg1-path={target_dir}"]
        if target_time:
            args += ["--type=time", f"--target={target_time}", "--target-action=promote"]
        if delta:
            args.append("--delta")
        self.run(*args, timeout=3600, what="restoring the backup")

    def verify(self) -> None:
        """pgBackRest's own verification of the repository's checksums."""
        self.run("verify", timeout=3600, what="verifying the repository (pgbackrest verify)")
