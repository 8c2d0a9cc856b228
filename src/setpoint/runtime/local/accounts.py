"""The OS accounts of a host's instances, and what each one may touch.

Two accounts serve an instance when Setpoint runs as root:
- the data user (`setpoint`) runs PostgreSQL and pgBackRest, owns their files, the backups and
  the instance's secret store; it is the only peer-authenticated superuser of each cluster, and
  no process reachable from the web runs as it (it is shared by the instances of the host);
- the instance's Superset account (`sp-NAME`, see home.superset_account) runs the web, worker
  and beat processes and the instance's Redis, which holds nothing but Superset's own data. It
  reads the instance's configuration and superset-secrets.json and writes only its SUPERSET_HOME
  and Redis's data. It connects to its metadata over TCP with a password role that is no
  superuser, and it cannot open another instance's directory, nor its own instance's PostgreSQL
  files and socket, logs, backups or secret store.
"""

from __future__ import annotations

import pwd
from dataclasses import dataclass
from pathlib import Path

from setpoint import proc
from setpoint.errors import SetpointError
from setpoint.home import chown, is_root, owner_differs
from setpoint.render import InstanceContext


@dataclass(frozen=True)
class Layout:
    """One directory of an instance: who owns it, which group may read it, its mode."""

    path: Path
    owner: str
    group: str
    mode: int


def instance_layout(ctx: InstanceContext) -> list[Layout]:
    """Every directory of an instance, parents first."""
    paths, data, superset = ctx.paths, ctx.service_user, ctx.superset_user
    return [
        # Superset's account may traverse these to its configuration and SUPERSET_HOME.
        Layout(paths.root, data, superset, 0o750),
        Layout(paths.config, data, superset, 0o750),
        Layout(paths.data, data, superset, 0o750),
        Layout(paths.superset_home, superset, superset, 0o700),
        Layout(paths.metrics_dir, superset, superset, 0o700),
        Layout(paths.audit_dir, superset, superset, 0o700),
        Layout(paths.redis_data, superset, superset, 0o700),
        # The data user's alone.
        Layout(paths.run, data, data, 0o700),
        Layout(paths.logs, data, data, 0o750),
        Layout(paths.backup, data, data, 0o700),
    ]


def lay_out(ctx: InstanceContext) -> list[str]:
    """Create the instance's accounts and directories, and give each directory to its owner;
    return what changed (an instance from before the accounts were separated moves in place)."""
    changed = []
    if is_root() and ensure_account(ctx.superset_user, "Superset account"):
        changed.append(f"created the account {ctx.superset_user} for {ctx.spec.name}'s Superset processes")
    for entry in instance_layout(ctx):
        existed = entry.path.exists()
        entry.path.mkdir(parents=True, exist_ok=True)
        if not is_root():
            continue
        if owner_differs(entry.path, entry.owner, entry.group) or entry.path.stat().st_mode & 0o777 != entry.mode:
            # SUPERSET_HOME and Redis's data change hands with everything in them.
            moved = entry.owner == ctx.superset_user and entry.path.owner() != entry.owner
            chown(entry.path, entry.owner, entry.group, recursive=moved)
            entry.path.chmod(entry.mode)
            if existed:
                changed.append(f"gave {entry.path} to {entry.owner}:{entry.group} ({entry.mode:04o})")
    return changed


USERADD_NAME_IN_USE = 9  # useradd's exit status when the name (or its group) exists


def ensure_account(user: str, purpose: str = "service user") -> bool:
    """Create an unprivileged system account (no home, no shell, a group of its own); return
    whether it was new."""
    if account_exists(user):
        return False
    if not is_root():
        raise SetpointError(f"the {purpose} {user} does not exist", "run setpoint as root once to create it")
    result = proc.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", user],
        what=f"creating the {purpose} {user}", check=False,
    )
    if result.returncode == USERADD_NAME_IN_USE and account_exists(user):
        return False  # another `up` (of another home on this host) created it a moment ago
    if not result.ok:
        raise SetpointError(f"could not create the {purpose} {user}: {result.stderr.strip()}",
                            "check /etc/passwd and /etc/group for a conflicting entry, then run the command again")
    return True


def remove_account(user: str) -> bool:
    """Delete a system account and its group (as root); return whether there was one."""
    if not is_root() or not account_exists(user):
        return False
    proc.run(["userdel", user], what=f"deleting the account {user}")
    return True


def account_exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False
