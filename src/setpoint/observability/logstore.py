"""The host's central log store: rsyslog (Debian's), under the host's supervisord.

It reads the log of every component of every instance (web, worker, beat, PostgreSQL, Redis,
Caddy's access log) and of Setpoint's scheduler, and files each line as a JSON record under
logstore/records/INSTANCE/COMPONENT/DAY.log; Superset's audit records (setpoint_audit.py) go to
records/INSTANCE/audit/DAY.log. An instance's spec may name a remote syslog store (`logs.remote`)
that receives a copy of each record, queued on disk while it is unreachable.

rsyslog parses lines an instance's people can shape, so it runs as an account of its own
(`setpoint-logs`), not as root. That account reads the instances' logs through an ACL entry on
their directories (`open_to_store`) and owns the audit and access files, which the writers
append to through their group; it joins no instance's group, so it reads none of their secrets,
configuration or data. Its records belong to it, and no instance's account can read them; root
reads them without following a link it could have planted (`open_beneath`). Its configuration
is root's. `up` publishes an instance (rsyslog.d/NAME.conf) and restarts rsyslog, which resumes
every file where it stopped; the scheduler deletes the days past the spec's retention.
`setpoint logs` and `setpoint audit` read the records; checklist points 18 and 22 look for
fresh ones.
"""

from __future__ import annotations

import contextlib
import getpass
import heapq
import json
import os
import re
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from setpoint.errors import InputError, SetpointError
from setpoint.home import (Home, InstancePaths, appendable_file, caddy_user, let_read, logstore_user, open_beneath,
                           own_directory, superset_account, write_file)
from setpoint.readiness import wait_until
from setpoint.render import InstanceContext, render_logstore_config, render_logstore_instance
from setpoint.spec import InstanceSpec

HOST = "_host"  # the records of the host's own programs
AUDIT = "audit"
PROGRAM = "logstore"
DEFAULT_RETENTION_DAYS = 30
DEFAULT_AUDIT_RETENTION_DAYS = 365


def records_dir(home: Home, name: str) -> Path:
    return home.logstore_dir / "records" / name


def _instance_file(home: Home, name: str) -> Path:
    return home.logstore_dir / "rsyslog.d" / f"{name}.conf"


def prepare(home: Home) -> bool:
    """The store's directories and rsyslog's configuration; whether it changed. The configuration
    is root's; the queues, positions and records are the store account's (an earlier Setpoint's,
    root's, change hands)."""
    base, user = home.logstore_dir, logstore_user()
    for directory in (base, base / "rsyslog.d"):
        own_directory(home.root, directory, "root", user, mode=0o750)
    for directory in (base / "state", base / "records"):
        own_directory(home.root, directory, user, mode=0o700, recursive=True)
    return _write_config(base / "rsyslog.conf", render_logstore_config(home))


def _write_config(path: Path, text: str) -> bool:
    return write_file(path, text, mode=0o640, owner="root", group=logstore_user())


def publish(home: Home, ctx: InstanceContext) -> bool:
    """Have the store read the instance's logs (and forward them as its spec says); whether the
    store's configuration changed. The CA file the spec names for its remote is copied where the
    store's account reads it (a certificate holds nothing secret; the original may be root's)."""
    certificate, copy = remote_ca_certificate(ctx.spec), _ca_copy(home, ctx.spec.name)
    changed = False
    if certificate is None:
        copy.unlink(missing_ok=True)
    else:
        own_directory(home.root, copy.parent, "root", logstore_user(), mode=0o750)
        changed = _write_config(copy, certificate)
    rendered = render_logstore_instance(ctx, copy if certificate is not None else None)
    return _write_config(_instance_file(home, ctx.spec.name), rendered) or changed


def _ca_copy(home: Home, name: str) -> Path:
    return home.logstore_dir / "ca" / f"{name}.pem"


def remote_ca_certificate(spec: InstanceSpec) -> str | None:
    """The CA certificate the spec's logs.remote_ca_file names (None when it names none); a clear
    error when it cannot be read or holds none, which `up` checks before it changes anything."""
    named = spec.logs.remote_ca_file
    if named is None:
        return None
    try:
        certificate = named.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"the spec's logs.remote_ca_file {named} cannot be read ({getattr(exc, 'strerror', None) or exc})",
                         "put the remote log store's CA certificate (PEM) there, or remove the key to trust the "
                         f"system's CAs, then run: setpoint up {spec.name}") from None
    if "-----BEGIN CERTIFICATE-----" not in certificate:
        raise InputError(f"the spec's logs.remote_ca_file {named} holds no PEM certificate",
                         f"put the remote log store's CA certificate (PEM) there, then run: setpoint up {spec.name}")
    return certificate


