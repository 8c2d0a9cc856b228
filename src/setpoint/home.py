"""SETPOINT_HOME: where the platform keeps each instance's config, secrets, state, logs and data."""

from __future__ import annotations

import errno
import getpass
import grp
import hashlib
import json
import os
import pwd
import stat
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from setpoint.errors import SetpointError

SERVICE_USER = "setpoint"
CADDY_USER = "setpoint-caddy"
MONITOR_USER = "setpoint-monitor"
LOGSTORE_USER = "setpoint-logs"
SYSTEM_HOME = Path("/var/lib/setpoint")


def is_root() -> bool:
    return os.geteuid() == 0


def service_user() -> str:
    """The unprivileged account services run as: `setpoint` when Setpoint runs as root."""
    return SERVICE_USER if is_root() else getpass.getuser()


def caddy_user() -> str:
    """The account of the host's Caddy (root: `setpoint-caddy`, which holds the local CA's keys
    and reads nothing of the instances)."""
    return CADDY_USER if is_root() else getpass.getuser()


def monitor_user() -> str:
    """The account of the host's Prometheus and node exporter (root: `setpoint-monitor`)."""
    return MONITOR_USER if is_root() else getpass.getuser()


def logstore_user() -> str:
    """The account of the host's log store (root: `setpoint-logs`, which may read the instances'
    logs and audit files and nothing else of theirs)."""
    return LOGSTORE_USER if is_root() else getpass.getuser()


def superset_account(home_root: Path, name: str) -> str:
    """The OS account of one instance's Superset processes (web, worker, beat) and its Redis.

    `sp-NAME` on the system home; other homes (a developer's, the test suite's) add a tag of
    their path, so that two homes with an instance of the same name never share an account.
    Linux account names have at most 32 characters: a longer one keeps its start and a digest.
    """
    return _instance_account("sp", home_root, name)


def data_account(home_root: Path, name: str) -> str:
    """The OS account of one instance's PostgreSQL and pgBackRest (`spd-NAME`, tagged like
    superset_account): it owns the instance's database files, backups and secret store, and
    no other instance's."""
    return _instance_account("spd", home_root, name)


def _instance_account(prefix: str, home_root: Path, name: str) -> str:
    # The prefixes differ in length before the first dash, so no two accounts of any instances
    # can share a name.
    tag = "" if home_root == SYSTEM_HOME else hashlib.sha256(str(home_root).encode()).hexdigest()[:4]
    account = f"{prefix}{tag}-{name}"
    if len(account) > 32:
        account = f"{account[:23]}-{hashlib.sha256(account.encode()).hexdigest()[:8]}"
    return account


def default_home() -> Path:
    """SETPOINT_HOME, else a system path when root, else the user's data directory."""
    if os.environ.get("SETPOINT_HOME"):
        return Path(os.environ["SETPOINT_HOME"]).absolute()
    return SYSTEM_HOME if is_root() else Path(platformdirs.user_data_dir("setpoint"))


