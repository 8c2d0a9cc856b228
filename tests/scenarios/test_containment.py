"""Tenants cannot starve each other: a tenant instance ("hog", instance A) attacks its own limits
with real processes started inside its cgroup, while alpha (instance B) keeps serving."""

import os
import signal
import statistics
import subprocess
import time

import pytest

from setpoint.runtime.local import converge, lifecycle
from setpoint.runtime.local.instance import confinement
from setpoint.services.cgroup import CgroupV1
from setpoint.services.supervisor import Supervisor
from setpoint.spec.sizing import Limits
from tests.conftest import make_spec, report_figure

LIMITS = Limits(memory_mb=1536, cpus=0.5, pids=400)


@pytest.fixture(scope="module")
def hog(home, instance):
    """Instance A: small, with tight limits."""
    if not CgroupV1().is_available():
        pytest.fail("the cgroup v1 memory, cpu and pids controllers are not mounted here (mount | grep cgroup)")
    spec = make_spec("hog", examples=False, concurrent_users=10,
                     resources={"memory_mb": LIMITS.memory_mb, "cpus": LIMITS.cpus, "pids": LIMITS.pids})
    converge.up(home, spec)
    yield spec
    lifecycle.destroy(home, "hog")


def inside(home, name: str, argv: list[str], **kwargs) -> subprocess.Popen:
    """A process started in instance `name`'s cgroup as its service user, as each of its own are."""
    confined = confinement(home, name)
    wrapper = [confined["confine_python"], "-m", "setpoint.runtime.local.confine", "--group", confined["cgroup"],
               "--user", "setpoint", "--limits", str(home.instance(name).config / "limits.json"), "--"]
    return subprocess.Popen(wrapper + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kwargs)


def chart_latencies(admin, count: int = 20) -> list[float]:
    """Seconds per request of alpha's warm sample chart (a cache hit after the first)."""
    chart = admin.find("chart", "slice_name", "Top countries")[0]
    query_context = admin.get(f"/api/v1/chart/{chart['id']}").json()["result"]["query_context"]
    admin.chart_data(query_context)
    times = []
    for _ in range(count):
        started = time.monotonic()
        admin.chart_data(query_context)
        times.append(time.monotonic() - started)
    return times


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def test_every_process_of_an_instance_is_in_its_cgroup_with_its_limits(home, hog):
    group = confinement(home, "hog")["cgroup"]
    assert CgroupV1().limits(group) == LIMITS
    in_group = set(CgroupV1().pids(group))
    for name, state in Supervisor(home).states("hog").items():
        assert state.pid in in_group, name
        with open(f"/proc/{state.pid}/status") as handle:
            uid = int(next(line for line in handle if line.startswith("Uid:")).split()[1])
        assert uid != 0, f"{name} runs as root"
    # Children (gunicorn workers, PostgreSQL backends, Celery's pool) inherit it.
    assert len(in_group) > len(Supervisor(home).states("hog"))


def test_memory_past_the_limit_kills_a_process_of_that_instance_only(home, hog, admin):
    group = confinement(home, "hog")["cgroup"]
    kills_before = CgroupV1().usage(group).oom_kills
    hog_process = inside(home, "hog", ["/usr/bin/python3", "-c",
                                       "x = [bytearray(50 * 2**20) for _ in range(80)]\nprint('not stopped')"])
    _, _ = hog_process.communicate(timeout=120)
    assert hog_process.returncode == -signal.SIGKILL
    assert CgroupV1().usage(group).oom_kills > kills_before
    assert lifecycle.instance_status(home, "alpha").health == "ok"
    assert chart_latencies(admin, count=2)
    started = time.monotonic()
    while lifecycle.instance_status(home, "hog").health != "ok":
        assert time.monotonic() - started < 60, "hog did not recover within 60 s"
        time.sleep(1)
    report_figure(f"hog healthy {time.monotonic() - started:.1f} s after its out-of-memory kill")


def test_a_fork_bomb_stops_at_the_pids_limit(home, hog):
    bomb = ("import os, time\n"
            "children = []\n"
            "try:\n"
            "    while len(children) < 5000:\n"
            "        pid = os.fork()\n"
            "        if pid == 0:\n"
            "            os.execv('/bin/sleep', ['sleep', '120'])\n"
            "        children.append(pid)\n"
            "except OSError as exc:\n"
            "    print(len(children), type(exc).__name__, flush=True)\n"
            "for pid in children:\n"
            "    os.kill(pid, 9)\n")
    process = inside(home, "hog", ["/usr/bin/python3", "-c", bomb])
    out, err = process.communicate(timeout=120)
    forked, error = out.split()
    assert error == "BlockingIOError", err
    assert 0 < int(forked) < LIMITS.pids
    assert lifecycle.instance_status(home, "alpha").health == "ok"


def test_cpu_hogs_in_one_instance_leave_its_neighbour_responsive(home, hog, admin):
    idle = chart_latencies(admin)
    hogs = [inside(home, "hog", ["/usr/bin/python3", "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(2)
        busy = chart_latencies(admin)
    finally:
        for process in hogs:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    report_figure(f"alpha's warm chart p95: {p95(idle) * 1000:.0f} ms idle, {p95(busy) * 1000:.0f} ms with two CPU hogs "
          f"in hog (limited to {LIMITS.cpus} core); ratio {p95(busy) / p95(idle):.2f}")
    assert p95(busy) <= 2 * p95(idle)


def test_changed_limits_apply_to_the_live_instance_without_a_restart(home, hog):
    pids = {name: state.pid for name, state in Supervisor(home).states("hog").items()}
    wider = hog.model_copy(update={"resources": hog.resources.model_copy(update={"pids": LIMITS.pids + 100})})
    report = converge.up(home, wider)
    try:
        assert any(a.startswith("limited hog to") for a in report.actions)
        assert CgroupV1().limits(confinement(home, "hog")["cgroup"]).pids == LIMITS.pids + 100
        assert {name: state.pid for name, state in Supervisor(home).states("hog").items()} == pids
    finally:
        converge.up(home, hog)
    assert CgroupV1().limits(confinement(home, "hog")["cgroup"]) == LIMITS