def open_to_store(home: Home, paths: InstancePaths, superset_user: str) -> list[str]:
    """Let the store's account read the instance's logs, audit file and access log, and nothing
    else of the instance's: an ACL entry lets it pass through the instance's directory and read
    logs/ and audit/; it owns the audit file and the access log, which Superset's processes and
    Caddy append to through their groups. Return what changed."""
    reader, changed = logstore_user(), []
    for directory, perm, what in ((paths.root, 1, "pass through"), (paths.logs, 5, "read"), (paths.audit_dir, 5, "read")):
        if directory.exists() and let_read(home.root, directory, reader, perm):
            changed.append(f"let {reader} {what} {directory}")
    # Only an audit file already there: `up` makes one after it has moved an earlier Setpoint's.
    if paths.audit_log.is_file() and _hand_audit_file(paths, superset_user):
        changed.append(f"gave {paths.audit_log} to {reader}, for {superset_user}'s processes to append to")
    if appendable_file(home.root, paths.access_log, caddy_user(), ACCESS_LOG_MODE, owner=reader):
        changed.append(f"gave {paths.access_log} to {reader}, for Caddy to append to")
    return changed


def open_instances_to_store(home: Home) -> list[str]:
    """open_to_store for the access logs' directory and every instance of the home laid out by
    this Setpoint (one laid out by an earlier one gets it at its `up`)."""
    changed = []
    if let_read(home.root, home.access_logs_dir, logstore_user(), 5):
        changed.append(f"let {logstore_user()} read {home.access_logs_dir}")
    for name in home.instance_names():
        paths = home.instance(name)
        if paths.audit_dir.exists():
            changed += open_to_store(home, paths, superset_account(home.root, name))
    return changed


def withdraw(home: Home, name: str) -> bool:
    """Stop reading a destroyed instance's logs; its records stay until their retention ends."""
    conf = _instance_file(home, name)
    existed = conf.exists()
    conf.unlink(missing_ok=True)
    _ca_copy(home, name).unlink(missing_ok=True)
    return existed


def reload(supervisor) -> None:
    """rsyslog reads its configuration only when it starts: restart it. It keeps the position
    of every file it reads and its forwarding queues on disk, so no line is lost."""
    if supervisor.is_running():
        supervisor.restart(PROGRAM)


# --- reading the store ---------------------------------------------------------------------

@dataclass(frozen=True)
class Record:
    time: str  # RFC 3339, UTC
    component: str
    level: str
    message: str

    def line(self) -> str:
        return f"{self.time[:23].replace('T', ' ')} {self.component:<9} {self.message}"


def _day_files(directory: Path, since: datetime | None) -> list[Path]:
    first = since.date() if since else date.min
    return sorted(p for p in directory.glob("*.log") if _day_of(p) is not None and _day_of(p) >= first)


def _day_of(path: Path) -> date | None:
    try:
        return date.fromisoformat(path.stem)
    except ValueError:
        return None


def components_of(home: Home, name: str) -> list[str]:
    """The components that have records of instance `name` (the audit trail aside)."""
    base = records_dir(home, name)
    return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.is_symlink() and p.name != AUDIT) \
        if base.exists() else []


def _entries(home: Home, path: Path, offset: int = 0) -> tuple[list[dict], int]:
    """The complete JSON lines of a day file from `offset`, and the offset after them. The store's
    account owns the records: a link it put in a file's or a directory's place is not followed
    (nothing is read from it), since root reads them."""
    try:
        fd = open_beneath(home.logstore_dir, path)
    except OSError:
        return [], offset
    with os.fdopen(fd, "rb") as stream:
        stream.seek(offset)
        data = stream.read()
    end = data.rfind(b"\n") + 1  # a line rsyslog is still writing waits for the next read
    found = []
    for raw in data[:end].splitlines():
        try:
            found.append(json.loads(raw))
        except ValueError:
            continue
    return found, offset + end


def _read(home: Home, path: Path, component: str, offset: int = 0) -> tuple[list[Record], int]:
    """The complete records of a day file from `offset`, and the offset after them."""
    entries, end = _entries(home, path, offset)
    return [Record(e.get("time", ""), component, e.get("level", "info"), e.get("message", "")) for e in entries], end


def _component_records(home: Home, name: str, component: str, since: datetime | None) -> Iterator[Record]:
    for path in _day_files(records_dir(home, name) / component, since):
        yield from _read(home, path, component)[0]


def read(home: Home, name: str, components: Iterable[str] = (), since: datetime | None = None,
         grep: str | None = None) -> Iterator[Record]:
    """Records of instance `name` (every component when none is named), merged in time order."""
    wanted = list(components) or components_of(home, name)
    cutoff = since.isoformat() if since else ""
    streams = [_component_records(home, name, component, since) for component in wanted]
    for record in heapq.merge(*streams, key=lambda r: r.time):
        if record.time >= cutoff and (grep is None or grep in record.message):
            yield record


