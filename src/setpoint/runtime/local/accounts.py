"""The OS accounts of a host's instances, and what each one may touch.

Two accounts serve an instance when Setpoint runs as root:
- the instance's data account (`spd-NAME`, see home.data_account) runs its PostgreSQL and
  pgBackRest, owns their files, the backups and the instance's secret store; it is the only
  account that reaches the cluster's superuser (over the socket, pg_ident.conf), no process
  reachable from the web runs as it, and it opens nothing of another instance;
- the instance's Superset account (`sp-NAME`, see home.superset_account) runs the web, worker
  and beat processes and the instance's Redis, which holds nothing but Superset's own data. It
  reads the instance's configuration and superset-secrets.json and writes only its SUPERSET_HOME
  and Redis's data. It connects to its metadata over TCP with a password role that is no
  superuser, and it cannot open another instance's directory, nor its own instance's PostgreSQL
  files and socket, logs, backups or secret store.
"""

from __future__ import annotations

import grp
import shutil
import pwd
import time
from dataclasses import dataclass
from pathlib import Path

from setpoint import proc
from setpoint.errors import SetpointError
from setpoint.home import chown, is_root, own_directory, owner_differs, write_file
from setpoint.render import InstanceContext, RenderedFile


@dataclass(frozen=True)
class Layout:
    """One directory of an instance: who owns it, which group may read it, its mode, and whether
    everything in it changes hands with it (a directory holding other accounts' does not)."""

    path: Path
    owner: str
    group: str
    mode: int
    whole: bool = True


def instance_layout(ctx: InstanceContext) -> list[Layout]:
    """Every directory of an instance, parents first."""
    paths, data, superset = ctx.paths, ctx.data_user, ctx.superset_user
    return [
        # Root's own: neither account may rename what root keeps here and trusts (spec.yaml,
        # state.json, records.json, export/, docs/). Both traverse it through the Superset
        # account's group, of which the data account is a member (join_group).
        Layout(paths.root, "root", superset, 0o750, whole=False),
        # Root's too: the code and settings each account runs with (superset_config.py, the
        # PYTHONPATH of Superset's processes, limits.json that root applies), which neither account
        # may change or add to. Each file's group reads it (write_config).
        Layout(paths.config, "root", superset, 0o750, whole=False),
        # Root's: the audit trail, which Superset's processes append to and the log store reads as
        # root (observability/logstore.prepare_audit_trail).
        Layout(paths.audit_dir, "root", superset, 0o750, whole=False),
        # Root's too, traversed by both: the data account must not swap the Superset account's home
        # or Redis's data for links (root gives each below to its owner).
        Layout(paths.data, "root", superset, 0o750, whole=False),
        Layout(paths.superset_home, superset, superset, 0o700),
        Layout(paths.metrics_dir, superset, superset, 0o700),
        Layout(paths.redis_data, superset, superset, 0o700),
        # The data account's alone.
        Layout(paths.pg_data, data, data, 0o700),
        Layout(paths.run, data, data, 0o700),
        # Root's: supervisord, as root, appends each process's output to its file here, and would
        # follow a link another account planted in its place to any file of the host.
        Layout(paths.logs, "root", data, 0o750, whole=False),
        Layout(paths.data_logs, data, data, 0o750),
        Layout(paths.backup, data, data, 0o700),
    ]


def lay_out(ctx: InstanceContext) -> list[str]:
    """Create the instance's accounts and directories, and give each directory to its owner;
    return what changed (an instance from before the accounts were separated moves in place:
    its PostgreSQL must be stopped first, see moving_data)."""
    changed = []
    for account, purpose in ((ctx.data_user, "data account"), (ctx.superset_user, "Superset account")):
        if is_root() and ensure_account(account, purpose):
            changed.append(f"created the account {account} for {ctx.spec.name}'s "
                           + ("PostgreSQL and backups" if account == ctx.data_user else "Superset processes"))
    if is_root() and join_group(ctx.data_user, ctx.superset_user):
        changed.append(f"made {ctx.data_user} a member of the group {ctx.superset_user}, through which it "
                       f"reaches {ctx.paths.root}")
    ctx.paths.root.parent.mkdir(parents=True, exist_ok=True)
    for entry in instance_layout(ctx):
        existed, given = own_directory(ctx.paths.root.parent, entry.path, entry.owner, entry.group, entry.mode,
                                       recursive=entry.whole)
        if existed and given:
            changed.append(f"gave {entry.path} to {entry.owner}:{entry.group} ({entry.mode:04o})")
    cache = ctx.paths.config / "__pycache__"
    if is_root() and (cache.is_symlink() or cache.exists()):
        # Left by an account that could write config/: its bytecode would run before the source.
        if cache.is_symlink():
            cache.unlink()
        else:
            shutil.rmtree(cache)
        changed.append(f"removed {cache}, written by an account that could change config/")
    for planted in (p for p in ctx.paths.logs.iterdir() if p.is_symlink()) if is_root() else ():
        planted.unlink()  # planted while the directory was the data account's (see instance_layout)
        changed.append(f"removed the link {planted}, planted where supervisord writes a log")
    if is_root() and ctx.paths.secrets_file.exists() and owner_differs(ctx.paths.secrets_file, ctx.data_user):
        chown(ctx.paths.secrets_file, ctx.data_user)
        changed.append(f"gave {ctx.paths.secrets_file} to {ctx.data_user}")
    return changed