@dataclass(frozen=True)
class InstancePaths:
    """The directory of one instance and everything in it."""

    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    config = property(lambda self: self.root / "config")
    data = property(lambda self: self.root / "data")
    logs = property(lambda self: self.root / "logs")
    # The data account's own logs: pgBackRest's, and those of the clusters it restores.
    data_logs = property(lambda self: self.logs / "pgbackrest")
    run = property(lambda self: self.root / "run")
    spec_file = property(lambda self: self.root / "spec.yaml")
    state_file = property(lambda self: self.root / "state.json")
    secrets_file = property(lambda self: self.root / "secrets.json")
    # The few secrets Superset's own processes need, readable by their account (see secret.py).
    superset_secrets_file = property(lambda self: self.config / "superset-secrets.json")
    pg_data = property(lambda self: self.data / "postgres")
    redis_data = property(lambda self: self.data / "redis")
    superset_home = property(lambda self: self.data / "superset")
    # The digests of password hashes the scorecard found sound (superset_side/facts.py).
    facts_cache = property(lambda self: self.data / "superset" / "facts-cache.json")
    # Where every Superset process of the instance writes its Prometheus samples.
    metrics_dir = property(lambda self: self.data / "superset" / "metrics")
    # The Celery worker writes its process id here once it consumes from the broker.
    worker_ready_file = property(lambda self: self.data / "superset" / "worker.ready")
    # Where Superset's processes append the instance's audit trail for the host's log store: in
    # root's directory (see logstore.prepare_audit_trail), since the store follows a link.
    audit_dir = property(lambda self: self.root / "audit")
    audit_log = property(lambda self: self.root / "audit" / "audit.log")
    # Where an earlier Setpoint kept it, in the Superset account's home.
    former_audit_dir = property(lambda self: self.data / "superset" / "audit")
    backup = property(lambda self: self.root / "backup")
    # What Setpoint recorded of the instance's backups, drills and exports: root's, beside the spec,
    # never in backup/ (the data account's, which could have swapped it).
    records_file = property(lambda self: self.root / "records.json")
    # The scheduled jobs running now, and in which process (backup/schedule.py): while it exists,
    # they have not ended well.
    jobs_file = property(lambda self: self.root / "jobs.json")
    # Caddy's account appends to it, in root's access-logs/ (see appendable_file), since the log
    # store, which owns it, follows a link.
    access_log = property(lambda self: self.root.parent.parent / "access-logs" / f"{self.name}.access.log")
    # Where an earlier Setpoint had Caddy write it, in Caddy's own directory.
    former_access_log = property(lambda self: self.root.parent.parent / "caddy" / "logs" / f"{self.name}.access.log")

    def exists(self) -> bool:
        return self.state_file.exists()

    def read_state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def write_state(self, state: dict[str, Any]) -> None:
        write_file(self.state_file, json.dumps(state, indent=2, sort_keys=True) + "\n")


@dataclass(frozen=True)
class Home:
    """The platform home: instances/, venvs/, caddy/ and supervisor/."""

    root: Path

    instances_dir = property(lambda self: self.root / "instances")
    venvs_dir = property(lambda self: self.root / "venvs")
    caddy_dir = property(lambda self: self.root / "caddy")
    supervisor_dir = property(lambda self: self.root / "supervisor")
    # Caddy's output, which supervisord (root) appends to: in root's directory, not Caddy's, where
    # Caddy's account could have swapped it for a link to any file.
    caddy_log = property(lambda self: self.supervisor_dir / "caddy.log")
    access_logs_dir = property(lambda self: self.root / "access-logs")
    monitoring_dir = property(lambda self: self.root / "monitoring")
    logstore_dir = property(lambda self: self.root / "logstore")

    def programs_conf(self, name: str) -> Path:
        """The supervisord include file of an instance: present while the instance should run."""
        return self.supervisor_dir / "conf.d" / f"{name}.conf"

    def instance(self, name: str) -> InstancePaths:
        return InstancePaths(self.instances_dir / name)

    def instance_names(self) -> list[str]:
        if not self.instances_dir.exists():
            return []
        return sorted(p.name for p in self.instances_dir.iterdir() if (p / "state.json").exists())


def open_beneath(anchor: Path, path: Path, flags: int = os.O_RDONLY, mode: int = 0o600,
                 replace_link: bool = False, make_dirs_for: str | None = None) -> int:
    """Open `path`, inside `anchor`, without following a symbolic link anywhere below `anchor`, and
    only if it is a regular file (or, with O_DIRECTORY, a directory): a file descriptor.

    Root acts in directories an instance's accounts can change (the Superset account's audit/, the
    data account's instance directory): a link planted there must not lead it to another file,
    such as another tenant's or the host's. Each directory is opened relative to the last with
    O_NOFOLLOW, so a link swapped in meanwhile is met, never followed. `anchor` must be a directory
    only root changes (the home). A link met raises OSError (ELOOP); with `replace_link`, a link
    in the last place is removed and the file created there instead (`flags` with O_CREAT). With
    `make_dirs_for`, missing directories on the way are created (0700) and given to that account.
    """
    parts = path.relative_to(anchor).parts
    directory = os.open(anchor, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            made = False
            if make_dirs_for is not None:
                try:
                    os.mkdir(part, 0o700, dir_fd=directory)
                    made = True
                except FileExistsError:
                    pass
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=directory)
            os.close(directory)
            directory = inner
            if made and is_root():
                os.fchown(directory, *account_ids(make_dirs_for))
        try:
            fd = os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_NONBLOCK, mode, dir_fd=directory)
        except OSError as exc:
            if not (replace_link and exc.errno == errno.ELOOP):
                raise
            os.unlink(parts[-1], dir_fd=directory)
            fd = os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_EXCL, mode, dir_fd=directory)
    finally:
        os.close(directory)
    kind = os.fstat(fd).st_mode
    if not (stat.S_ISDIR(kind) if flags & os.O_DIRECTORY else stat.S_ISREG(kind)):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    os.set_blocking(fd, True)
    return fd


