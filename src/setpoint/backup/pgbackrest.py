"""pgBackRest for one instance: the stanza, backups, what the repository holds, restores."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from setpoint import proc
from setpoint.errors import SetpointError
from setpoint.home import own_directory
from setpoint.render import InstanceContext

BACKUP_TYPES = ("full", "diff", "incr")
# Below this, a failed command is put down to a full repository disk: pgBackRest then fails on
# whichever write comes first (a directory it could not create shows as "No such file").
LOW_SPACE_BYTES = 64 * 2**20
WRITES_TO_REPOSITORY = ("backup", "stanza-create", "check", "expire")


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
    """Runs pgBackRest with the instance's own configuration, as its data account."""

    def __init__(self, ctx: InstanceContext) -> None:
        self.ctx = ctx
        self.stanza = ctx.spec.name
        self.config = ctx.paths.config / "pgbackrest.conf"

    def run(self, *args: str, timeout: float = 600, what: str | None = None, check: bool = True,
            hint: str | None = None) -> proc.Result:
        what = what or f"pgbackrest {args[0]}"
        result = proc.run(
            ["pgbackrest", f"--config={self.config}", f"--stanza={self.stanza}", *args],
            user=self.ctx.data_user,
            cwd=self.ctx.paths.run,
            timeout=timeout,
            what=what,
            check=False,
        )
        if check and not result.ok:
            repo = self.ctx.paths.backup / "repo"
            free = shutil.disk_usage(repo).free if repo.exists() else None
            if args[0] in WRITES_TO_REPOSITORY and free is not None and free < LOW_SPACE_BYTES:
                raise SetpointError(
                    f"{what} failed: the disk of the local backup repository {repo} is full "
                    f"({free // 2**20} MiB free); the instance is unchanged and its WAL waits in PostgreSQL until it can be archived",
                    f"free space on that disk (df -h {repo}) or move the repository to a larger one, "
                    f"then run: setpoint backup {self.stanza}",
                )
            raise SetpointError(f"{what} failed (exit {result.returncode}): {proc.last_words(result)}",
                                hint or f"see {self.ctx.paths.data_logs}")
        return result

    def prepare_directories(self) -> None:
        # In the data account's directories: never through a link it planted (own_directory).
        paths = self.ctx.paths
        own_directory(paths.root.parent, paths.backup, self.ctx.data_user, mode=0o700)
        for directory in (paths.backup / "repo", paths.data_logs, paths.run / "pgbackrest"):
            own_directory(paths.root.parent, directory, self.ctx.data_user, mode=0o750)

    @property
    def repos(self) -> list[int]:
        """The repositories every backup goes to: the local one, and the off-site one if any."""
        return [1, 2] if self.ctx.spec.backup.offsite else [1]

    def ensure_stanza(self) -> bool:
        """Create the stanza in every repository that lacks it; return whether it did."""
        self.prepare_directories()
        info = self.info()
        ready = {r["key"] for r in info.get("repo", []) if r.get("status", {}).get("code") == 0}
        if set(self.repos) <= ready:
            return False
        self.run("stanza-create", what="creating the pgBackRest stanza",
                 hint="if the off-site endpoint is named in the error, check its address, bucket and keys")
        return True

    def check(self) -> None:
        """pgBackRest's own end-to-end check: archiving works and the repository is writable."""
        self.run("check", timeout=120, what="checking WAL archiving (pgbackrest check)")

    def backup(self, kind: str = "full", repo: int = 1) -> None:
        if kind not in BACKUP_TYPES:
            raise SetpointError(f"unknown backup type '{kind}'", f"choose one of: {', '.join(BACKUP_TYPES)}")
        where = "the local repository" if repo == 1 else "the off-site repository"
        self.run("backup", f"--type={kind}", f"--repo={repo}", timeout=3600, what=f"the {kind} backup to {where}")

    def info(self, repo: int | None = None) -> dict:
        """The stanza's entry of `pgbackrest info` (of one repository, or all), or {} when it
        cannot be read: before the stanza exists, or while a repository does not answer."""
        args = ["info", "--output=json", "--io-timeout=10", *([f"--repo={repo}"] if repo else [])]
        try:
            result = self.run(*args, check=False, timeout=30)
            stanzas = json.loads(result.stdout or "[]")
        except (SetpointError, ValueError):
            return {}
        return stanzas[0] if stanzas else {}

    def repositories(self) -> dict[int, dict]:
        """Each repository's entry of `pgbackrest info`, {} for one that does not answer."""
        return {repo: self.info(repo) for repo in self.repos}

    def backups(self, repositories: dict[int, dict] | None = None) -> list[BackupSet]:
        """Every backup in every repository (one that does not answer lists none), oldest first."""
        found = [
            BackupSet(
                label=b["label"],
                type=b["type"],
                started=_utc(b["timestamp"]["start"]),
                stopped=_utc(b["timestamp"]["stop"]),
                size_bytes=b["info"]["size"],
                repo_bytes=b["info"]["repository"]["delta"],
                repo=repo,
                error=bool(b.get("error")),
            )
            for repo, info in (repositories or self.repositories()).items()
            for b in info.get("backup", [])
        ]
        return sorted(found, key=lambda b: (b.stopped, b.repo))

    def restore(self, target_dir: Path, target_time: str | None = None, delta: bool = False, repo: int | None = None) -> None:
        """Restore into `target_dir`: to `target_time` (PITR), or to the end of the archive."""
        # No read-only connections while WAL replays: with them, a parameter that was larger on the
        # source at some point of its WAL (max_connections before a resize down) pauses recovery.
        args = ["restore", f"--pg1-path={target_dir}", "--recovery-option=hot_standby=off",
                *([f"--repo={repo}"] if repo else [])]
        if target_time:
            args += ["--type=time", f"--target={target_time}", "--target-action=promote"]
        if delta:
            args.append("--delta")
        self.run(*args, timeout=3600, what="restoring the backup")

    def verify(self) -> None:
        """pgBackRest's own verification of the repository's checksums."""
        self.run("verify", timeout=3600, what="verifying the repository (pgbackrest verify)")
