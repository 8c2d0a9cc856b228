"""Resource limits of an instance, enforced by the kernel: one cgroup per instance.

Each instance gets `setpoint/HOME_ID/NAME` in the cgroup v1 memory, cpu and pids hierarchies
where the host mounts them, else in the unified cgroup v2 hierarchy with those controllers
(`host_cgroups`). Its processes join it before they drop to the service user
(runtime/local/confine.py), so every child they fork, and every process supervisord restarts,
stays inside. The directories live in memory: after a reboot the first process of an instance
creates its cgroup again.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from setpoint.spec.sizing import Limits

ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "cpu", "pids")
CPU_PERIOD_US = 100_000


def group_name(home_root: Path, instance: str) -> str:
    """`setpoint/HOME_ID/NAME`: two homes on one host may have instances of the same name."""
    return f"setpoint/{hashlib.sha256(str(home_root).encode()).hexdigest()[:8]}/{instance}"


@dataclass(frozen=True)
class Usage:
    memory_mb: float
    memory_peak_mb: float
    oom_kills: int
    pids: int


class CgroupV1:
    """The cgroup v1 memory, cpu and pids controllers, mounted under `root`."""

    def __init__(self, root: Path = ROOT) -> None:
        self.root = root

    def is_available(self) -> bool:
        return all((self.root / c / "cgroup.procs").exists() for c in CONTROLLERS)

    def path(self, controller: str, group: str) -> Path:
        return self.root / controller / group

    def apply(self, group: str, limits: Limits) -> None:
        """Create the group (idempotent) and set its limits."""
        for controller in CONTROLLERS:
            self.path(controller, group).mkdir(parents=True, exist_ok=True)
        memory = self.path("memory", group)
        limit = limits.memory_mb * 2**20
        # The memory+swap limit may not be below the memory limit: raise it first when growing.
        swap = memory / "memory.memsw.limit_in_bytes"
        if swap.exists() and int(swap.read_text()) < limit:
            swap.write_text(str(limit))
        (memory / "memory.limit_in_bytes").write_text(str(limit))
        if swap.exists():
            swap.write_text(str(limit))  # no swap beyond the limit
        cpu = self.path("cpu", group)
        (cpu / "cpu.shares").write_text(str(limits.cpu_weight))
        (cpu / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
        (cpu / "cpu.cfs_quota_us").write_text(str(int(limits.cpus * CPU_PERIOD_US) if limits.cpus else -1))
        (self.path("pids", group) / "pids.max").write_text(str(limits.pids))

    def join(self, group: str, pid: int) -> None:
        for controller in CONTROLLERS:
            (self.path(controller, group) / "cgroup.procs").write_text(str(pid))

    def limits(self, group: str) -> Limits | None:
        try:
            memory = int((self.path("memory", group) / "memory.limit_in_bytes").read_text()) // 2**20
            quota = int((self.path("cpu", group) / "cpu.cfs_quota_us").read_text())
            weight = int((self.path("cpu", group) / "cpu.shares").read_text())
            pids = int((self.path("pids", group) / "pids.max").read_text())
        except (OSError, ValueError):
            return None
        return Limits(memory, quota / CPU_PERIOD_US if quota > 0 else None, pids, weight)

    def usage(self, group: str) -> Usage | None:
        memory = self.path("memory", group)
        try:
            oom = next((int(line.split()[1]) for line in (memory / "memory.oom_control").read_text().splitlines()
                        if line.startswith("oom_kill ")), 0)
            return Usage(
                int((memory / "memory.usage_in_bytes").read_text()) / 2**20,
                int((memory / "memory.max_usage_in_bytes").read_text()) / 2**20,
                oom,
                int((self.path("pids", group) / "pids.current").read_text()),
            )
        except (OSError, ValueError):
            return None

    def pids(self, group: str) -> list[int]:
        try:
            return [int(p) for p in (self.path("pids", group) / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def remove(self, group: str) -> None:
        """Remove an empty group (after its processes stopped)."""
        for controller in CONTROLLERS:
            path = self.path(controller, group)
            if path.exists():
                path.rmdir()


class CgroupV2:
    """The unified cgroup v2 hierarchy mounted at `root`, with the memory, cpu and pids controllers
    (a systemd host's /sys/fs/cgroup). Each group's ancestors hold no process, so each may hand its
    controllers down (cgroup.subtree_control); the instance's processes live in the leaf."""

    def __init__(self, root: Path = ROOT) -> None:
        self.root = root

    def is_available(self) -> bool:
        try:
            offered = set((self.root / "cgroup.controllers").read_text().split())
        except OSError:
            return False
        return set(CONTROLLERS) <= offered and os.access(self.root / "cgroup.subtree_control", os.W_OK)

    def path(self, group: str) -> Path:
        return self.root / group

    def apply(self, group: str, limits: Limits) -> None:
        """Create the group (idempotent), its ancestors handing the controllers down, and set its limits."""
        directory = self.root
        for part in group.split("/"):
            control = directory / "cgroup.subtree_control"
            if not set(CONTROLLERS) <= {c.lstrip("+") for c in (control.read_text().split() if control.exists() else ())}:
                control.write_text(" ".join(f"+{c}" for c in CONTROLLERS))
            directory = directory / part
            directory.mkdir(exist_ok=True)
        (directory / "memory.max").write_text(str(limits.memory_mb * 2**20))
        if (directory / "memory.swap.max").exists():
            (directory / "memory.swap.max").write_text("0")  # no swap beyond the limit
        (directory / "cpu.weight").write_text(str(v2_weight(limits.cpu_weight)))
        quota = str(int(limits.cpus * CPU_PERIOD_US)) if limits.cpus else "max"
        (directory / "cpu.max").write_text(f"{quota} {CPU_PERIOD_US}")
        (directory / "pids.max").write_text(str(limits.pids))

    def join(self, group: str, pid: int) -> None:
        (self.path(group) / "cgroup.procs").write_text(str(pid))

    def limits(self, group: str) -> Limits | None:
        directory = self.path(group)
        try:
            memory = int((directory / "memory.max").read_text()) // 2**20
            quota = (directory / "cpu.max").read_text().split()[0]
            weight = int((directory / "cpu.weight").read_text())
            pids = int((directory / "pids.max").read_text())
        except (OSError, ValueError, IndexError):
            return None
        return Limits(memory, int(quota) / CPU_PERIOD_US if quota != "max" else None, pids, v1_shares(weight))

    def usage(self, group: str) -> Usage | None:
        directory = self.path(group)
        try:
            current = int((directory / "memory.current").read_text())
            peak_file = directory / "memory.peak"  # Linux 5.19 and later
            return Usage(
                current / 2**20,
                (int(peak_file.read_text()) if peak_file.exists() else current) / 2**20,
                next((int(line.split()[1]) for line in (directory / "memory.events").read_text().splitlines()
                      if line.startswith("oom_kill ")), 0),
                int((directory / "pids.current").read_text()),
            )
        except (OSError, ValueError):
            return None

    def pids(self, group: str) -> list[int]:
        try:
            return [int(p) for p in (self.path(group) / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def remove(self, group: str) -> None:
        """Remove an empty group (after its processes stopped)."""
        if self.path(group).exists():
            self.path(group).rmdir()


# cpu.shares (v1, default 1024) and cpu.weight (v2, default 100) say the same thing on two scales.
def v2_weight(shares: int) -> int:
    return min(10_000, max(1, round(shares * 100 / 1024)))


def v1_shares(weight: int) -> int:
    return round(weight * 1024 / 100)


def host_cgroups(root: Path = ROOT) -> CgroupV1 | CgroupV2 | None:
    """The cgroups this host lets Setpoint write: the v1 memory, cpu and pids hierarchies, else the
    unified v2 hierarchy with those controllers; None where neither is there (not root, a
    container without them)."""
    return next((kind for kind in (CgroupV1(root), CgroupV2(root)) if kind.is_available()), None)