def own_directory(anchor: Path, path: Path, user: str, group: str | None = None, mode: int = 0o700,
                  recursive: bool = False) -> tuple[bool, bool]:
    """Make `path`, inside `anchor`, a directory of `user`:`group` with `mode` (created when
    missing), never through a symbolic link (see open_beneath): its owner and mode change on its
    descriptor. With `recursive`, when its owner changes, so does everything below it, walked with
    os.fwalk, which follows no link. Return whether it existed and whether anything changed.

    Root gives directories to the instances' accounts in directories those accounts can change:
    a path's ownership and mode changed through a link another account planted would have given
    it any directory of the host, and everything in it."""
    try:
        parent = os.open(anchor, os.O_RDONLY | os.O_DIRECTORY) if path.parent == anchor \
            else open_beneath(anchor, path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            try:
                os.mkdir(path.name, mode, dir_fd=parent)
                existed = False
            except FileExistsError:
                existed = True
            fd = os.open(path.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
        finally:
            os.close(parent)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        raise SetpointError(f"{path} (or a directory above it) is a link or a file where Setpoint keeps a directory; "
                            "it was left as it is, since it could lead root to another place",
                            f"see what it is and who made it (ls -la {path.parent}), remove it, then run the command again") from None
    try:
        if not is_root():
            return existed, False
        uid, gid = account_ids(user, group)
        if recursive and os.fstat(fd).st_uid != uid:
            for _, folders, files, at in os.fwalk(".", dir_fd=fd):
                for name in folders + files:
                    os.chown(name, uid, gid, dir_fd=at, follow_symlinks=False)
        return existed, _hand_over(fd, (uid, gid), mode)
    finally:
        os.close(fd)


def _hand_over(fd: int, owner: tuple[int, int], mode: int) -> bool:
    """Give the open file or directory `fd` to `owner` (uid, gid) with `mode`; whether it changed."""
    kept = os.fstat(fd)
    if (kept.st_uid, kept.st_gid, stat.S_IMODE(kept.st_mode)) == (*owner, mode):
        return False
    os.fchown(fd, *owner)
    os.fchmod(fd, mode)
    return True


def appendable_file(anchor: Path, path: Path, writer: str, mode: int, owner: str = "root") -> bool:
    """Make `path`, inside `anchor` in a directory of root's, a regular file of `owner`'s that the
    group of the account `writer` appends to (`mode`), created when missing, a link in its place
    replaced; return whether its owner or mode changed.

    Files an unprivileged account writes and another reads (the log store reads them, and would
    follow a link): kept in root's directories, the writer can neither replace them nor plant a
    link beside them."""
    fd = open_beneath(anchor, path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode=mode, replace_link=True)
    try:
        if is_root():
            return _hand_over(fd, (account_ids(owner)[0], account_ids(writer)[1]), mode)
        kept = os.fstat(fd)
        return _hand_over(fd, (kept.st_uid, kept.st_gid), mode)
    finally:
        os.close(fd)


ACL_XATTR = "system.posix_acl_access"
_UNDEFINED_ID = 0xFFFFFFFF
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20


def acl_with_reader(acl: bytes | None, mode: int, uid: int, perm: int) -> bytes:
    """The access ACL `acl` (the kernel's xattr form; or, when None, the plain `mode`'s) with the
    account `uid`'s entry set to `perm` (4 read, 1 traverse) and the mask letting every named
    entry through. The owning group keeps its own permissions."""
    if acl:
        entries = {(tag, ident): granted for tag, granted, ident in struct.iter_unpack("<HHI", acl[4:])}
    else:
        entries = {(_USER_OBJ, _UNDEFINED_ID): mode >> 6 & 7, (_GROUP_OBJ, _UNDEFINED_ID): mode >> 3 & 7,
                   (_OTHER, _UNDEFINED_ID): mode & 7}
    entries[(_USER, uid)] = perm
    entries[(_MASK, _UNDEFINED_ID)] = entries[(_GROUP_OBJ, _UNDEFINED_ID)]
    for (tag, _), granted in list(entries.items()):
        if tag in (_USER, _GROUP):
            entries[(_MASK, _UNDEFINED_ID)] |= granted
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, granted, ident)
                                           for (tag, ident), granted in sorted(entries.items()))


