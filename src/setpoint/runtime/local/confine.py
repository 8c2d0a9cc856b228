"""Start one process of an instance inside the instance's cgroup, as its service user.

supervisord runs `python -m setpoint.runtime.local.confine --group G --user U --memory-mb M
--cpus C --pids P -- COMMAND...` as root. It creates the cgroup with its limits if the host has
none yet (after a reboot), joins it, drops to the service user for good, and becomes COMMAND
(exec keeps the pid supervisord watches). Everything COMMAND forks inherits the cgroup.
"""

from __future__ import annotations

import argparse
import os
import pwd
import sys

from setpoint.services.cgroup import CgroupV1
from setpoint.spec.sizing import Limits


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="setpoint-confine")
    parser.add_argument("--group", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--cpus", type=float, required=True)
    parser.add_argument("--pids", type=int, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run")
    cgroups = CgroupV1()
    try:
        cgroups.apply(args.group, Limits(args.memory_mb, args.cpus, args.pids))
        cgroups.join(args.group, os.getpid())
    except OSError as exc:
        # Never run unconfined: supervisord shows the failure and retries.
        sys.exit(f"setpoint: cannot confine {command[0]} to cgroup {args.group}: {exc}")
    account = pwd.getpwnam(args.user)
    os.setgroups([])
    os.setgid(account.pw_gid)
    os.setuid(account.pw_uid)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
