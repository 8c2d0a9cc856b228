"""Dashboards as code: Superset's own export, unpacked as readable YAML in a git repository.

The export holds every dashboard with its charts, datasets and database connections; Superset
masks database passwords in it. A commit is made only when something changed, with a message
that says what. Importing zips the repository back and loads it through Superset's importer.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import zipfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

import yaml

from setpoint import examples, proc
from setpoint.backup.service import now, read_record, update_record
from setpoint.errors import InputError, SetpointError
from setpoint.home import InstancePaths
from setpoint.superset_api import SupersetClient

CONTENT = ("dashboards", "charts", "datasets", "databases")
GIT_IDENTITY = ["-c", "user.name=Setpoint", "-c", "user.email=setpoint@localhost"]


@dataclass
class ExportResult:
    repository: Path
    committed: bool
    message: str
    dashboards: int


def is_remote(target: str) -> bool:
    return "://" in target or target.startswith("git@")


def git(repo: Path, *args: str, check: bool = True) -> str:
    return proc.run(["git", "-C", repo, *GIT_IDENTITY, *args], timeout=300, check=check,
                    what=f"git {args[0]}", hint=f"check the repository at {repo}").stdout


def working_copy(target: str, cache_dir: Path) -> Path:
    """A local working copy of `target`: the directory itself, or a clone of the remote URL."""
    if is_remote(target):
        clone = cache_dir / hashlib.sha256(target.encode()).hexdigest()[:12]
        if not (clone / ".git").exists():
            cache_dir.mkdir(parents=True, exist_ok=True)
            proc.run(["git", "clone", "--quiet", target, clone], timeout=300, what=f"cloning {target}")
        else:
            git(clone, "pull", "--quiet", "--ff-only", check=False)
        return clone
    repo = Path(target).absolute()
    repo.mkdir(parents=True, exist_ok=True)
    if not (repo / ".git").exists():
        proc.run(["git", "init", "--quiet", "-b", "main", repo], timeout=60, what="creating the export repository")
    return repo


def all_ids(api: SupersetClient, resource: str) -> list[int]:
    ids, page = [], 0
    while True:
        query = f"(columns:!(id),page:{page},page_size:100)"
        batch = [row["id"] for row in api.get(f"/api/v1/{resource}/", params={"q": query}).json()["result"]]
        ids += batch
        if len(batch) < 100:
            return ids
        page += 1


def unpack(bundle: bytes, repo: Path) -> None:
    """Replace the repository's content with the bundle's files (without the archive's top folder).

    The bundle is whatever the instance's Superset answered, and root writes it: a name that would
    lead out of the content's folders (`..`, an absolute path) refuses the whole bundle before
    anything is written."""
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        files = {}
        for name in archive.namelist():
            parts = PurePosixPath(name).parts[1:]
            # metadata.yaml only carries the export's timestamp: it would change every day.
            if not parts or parts[0] not in CONTENT or name.endswith("/"):
                continue
            if PurePosixPath(name).is_absolute() or any(p in ("..", ".") or "\\" in p for p in parts):
                raise SetpointError(f"Superset's export holds a file outside the content's folders ({name[:200]!r}); "
                                    f"nothing was written into {repo}", "no Superset names its files so: check the "
                                    "instance's Superset code and files for tampering, then export again")
            files[Path(*parts)] = archive.read(name)
    for folder in CONTENT:
        shutil.rmtree(repo / folder, ignore_errors=True)
    for relative, content in files.items():
        destination = stable_path(repo / relative, content)
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(content)


def stable_path(path: Path, content: bytes) -> Path:
    """Superset names exported files `Title_ID.yaml`; IDs differ between instances and after an
    import, so the repository names them by title alone (and the UUID when titles collide)."""
    stem = re.sub(r"_\d+$", "", path.stem)
    candidate = path.with_name(f"{stem}.yaml")
    if candidate.exists():
        uuid = (yaml.safe_load(content) or {}).get("uuid", "")
        candidate = path.with_name(f"{stem}-{str(uuid)[:8]}.yaml")
    return candidate


def describe_changes(porcelain: str) -> str:
    """`2 charts changed, 1 dashboard added` from `git status --porcelain`."""
    verbs = {"A": "added", "?": "added", "M": "changed", "D": "removed", "R": "renamed"}
    counts: Counter[tuple[str, str]] = Counter()
    for line in porcelain.splitlines():
        code, path = line[:2].strip()[:1], line[3:]
        kind = Path(path).parts[0].rstrip("s") if Path(path).parts else "file"
        counts[(kind, verbs.get(code, "changed"))] += 1
    parts = [f"{n} {kind}{'s' if n > 1 else ''} {verb}" for (kind, verb), n in sorted(counts.items())]
    return ", ".join(parts)


def export_dashboards(api: SupersetClient, target: str, cache_dir: Path) -> ExportResult:
    """Export every dashboard into the git repository `target`; commit (and push) only changes."""
    repo = working_copy(target, cache_dir)
    ids = all_ids(api, "dashboard")
    if ids:
        bundle = api.get("/api/v1/dashboard/export/", params={"q": f"!({','.join(map(str, ids))})"}, timeout=300).content
        unpack(bundle, repo)
    changes = stage(repo)
    if not changes.strip():
        return ExportResult(repo, False, "no change since the last export", len(ids))
    message = f"Export {len(ids)} dashboard{'s' if len(ids) != 1 else ''}: {describe_changes(changes)}"
    commit(repo, target, message)
    return ExportResult(repo, True, message, len(ids))


def stage(repo: Path, *only: str) -> str:
    """Stage every change (under the paths `only` names); what changed, as `git status --porcelain`."""
    git(repo, "add", "-A", "--", *only)
    return git(repo, "status", "--porcelain", "--", *only)


def commit(repo: Path, target: str, message: str, *only: str) -> None:
    """Commit what is staged (under `only`), and push it when the repository is remote."""
    git(repo, "commit", "--quiet", "-m", message, "--", *only)
    if is_remote(target):
        git(repo, "push", "--quiet", "origin", "HEAD")


def bundle_of(repo: Path) -> bytes:
    """The repository's content as an import bundle (ZIP), with the metadata file Superset expects."""
    if not any((repo / folder).exists() for folder in CONTENT):
        raise InputError(f"{repo} holds no dashboard export", "export one first: setpoint export NAME --git DIR")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        metadata = {"version": "1.0.0", "type": "Dashboard", "timestamp": datetime.now(timezone.utc).isoformat()}
        archive.writestr("export/metadata.yaml", yaml.safe_dump(metadata))
        for folder in CONTENT:
            for path in sorted((repo / folder).rglob("*.yaml")):
                archive.writestr(f"export/{path.relative_to(repo)}", path.read_bytes())
    return buffer.getvalue()


def database_passwords(repo: Path, known: dict[str, str]) -> dict[str, str]:
    """Passwords for the bundle's database files, by connection UUID (exports never hold them)."""
    passwords = {}
    for path in (repo / "databases").glob("*.yaml"):
        uuid = yaml.safe_load(path.read_text()).get("uuid")
        if uuid in known:
            passwords[f"databases/{path.name}"] = known[uuid]
    return passwords


def import_dashboards(api: SupersetClient, source: str, cache_dir: Path, known_passwords: dict[str, str]) -> int:
    """Load a dashboards-as-code repository into the instance (existing objects are overwritten)."""
    repo = working_copy(source, cache_dir)
    api.import_dashboards(bundle_of(repo), passwords=database_passwords(repo, known_passwords))
    return len(list((repo / "dashboards").glob("*.yaml")))


def managed_passwords(secrets: dict[str, str]) -> dict[str, str]:
    """The passwords Setpoint itself knows: the sample data's read-only role."""
    return {examples.DATABASE_UUID: secrets["examples_reader_password"]}


def export_instance(api: SupersetClient, paths: InstancePaths, target: str | None = None) -> ExportResult:
    """Export an instance's dashboards (into its own export/ repository unless `target` is given)
    and record the result for the scorecard and the scheduler."""
    target = target or str(paths.root / "export")
    result = export_dashboards(api, target, paths.root / "export-clones")
    record_export(paths, result, target)
    return result


def last_repository(paths: InstancePaths) -> tuple[str, Path] | None:
    """The git repository the instance's dashboards were last exported to (its target and local
    working copy), or None before the first export."""
    last = read_record(paths).get("last_export")
    if not last:
        return None
    return last["target"], working_copy(last["target"], paths.root / "export-clones")


def record_export(paths: InstancePaths, result: ExportResult, target: str) -> None:
    head = git(result.repository, "rev-parse", "HEAD", check=False).strip()
    update_record(paths, last_export={"at": now().isoformat(), "target": target, "commit": head,
                                      "dashboards": result.dashboards, "committed": result.committed,
                                      "message": result.message})