def follow(home: Home, name: str, components: Iterable[str] = (), grep: str | None = None,
           interval: float = 0.5) -> Iterator[Record]:
    """New records of instance `name` as the store files them, until interrupted."""

    def todays_files() -> list[tuple[str, Path]]:
        day = datetime.now(timezone.utc).date().isoformat()
        return [(c, records_dir(home, name) / c / f"{day}.log") for c in list(components) or components_of(home, name)]

    offsets = {path: path.stat().st_size for _, path in todays_files() if path.exists()}
    while True:
        batch = []
        for component, path in todays_files():
            if path.exists():
                found, offsets[path] = _read(home, path, component, offsets.get(path, 0))
                batch += [r for r in found if grep is None or grep in r.message]
        yield from sorted(batch, key=lambda r: r.time)
        time.sleep(interval)


def audit_records(home: Home, name: str, since: datetime | None = None, user: str | None = None) -> list[dict]:
    """The audit trail of instance `name`, oldest first."""
    cutoff = since.isoformat() if since else ""
    found = [entry for path in _day_files(records_dir(home, name) / AUDIT, since) for entry in _entries(home, path)[0]
             if entry.get("time", "") >= cutoff and (user is None or entry.get("user") == user)]
    return sorted(found, key=lambda e: e.get("time", ""))


AUDIT_FILE_MODE = 0o420  # the store's account reads; Superset's processes append through their group
ROTATE_AUDIT_BYTES = 32 * 1024 * 1024


