"""The cgroup v2 file protocol, on a scratch tree laid out as the kernel lays out /sys/fs/cgroup on
a systemd host (these machines mount the controllers on v1 only: tests/scenarios/test_containment.py
proves the limits with the real kernel there)."""

from pathlib import Path

from setpoint.services.cgroup import CgroupV1, CgroupV2, host_cgroups, v1_shares, v2_weight
from setpoint.spec.sizing import Limits


def unified(tmp_path: Path, controllers: str = "cpuset cpu io memory hugetlb pids rdma misc") -> Path:
    (tmp_path / "cgroup.controllers").write_text(controllers + "\n")
    (tmp_path / "cgroup.subtree_control").write_text("\n")
    return tmp_path


def test_limits_are_written_in_v2_terms_and_read_back(tmp_path):
    root = unified(tmp_path)
    cgroups = CgroupV2(root)
    group = "setpoint/0123abcd/alpha"
    cgroups.apply(group, Limits(memory_mb=1536, cpus=1.5, pids=400, cpu_weight=2048))
    leaf = root / group
    assert (leaf / "memory.max").read_text() == str(1536 * 2**20)
    assert (leaf / "cpu.max").read_text() == "150000 100000"
    assert (leaf / "cpu.weight").read_text() == "200"
    assert (leaf / "pids.max").read_text() == "400"
    # Every ancestor hands the three controllers down; the leaf, which holds the processes, does not.
    for ancestor in (root, root / "setpoint", root / "setpoint" / "0123abcd"):
        assert set((ancestor / "cgroup.subtree_control").read_text().split()) == {"+memory", "+cpu", "+pids"}
    assert not (leaf / "cgroup.subtree_control").exists()
    assert cgroups.limits(group) == Limits(memory_mb=1536, cpus=1.5, pids=400, cpu_weight=2048)
    cgroups.apply(group, Limits(memory_mb=1024, cpus=None, pids=300))
    assert (leaf / "cpu.max").read_text() == "max 100000"
    assert cgroups.limits(group) == Limits(memory_mb=1024, cpus=None, pids=300)


def test_usage_and_members_are_read_from_the_leaf(tmp_path):
    cgroups = CgroupV2(unified(tmp_path))
    group = "setpoint/0123abcd/alpha"
    cgroups.apply(group, Limits(memory_mb=512, cpus=None, pids=100))
    leaf = tmp_path / group
    (leaf / "memory.current").write_text(str(300 * 2**20))
    (leaf / "memory.peak").write_text(str(450 * 2**20))
    (leaf / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n")
    (leaf / "pids.current").write_text("37\n")
    cgroups.join(group, 4242)
    usage = cgroups.usage(group)
    assert (usage.memory_mb, usage.memory_peak_mb, usage.oom_kills, usage.pids) == (300, 450, 2, 37)
    assert cgroups.pids(group) == [4242]
    (leaf / "memory.peak").unlink()  # before Linux 5.19
    assert cgroups.usage(group).memory_peak_mb == 300


def test_the_default_weight_is_the_default_on_both_scales():
    assert v2_weight(1024) == 100 and v1_shares(100) == 1024
    assert v1_shares(v2_weight(512)) == 512 and v2_weight(2) == 1 and v2_weight(10**7) == 10_000


def test_the_host_gets_v1_where_it_mounts_the_controllers_else_v2_else_none(tmp_path):
    assert host_cgroups(tmp_path) is None
    unified(tmp_path, "cpuset cpu io")  # no memory, no pids: a container that was handed too little
    assert host_cgroups(tmp_path) is None
    unified(tmp_path)
    assert isinstance(host_cgroups(tmp_path), CgroupV2)
    for controller in ("memory", "cpu", "pids"):
        (tmp_path / controller).mkdir()
        (tmp_path / controller / "cgroup.procs").write_text("")
    assert isinstance(host_cgroups(tmp_path), CgroupV1)
