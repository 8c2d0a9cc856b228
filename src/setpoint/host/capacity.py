"""What the host holds and how much more fits: memory and CPU per instance, free disk, room left.

Measured from /proc (proportional set size, so shared pages are split fairly between processes)
and statvfs; `require_room` refuses a new instance that would not fit before anything is written.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from setpoint.errors import SetpointError
from setpoint.home import Home
from setpoint.runtime.local.instance import confinement, limits_of, saved_spec
from setpoint.runtime.local.lifecycle import desired_state
from setpoint.runtime.local.platform import load_platform
from setpoint.services.supervisor import program_names
from setpoint.spec import InstanceSpec
from setpoint.spec.sizing import Limits, cpu_text, resource_limits

# Room the host keeps for itself, the kernel's caches and Setpoint's own commands.
RESERVED_MEMORY_MIB = 512
# A new instance's data, logs and its first backups, WAL included.
DISK_PER_INSTANCE_MIB = 2048
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class InstanceUsage:
    name: str
    desired: str
    processes: int
    memory_mib: float
    cpu_percent: float
    memory_limit_mib: int
    cpus_limit: float | None  # None: no cap (cpu, its weight, says what it may use)
    pids_limit: int
    cpu: str


@dataclass
class DiskRoom:
    label: str
    path: str
    free_mib: int
    total_mib: int


@dataclass
class HostCapacity:
    """`setpoint host`: the instances against their limits, the host's memory and disks, and how
    many more instances of the default size fit beside the limits of those that are up."""

    memory_total_mib: int
    memory_available_mib: int
    memory_committed_mib: int
    default_limit_mib: int
    more_instances: int
    limited_by: str
    limits_enforced: bool
    instances: list[InstanceUsage] = field(default_factory=list)
    disks: list[DiskRoom] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def meminfo_mib() -> tuple[int, int]:
    """(total, available) memory of the host."""
    values = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        values[key] = int(rest.split()[0]) // 1024
    return values["MemTotal"], values["MemAvailable"]


def disk_free_mib(path: Path) -> tuple[int, int]:
    """(free, total) MiB on the filesystem of `path` (or of its nearest existing ancestor)."""
    while not path.exists():
        path = path.parent
    usage = shutil.disk_usage(path)
    return usage.free // 2**20, usage.total // 2**20


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def process_tree(roots: list[int]) -> list[int]:
    """`roots` and every process below them."""
    tree, seen, stack = _children(), [], list(roots)
    while stack:
        pid = stack.pop()
        if pid and pid not in seen:
            seen.append(pid)
            stack.extend(tree.get(pid, []))
    return seen


def pss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0


def measure(home: Home, pids_of: dict[str, list[int]], desired: dict[str, str], limits: dict[str, Limits],
            enforced: bool, sample_s: float = 0.5) -> HostCapacity:
    """Usage of each instance (its supervised processes and their children) and the host's room."""
    trees = {name: process_tree(pids) for name, pids in pids_of.items()}
    before = {pid: cpu_ticks(pid) for pids in trees.values() for pid in pids}
    time.sleep(sample_s)
    usages = []
    for name in sorted(desired):
        pids = trees.get(name, [])
        ticks = sum(cpu_ticks(pid) - before.get(pid, 0) for pid in pids)
        limit = limits[name]
        usages.append(InstanceUsage(name, desired[name], len(pids), round(sum(pss_mib(p) for p in pids), 1),
                                    round(100 * ticks / CLOCK_TICKS / sample_s, 1),
                                    limit.memory_mb, limit.cpus, limit.pids, cpu_text(limit)))
    total, available = meminfo_mib()
    committed = sum(limits[n].memory_mb for n in desired if desired[n] == "up")
    default_limit = resource_limits(InstanceSpec.model_fields["concurrent_users"].default).memory_mb
    disks = [DiskRoom("instances", str(home.instances_dir), *disk_free_mib(home.instances_dir))]
    for name in sorted(desired):
        repo = home.instance(name).backup / "repo"
        if repo.exists() and os.stat(repo).st_dev != os.stat(home.instances_dir).st_dev:
            disks.append(DiskRoom(f"backups of {name}", str(repo), *disk_free_mib(repo)))
    by_memory = max(0, (total - RESERVED_MEMORY_MIB - committed) // default_limit)
    by_disk = min(d.free_mib for d in disks) // DISK_PER_INSTANCE_MIB
    return HostCapacity(total, available, committed, default_limit, min(by_memory, by_disk),
                        "memory" if by_memory <= by_disk else "disk", enforced, usages, disks)


def require_room(home: Home, spec: InstanceSpec, others: dict[str, Limits], memory=meminfo_mib,
                 disk=disk_free_mib) -> None:
    """Refuse a new instance whose memory limit does not fit beside the limits of the instances
    that are up (`others`), or that the disk cannot hold."""
    need = limits_of(spec).memory_mb
    committed = sum(limit.memory_mb for limit in others.values())
    total, _ = memory()
    if committed + need > total - RESERVED_MEMORY_MIB:
        raise SetpointError(
            f"instance '{spec.name}' would be limited to {need:,} MiB of memory, the {len(others)} instance(s) up "
            f"are limited to {committed:,} MiB together, and this host has {total:,} MiB "
            f"({RESERVED_MEMORY_MIB} MiB of it kept for the host)",
            "lower resources.memory_mb or concurrent_users in the spec, stop an instance (setpoint down NAME), "
            "or add memory; see: setpoint host",
        )
    free, _ = disk(home.instances_dir)
    if free < DISK_PER_INSTANCE_MIB:
        raise SetpointError(
            f"instance '{spec.name}' needs {DISK_PER_INSTANCE_MIB:,} MiB of disk and {home.instances_dir} has {free:,} MiB free",
            f"free space on that disk (df -h {home.instances_dir}) or set SETPOINT_HOME to a larger one",
        )


def limits_up(home: Home, except_instance: str = "") -> dict[str, Limits]:
    """The limits of every instance of `home` that should be up."""
    found = {}
    for name in home.instance_names():
        spec = saved_spec(home.instance(name))
        if name != except_instance and spec and desired_state(home, name) == "up":
            found[name] = limits_of(spec)
    return found


def host_capacity(home: Home) -> HostCapacity:
    """`measure` for every instance of `home`, from the pids its supervisord reports."""

    platform = load_platform(home)
    states = platform.supervisor.states() if platform else {}
    names = home.instance_names()
    pids = {n: [s.pid for p, s in states.items() if p in program_names(n) and s.pid] for n in names}
    limits = {n: limits_of(saved_spec(home.instance(n))) for n in names}
    enforced = bool(names) and all(confinement(home, n) for n in names)
    return measure(home, pids, {n: desired_state(home, n) for n in names}, limits, enforced)