def prepare_audit_trail(ctx: InstanceContext) -> list[str]:
    """Give the instance its audit file, in root's audit/, the store account's: Superset's processes
    append to it through their group but can neither replace it nor put a link in its place,
    which the store would have followed to another file. An audit trail an earlier
    Setpoint kept in the Superset account's home moves here (never through a link), and a link
    left at its former place leads the processes still writing there to the new file until they
    restart. Return what changed."""
    changed = []
    anchor, path = ctx.paths.root.parent, ctx.paths.audit_log
    try:  # the former directory, never through a link (to another instance's, say)
        former = open_beneath(anchor, ctx.paths.former_audit_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        former = None
    if former is not None:
        try:
            current = open_beneath(anchor, ctx.paths.audit_dir, os.O_RDONLY | os.O_DIRECTORY)
            try:
                for name in ("audit.log.1", "audit.log"):
                    if _kind(name, former) != stat.S_IFREG or _kind(name, current) is not None:
                        continue
                    os.replace(name, name, src_dir_fd=former, dst_dir_fd=current)
                    if _kind(name, current) != stat.S_IFREG:  # swapped for a link or more since it was looked at
                        os.unlink(name, dir_fd=current)
                        continue
                    changed.append(f"moved {ctx.paths.former_audit_dir / name} to {path.with_name(name)}")
                    if name == "audit.log":
                        with contextlib.suppress(FileExistsError):
                            os.symlink(path, name, dir_fd=former)
            finally:
                os.close(current)
        finally:
            os.close(former)
    if _hand_audit_file(ctx.paths, ctx.superset_user):
        changed.append(f"gave {path} to {logstore_user()}, for {ctx.superset_user}'s processes to append to")
    return changed


def _hand_audit_file(paths: InstancePaths, superset_user: str) -> bool:
    return appendable_file(paths.root.parent, paths.audit_log, superset_user, AUDIT_FILE_MODE, owner=logstore_user())


def _kind(name: str, directory: int) -> int | None:
    """What `name` is in `directory` (stat.S_IFREG, S_IFLNK, ...), never through a link; None if absent."""
    try:
        return stat.S_IFMT(os.stat(name, dir_fd=directory, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return None


def rotate_audit_trail(paths: InstancePaths) -> bool:
    """Past ROTATE_AUDIT_BYTES the audit file becomes audit.log.1 (the store read it long before)
    and an empty one of the same owner takes its place; whether it did. Superset's processes
    open the file for each record, and retry the moment between the two renames."""
    path = paths.audit_log
    try:
        kept = path.lstat()
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(kept.st_mode) or kept.st_size <= ROTATE_AUDIT_BYTES:
        return False
    fresh = path.with_name(".audit.log.new")
    fresh.unlink(missing_ok=True)
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, AUDIT_FILE_MODE)
    try:
        os.fchown(fd, kept.st_uid, kept.st_gid)
        os.fchmod(fd, stat.S_IMODE(kept.st_mode))
    finally:
        os.close(fd)
    os.replace(path, path.with_name("audit.log.1"))
    os.replace(fresh, path)
    return True


ACCESS_LOG_MODE = 0o420  # the store's account reads; Caddy appends through its account's group
ACCESS_LOG_MAX_BYTES = 20 * 1024 * 1024


def trim_access_log(paths: InstancePaths) -> bool:
    """Empty the access log in place past ACCESS_LOG_MAX_BYTES (Caddy holds it open and appends at
    its end; the store, which reads it as it grows, starts again at its beginning); whether it did."""
    try:
        fd = open_beneath(paths.root.parent.parent, paths.access_log, os.O_WRONLY)
    except OSError:
        return False
    try:
        if os.fstat(fd).st_size <= ACCESS_LOG_MAX_BYTES:
            return False
        os.ftruncate(fd, 0)
        return True
    finally:
        os.close(fd)


def record_audit(ctx: InstanceContext, event: str, **fields) -> None:
    """Add one of Setpoint's own actions on an instance (an emergency admin granted, a person
    erased) to its audit trail, with the operator who ran it, beside Superset's records."""
    from setpoint.runtime.local.superset_side.audit import AuditTrail

    operator = os.environ.get("SUDO_USER") or getpass.getuser()
    path = ctx.paths.audit_log
    try:
        prepare_audit_trail(ctx)
        fd = open_beneath(ctx.paths.root.parent, path, os.O_WRONLY | os.O_APPEND)
    except OSError as exc:
        raise SetpointError(f"Setpoint's audit record '{event}' could not be written to {path} ({exc.strerror}): "
                            "a part of that path is not what Setpoint made",
                            f"see who changed it (ls -la {path.parent.parent}), then run: setpoint up {ctx.spec.name}") from None
    try:
        os.write(fd, AuditTrail.record(event, by=f"setpoint ({operator})", **fields))
    finally:
        os.close(fd)


DURATION = re.compile(r"^(\d+)([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta | None:
    """`30s`, `10m`, `2h`, `1d` as a duration; None for anything else."""
    match = DURATION.match(text.strip())
    return timedelta(**{UNITS[match[2]]: int(match[1])}) if match else None


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """`10m`, `2h`, `1d` (ago), or an ISO 8601 time."""
    if not text:
        return None
    now = now or datetime.now(timezone.utc)
    duration = parse_duration(text)
    if duration is not None:
        return now - duration
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"'{text}' is not a duration or a time", "use 30s, 10m, 2h, 1d or a time like 2026-11-30T08:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def wait_for(home: Home, name: str, component: str, text: str, timeout: float = 10) -> float:
    """Seconds until a record of `component` containing `text` is in the store."""
    started = time.monotonic()
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    wait_until(lambda: any(True for _ in read(home, name, [component], since, grep=text)), timeout,
               SetpointError(f"the log store has no {component} record of {name} within {timeout:.0f} s",
                             f"see {home.logstore_dir}/rsyslog.log, then run: setpoint up {name}"), interval=0.25)
    return time.monotonic() - started


# --- retention -----------------------------------------------------------------------------

def prune(home: Home, today: date | None = None) -> list[Path]:
    """Delete the day files past each instance's retention (its spec's, or the defaults for an
    instance that is gone); return them. The records are the store account's: root walks them
    through directory descriptors and deletes only regular files, so a link that account put in
    a directory's place leads it nowhere else."""
    from setpoint.runtime.local.instance import saved_spec

    today = today or datetime.now(timezone.utc).date()
    removed = []
    base = home.logstore_dir / "records"
    try:
        records = open_beneath(home.root, base, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return removed
    try:
        for instance, instance_fd in _subdirectories(records):
            spec = saved_spec(home.instance(instance)) if instance != HOST else None
            keep = spec.logs.retention_days if spec else DEFAULT_RETENTION_DAYS
            keep_audit = spec.logs.audit_retention_days if spec else DEFAULT_AUDIT_RETENTION_DAYS
            for component, fd in _subdirectories(instance_fd):
                days = keep_audit if component == AUDIT else keep
                for entry in os.scandir(fd):
                    day = _day_of(Path(entry.name)) if entry.name.endswith(".log") else None
                    if day is not None and (today - day).days >= days and entry.is_file(follow_symlinks=False):
                        os.unlink(entry.name, dir_fd=fd)
                        removed.append(base / instance / component / entry.name)
    finally:
        os.close(records)
    return removed


def _subdirectories(parent: int) -> Iterator[tuple[str, int]]:
    """The directories in the open directory `parent` (never a link), each with its descriptor,
    open while the caller looks at it."""
    for entry in os.scandir(parent):
        try:
            fd = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
        except OSError:  # a file or a link
            continue
        try:
            yield entry.name, fd
        finally:
            os.close(fd)
