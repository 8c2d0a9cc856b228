"""Start one process of an instance inside the instance's cgroup, as its account.

supervisord runs `python -m setpoint.runtime.local.confine --group G --user U --limits FILE --
COMMAND...` as root. It creates the cgroup with the limits of FILE (JSON, rendered by `up`) if
the host has none yet (after a reboot), joins it, drops to the process's account for good, and becomes
COMMAND (exec keeps the pid supervisord watches). Everything COMMAND forks inherits the cgroup.
The limits are not on the command line: `up` changes them on the live cgroup, restarting nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import sys
from pathlib import Path

from setpoint.services.cgroup import host_cgroups
from setpoint.spec.sizing import Limits


def confine_prefix(python: str, group: str, user: str, limits: Path) -> list[str]:
    """The start of a command line that runs what follows it inside `group`, as `user`."""
    return [python, "-m", "setpoint.runtime.local.confine", "--group", group, "--user", user, "--limits", str(limits), "--"]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="setpoint-confine")
    parser.add_argument("--group", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--limits", required=True, help="JSON file: memory_mb, cpus, pids")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run")
    cgroups = host_cgroups()
    try:
        if cgroups is None:
            raise OSError("this host has no writable cgroup with the memory, cpu and pids controllers")
        with open(args.limits) as handle:
            cgroups.apply(args.group, Limits(**json.load(handle)))
        cgroups.join(args.group, os.getpid())
    except OSError as exc:
        # Never run unconfined: supervisord shows the failure and retries.
        sys.exit(f"setpoint: cannot confine {command[0]} to cgroup {args.group}: {exc}")
    account = pwd.getpwnam(args.user)
    os.initgroups(args.user, account.pw_gid)  # its own groups, none of root's
    os.setgid(account.pw_gid)
    os.setuid(account.pw_uid)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
