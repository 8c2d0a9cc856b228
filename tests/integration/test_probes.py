"""Synthetic checks (point 21) from probe points in three network namespaces of this machine, each
a real prometheus-blackbox-exporter configured with `setpoint probe-config`, as an operator would
on three other hosts: the instance's public URL over HTTPS through the namespace's own link."""

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from setpoint import proc
from setpoint.checklist.evidence import Evidence
from setpoint.checklist.model import Status
from setpoint.checklist.operations import probe_synthetic
from setpoint.examples import EXAMPLES_DB, TABLE
from setpoint.observability.monitoring import Prometheus, monitoring_of
from setpoint.readiness import wait_until
from setpoint.runtime.local import converge, lifecycle
from setpoint.runtime.local.instance import load_context
from setpoint.services.postgres import cluster_of
from tests.conftest import report_figure, run_cli

INTERVAL_S = 5  # probes.interval_s for the test: a stopped point is stale after one scrape


def ip(*args: str) -> None:
    proc.run(["ip", *args], what="ip " + " ".join(args))


class ProbePoint:
    """A network namespace linked to the host by a veth pair, where alpha's hostname resolves to
    the host's end, running a blackbox exporter on the namespace's end."""

    def __init__(self, index: int, config: Path, hostname: str) -> None:
        self.netns, self.veth = f"spprobe{index}", f"spprobe{index}h"
        self.host_ip, self.address = f"10.231.{index}.1", f"10.231.{index}.2"
        self.hosts_dir = Path("/etc/netns") / self.netns
        ip("netns", "add", self.netns)
        ip("link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", self.netns)
        ip("addr", "add", f"{self.host_ip}/30", "dev", self.veth)
        ip("link", "set", self.veth, "up")
        for args in (["addr", "add", f"{self.address}/30", "dev", "eth0"], ["link", "set", "eth0", "up"],
                     ["link", "set", "lo", "up"]):
            ip("-n", self.netns, *args)
        # `ip netns exec` mounts this over /etc/hosts: the instance's name leads to the host.
        self.hosts_dir.mkdir(parents=True, exist_ok=True)
        (self.hosts_dir / "hosts").write_text(f"127.0.0.1 localhost\n{self.host_ip} {hostname}\n")
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, proc.find_binary("prometheus-blackbox-exporter"),
             f"--config.file={config}", f"--web.listen-address={self.address}:9115"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @property
    def point(self) -> str:
        return f"{self.address}:9115"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)

    def remove(self) -> None:
        if self.process.poll() is None:
            self.stop()
        proc.run(["ip", "netns", "del", self.netns], check=False)
        shutil.rmtree(self.hosts_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def probe_points(home, instance, tmp_path_factory):
    directory = tmp_path_factory.mktemp("probe-point")
    directory.chmod(0o755)
    made = run_cli("probe-config", "--output", str(directory), "--ca-path", str(directory / "setpoint-ca.pem"),
                   home=home)
    assert made.returncode == 0, made.stderr
    points = []
    try:
        for index in (1, 2, 3):
            points.append(ProbePoint(index, directory / "blackbox.yml", instance[0].host))
        spec = instance[0].model_copy(update={"probes": instance[0].probes.model_copy(
            update={"points": [p.point for p in points], "interval_s": INTERVAL_S})})
        converge.up(home, spec)
        yield points
    finally:
        for point in points:
            point.remove()
        converge.up(home, instance[0])


def fresh_successes(home) -> set[str]:
    return {point for point, ok in Prometheus(monitoring_of(home)).probe_points("alpha").items() if ok}


def synthetic_finding(home):
    evidence = Evidence(lifecycle.managed_target(home, "alpha"))
    try:
        return probe_synthetic(evidence)
    finally:
        evidence.close()


def test_three_probe_points_pass_point_21_and_losing_two_fails_it(home, probe_points):
    everyone = {"local", *(p.point for p in probe_points)}
    started = time.monotonic()
    wait_until(lambda: fresh_successes(home) == everyone, 90,
                        AssertionError(f"not every probe point succeeded: {fresh_successes(home)}"), interval=1)
    waited = time.monotonic() - started
    finding = synthetic_finding(home)
    assert finding.status is Status.PASS, finding.evidence
    assert "4 probe point(s)" in finding.evidence
    # Every point also loads the sample chart's data, with no credential.
    charts = 'probe_success{setpoint_instance="alpha",check="chart"}'
    wait_until(lambda: len([r for r in Prometheus(monitoring_of(home)).query(charts) if r["value"][1] == "1"]) == 4, 30,
               AssertionError(f"the chart check failed: {Prometheus(monitoring_of(home)).query(charts)}"), interval=1)

    stopped = probe_points[:2]
    for point in stopped:
        point.stop()
    started = time.monotonic()
    remaining = {"local", probe_points[2].point}
    wait_until(lambda: fresh_successes(home) == remaining, 4 * INTERVAL_S + 10,
               AssertionError(f"stopped probe points still count: {fresh_successes(home)}"), interval=1)
    dropped = time.monotonic() - started
    finding = synthetic_finding(home)
    assert finding.status is Status.FAIL, finding.evidence
    for point in stopped:
        assert f"{point.point} has no recent probe" in finding.evidence
    report_figure(f"synthetic checks every {INTERVAL_S} s: 4 probe points succeeding {waited:.0f} s after the fixture's up; "
                  f"2 of them stopped: no longer counted {dropped:.0f} s later, point 21 FAIL")


def test_the_chart_check_tells_anonymous_callers_only_ok_and_cannot_be_made_to_query_more(http):
    """As an anonymous caller hammering it: every answer is the same short sentence, no row and
    no query, and the chart's query runs at most once per 30 s per web process, so 20 calls in a
    row get at most 2 different answers per process (alpha has 2): the last one, then a fresh one."""
    answers = [http.get("/setpoint/probe/chart") for _ in range(20)]
    assert {a.status_code for a in answers} == {200}
    assert all(re.fullmatch(r"OK 20 rows in \d+\.\d\d s\n", a.text) for a in answers), answers[0].text
    assert len({a.text for a in answers}) <= 4, {a.text for a in answers}
    assert answers[0].headers["cache-control"] == "no-store"


def test_the_chart_check_fails_while_its_table_is_gone_and_says_nothing_of_why(home, http):
    """A real fault in the analytics database: the sample table renamed away, then back. The
    check answers 503 within its 30 s, with no table name, SQL or error text for the caller."""
    cluster = cluster_of(load_context(home, "alpha"))

    def answer():
        return http.get("/setpoint/probe/chart")

    cluster.sql(f"ALTER TABLE {TABLE} RENAME TO {TABLE}_away", database=EXAMPLES_DB)
    try:
        wait_until(lambda: answer().status_code == 503, 40, AssertionError("the chart check still passes"), interval=2)
        failed = answer()
        assert failed.text == "FAIL: the chart's query failed\n"
    finally:
        cluster.sql(f"ALTER TABLE {TABLE}_away RENAME TO {TABLE}", database=EXAMPLES_DB)
    wait_until(lambda: answer().status_code == 200, 40, AssertionError("the chart check did not recover"), interval=2)