def let_read(anchor: Path, directory: Path, user: str, perm: int) -> bool:
    """Give the account `user` `perm` on `directory` (inside `anchor`; 5 to list and read what is
    in it, 1 to pass through it) with a POSIX ACL entry, leaving its owner, group and mode as
    they are; never through a link (see open_beneath). Whether it changed (a no-op unless root).

    The log store's account reads the instances' logs this way, without joining the accounts'
    groups, which would also open their secrets and data."""
    if not is_root():
        return False
    fd = open_beneath(anchor, directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            acl = os.getxattr(fd, ACL_XATTR)
        except OSError as exc:
            if exc.errno != errno.ENODATA:
                raise
            acl = None
        wanted = acl_with_reader(acl, stat.S_IMODE(os.fstat(fd).st_mode), account_ids(user)[0], perm)
        if wanted == acl:
            return False
        os.setxattr(fd, ACL_XATTR, wanted)
        return True
    finally:
        os.close(fd)


def files_beneath(anchor: Path, directory: Path) -> list[Path]:
    """Every regular file below `directory` (inside `anchor`), found without following a symbolic
    link (see `open_beneath`); none when `directory` is missing or a link."""
    try:
        top = open_beneath(anchor, directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return []
    try:
        return sorted(directory / folder / name for folder, _, names, fd in os.fwalk(".", dir_fd=top)
                      for name in names if stat.S_ISREG(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode))
    finally:
        os.close(top)


def write_file(path: Path, text: str, mode: int = 0o644, owner: str | None = None, group: str | None = None) -> bool:
    """Write atomically (temp file and rename); return whether the content or mode changed (a
    file that only changes hands is given to its owner in place). What is in its place is read
    only when it is a regular file: a link or a FIFO there is replaced, never followed or waited on."""
    if _regular_file_text(path) == (text, mode):
        if owner and owner_differs(path, owner, group):
            chown(path, owner, group)
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        if owner:
            chown(Path(tmp), owner, group)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def _regular_file_text(path: Path) -> tuple[str, int] | None:
    """The text and mode of `path` when it is a regular file (not through a link, never waiting on
    a FIFO); None otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        kept = os.fstat(fd)
        if not stat.S_ISREG(kept.st_mode):
            return None
        try:
            return handle.read().decode(), stat.S_IMODE(kept.st_mode)
        except UnicodeDecodeError:
            return None


def chown(path: Path, user: str, group: str | None = None) -> None:
    """Give a path (never a link's target) to `user` and `group` (by default the user's own
    group); a no-op unless root. A whole directory changes hands through own_directory."""
    if not is_root():
        return
    os.lchown(path, *account_ids(user, group))


def account_ids(user: str, group: str | None = None) -> tuple[int, int]:
    """The uid of `user` and the gid of `group` (by default the user's own group)."""
    entry = pwd.getpwnam(user)
    return entry.pw_uid, grp.getgrnam(group).gr_gid if group else entry.pw_gid


def owner_differs(path: Path, user: str, group: str | None = None) -> bool:
    """Whether `path` belongs to another user or group than these (never, unless root)."""
    if not is_root():
        return False
    st = path.lstat()
    return (st.st_uid, st.st_gid) != account_ids(user, group)


def unreachable_parent(path: Path, user: str) -> Path | None:
    """The first ancestor of `path` that `user` cannot traverse, if any (only checked as root)."""
    if not is_root() or user == "root":
        return None
    uid = pwd.getpwnam(user).pw_uid
    for parent in reversed(path.absolute().parents):
        st = parent.stat()
        if st.st_uid == uid:
            continue
        if not st.st_mode & 0o001:
            return parent
    return None