def write_config(ctx: InstanceContext, rendered: RenderedFile) -> bool:
    """Write one of the instance's rendered files as root's, readable by its group; return whether
    it changed (a file an earlier Setpoint gave the data account changes hands in place)."""
    return write_file(rendered.path, rendered.text, mode=rendered.mode, owner="root",
                      group=rendered.group or ctx.superset_user)


def moving_data(ctx: InstanceContext) -> bool:
    """Whether the instance's PostgreSQL must stop while lay_out runs: its database files belong to
    another account than its data account (an instance from before each had its own), or that
    account is not yet in the group through which it will reach them (a running server keeps the
    groups it started with, and its archiving would lose its configuration)."""
    return (is_root() and (ctx.paths.pg_data / "PG_VERSION").exists()
            and (not account_exists(ctx.data_user) or owner_differs(ctx.paths.pg_data, ctx.data_user)
                 or not is_member(ctx.data_user, ctx.superset_user)))


def join_group(user: str, group: str) -> bool:
    """Make `user` a member of `group`; return whether it was not one already. Setpoint's
    processes take their account's groups when they drop to it (proc.run, confine)."""
    if is_member(user, group):
        return False
    proc.run(["usermod", "--append", "--groups", group, user], what=f"adding {user} to the group {group}",
             hint="check /etc/group for a conflicting entry, then run the command again")
    return True


USERADD_NAME_IN_USE = 9  # useradd's exit status when the name (or its group) exists


def ensure_account(user: str, purpose: str = "service user") -> bool:
    """Create an unprivileged system account (no home, no shell, a group of its own); return
    whether it was new."""
    if account_exists(user):
        return False
    if not is_root():
        raise SetpointError(f"the {purpose} {user} does not exist", "run setpoint as root once to create it")
    # A group of that name outlives its account when userdel found another member in it (an
    # instance's data account, deleted after its Superset account): the new account takes it.
    own_group = ["--gid", user] if group_exists(user) else ["--user-group"]
    result = proc.run(
        ["useradd", "--system", *own_group, "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", user],
        what=f"creating the {purpose} {user}", check=False,
    )
    if result.returncode == USERADD_NAME_IN_USE and account_exists(user):
        return False  # another `up` (of another home on this host) created it a moment ago
    if not result.ok:
        raise SetpointError(f"could not create the {purpose} {user}: {result.stderr.strip()}",
                            "check /etc/passwd and /etc/group for a conflicting entry, then run the command again")
    return True


USERDEL_IN_USE = 8  # userdel's exit status while a process of the account runs


def remove_account(user: str, wait_s: float = 15) -> bool:
    """Delete a system account and its group (as root), once its last process (one still exiting
    after a stop) is gone; return whether there was one."""
    if not is_root() or not account_exists(user):
        return False
    deadline = time.monotonic() + wait_s
    while True:
        result = proc.run(["userdel", user], what=f"deleting the account {user}", check=False)
        if result.returncode != USERDEL_IN_USE or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if not result.ok:
        raise SetpointError(f"could not delete the account {user}: {result.stderr.strip()}",
                            f"stop its processes (pkill -u {user}), then run: userdel {user}")
    return True


def is_member(user: str, group: str) -> bool:
    """Whether `user` is a member of `group` (besides its own); not when there is no such group."""
    try:
        return user in grp.getgrnam(group).gr_mem
    except KeyError:
        return False


def group_exists(group: str) -> bool:
    try:
        grp.getgrnam(group)
        return True
    except KeyError:
        return False


def account_exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False
