"""The host as a system service, with real processes and real faults: Setpoint's own installation
outlives the checkout that made it, a broken upgrade of Setpoint is rolled back, and a simulated
reboot (SIGKILL of every process of the host) brings back exactly the instances that were up."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from setpoint.backup.pgbackrest import PgBackRest
from setpoint.backup.service import now, read_record, update_record
from setpoint.host import boot, installation
from setpoint.host.capacity import process_tree
from setpoint.runtime.local import converge, lifecycle
from setpoint.runtime.local.instance import load_context
from setpoint.services.supervisor import Supervisor
from tests.conftest import make_spec, report_figure, run_cli, wait_until

REPO = Path(__file__).resolve().parents[2]
# What systemd gives a unit: no virtualenv, no checkout, a plain PATH.
BOOT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def host_command(home, *args, timeout=900):
    """`SETPOINT_HOME/current/bin/setpoint host ...`, run the way the boot unit runs it."""
    command = installation.link_path(home) / "bin" / "setpoint"
    return subprocess.run([str(command), "host", *args], capture_output=True, text=True, timeout=timeout,
                          cwd="/", env={**BOOT_ENV, "SETPOINT_HOME": str(home.root)})


def copy_of_checkout(target: Path, change: tuple[str, str, str] | None = None) -> Path:
    """A second clone of this checkout (its source only), optionally with one edit (file, old, new)."""
    target.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, target / name)
    shutil.copytree(REPO / "src", target / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    if change:
        path, old, new = change
        text = (target / path).read_text()
        assert old in text
        (target / path).write_text(text.replace(old, new))
    return target


def setpoint_from(checkout: Path, home, *args):
    """The `setpoint` command of another checkout (its source first on the path)."""
    env = {**os.environ, "PYTHONPATH": str(checkout / "src"), "SETPOINT_HOME": str(home.root)}
    return subprocess.run([sys.executable, "-m", "setpoint.cli", *args], capture_output=True, text=True,
                          env=env, cwd=checkout.parent, timeout=900)


def supervisor_program_root(home, program: str) -> Path:
    """The installation a supervised program runs from (its interpreter's virtualenv)."""
    pid = Supervisor(home).states()[program].pid
    interpreter = Path((Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]).decode())
    return interpreter.parent.parent


@pytest.fixture(scope="module")
def unit_dir(home, instance, tmp_path_factory):
    """`setpoint host install`, with the unit written where the test can read it."""
    directory = tmp_path_factory.mktemp("systemd")
    result = run_cli("host", "install", "--unit-dir", str(directory), home=home)
    assert result.returncode == 0, result.stderr
    return directory


def test_host_runs_from_its_own_installation_with_a_unit_systemd_accepts(home, unit_dir):
    current = installation.current(home)
    assert current is not None and current.root.parent == home.venvs_dir.resolve()
    assert REPO not in current.root.parents
    unit = unit_dir / boot.unit_name(home)
    text = unit.read_text()
    assert f"ExecStart={home.root}/current/bin/setpoint host start" in text
    assert f"Environment=SETPOINT_HOME={home.root}" in text
    assert (unit_dir / "multi-user.target.wants" / unit.name).resolve() == unit
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: apt-get install -y systemd")
    assert boot.verify_boot_unit(unit) == ""
    # Every long-lived process of the host runs from there, none from this checkout.
    assert supervisor_program_root(home, "scheduler") == current.root
    supervisord = Path(f"/proc/{Supervisor(home).pid()}/cmdline").read_bytes().decode()
    assert str(current.root) in supervisord and str(REPO) not in supervisord


def test_a_removed_checkout_changes_nothing_for_the_host(home, instance, unit_dir, tmp_path):
    before = installation.current(home)
    other = copy_of_checkout(tmp_path / "clone", ("src/setpoint/__init__.py", '__version__ = "0.1.0"',
                                                  '__version__ = "0.1.0"  # a second clone'))
    result = setpoint_from(other, home, "host", "install", "--unit-dir", str(unit_dir))
    assert result.returncode == 0, result.stderr
    assert "switched the host's services" in result.stderr
    switched = installation.current(home)
    assert switched.root != before.root and before.root.exists(), "the previous installation is kept"
    assert supervisor_program_root(home, "scheduler") == switched.root

    shutil.rmtree(other)
    assert lifecycle.instance_status(home, "alpha").health == "ok"
    # A scheduled backup still runs: make one due and restart the scheduler, which starts afresh
    # without the clone and takes it at its first tick.
    paths = home.instance("alpha")
    last = read_record(paths)["last_backup"]
    update_record(paths, last_backup={**last, "at": (now() - timedelta(days=2)).isoformat()})
    Supervisor(home).restart("scheduler")
    assert wait_until(lambda: read_record(paths)["last_backup"]["at"] > last["at"], timeout=240), \
        (home.supervisor_dir / "scheduler.log").read_text()[-2000:]
    assert read_record(paths)["last_backup"]["ok"]

    # `up` from another checkout (this one) works, and moves the host back to its own installation.
    converge.up(home, instance[0])
    assert installation.current(home).root == before.root
    assert supervisor_program_root(home, "scheduler") == before.root
    assert lifecycle.instance_status(home, "alpha").health == "ok"


def test_an_upgrade_whose_services_do_not_start_is_rolled_back(home, instance, unit_dir, tmp_path):
    before = installation.current(home)
    conf_before = Supervisor(home).conf.read_text()
    broken = copy_of_checkout(tmp_path / "broken", ("src/setpoint/backup/schedule.py",
                                                    "        run_forever(Home(args.home))",
                                                    '        raise SystemExit("this scheduler is broken on purpose")'))
    result = setpoint_from(broken, home, "host", "install", "--unit-dir", str(unit_dir))
    assert result.returncode == 1
    assert "did not start from" in result.stderr and "previous installation again" in result.stderr
    assert "Traceback" not in result.stderr
    assert installation.current(home).root == before.root
    assert Supervisor(home).conf.read_text() == conf_before
    assert wait_until(lambda: Supervisor(home).states()["scheduler"].is_running, timeout=60)
    assert supervisor_program_root(home, "scheduler") == before.root
    assert lifecycle.instance_status(home, "alpha").health == "ok"


def kill_the_host(home) -> int:
    """SIGKILL supervisord and every process under it at once, as a power cut would; wait until gone."""
    pids = process_tree([Supervisor(home).pid()])
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids), timeout=30, interval=0.2)
    return len(pids)


def test_simulated_reboot_brings_back_every_instance_that_was_up(home, instance, admin, unit_dir):
    converge.up(home, make_spec("delta", examples=False, concurrent_users=10))
    lifecycle.down(home, "delta")
    try:
        written = admin.post("/api/v1/dashboard/", json={"dashboard_title": "Written before the power cut"}).json()
        killed = kill_the_host(home)
        assert killed >= 10 and Supervisor(home).pid() is None

        started = time.monotonic()
        result = host_command(home, "start", "--format", "json")
        seconds = time.monotonic() - started
        assert result.returncode == 0, result.stdout + result.stderr
        report = json.loads(result.stdout)
        outcomes = {i["name"]: i["outcome"] for i in report["instances"]}
        report_figure(f"simulated reboot: {killed} processes killed; every instance healthy {seconds:.1f} s after "
              f"the boot command started ({outcomes})")
        assert report["started_supervisor"] and report["ok"]
        assert outcomes["alpha"] == "healthy" and outcomes["delta"] == "down"
        assert seconds < 120

        assert admin.get(f"/api/v1/dashboard/{written['id']}").json()["result"]["dashboard_title"] == \
            "Written before the power cut"
        states = Supervisor(home).states()
        assert states["scheduler"].is_running and states["caddy"].is_running
        assert not any(name.startswith("delta-") for name in states), "a down instance stays down"
        assert lifecycle.instance_status(home, "delta").health != "ok"
        PgBackRest(load_context(home, "alpha")).check()  # WAL reaches the repository again
    finally:
        lifecycle.destroy(home, "delta")


def test_the_boot_command_twice_changes_nothing(home, instance):
    pids = {name: state.pid for name, state in Supervisor(home).states().items()}
    result = host_command(home, "start", "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert not report["started_supervisor"] and report["ok"]
    assert {name: state.pid for name, state in Supervisor(home).states().items()} == pids
    from setpoint.host.capacity import host_capacity

    alpha = next(i for i in host_capacity(home).instances if i.name == "alpha")
    assert alpha.memory_mib > 100
    report_figure(f"alpha after the reboot: {alpha.processes} processes, {alpha.memory_mib:,.0f} MiB (PSS) "
                  f"of its {alpha.memory_limit_mib:,} MiB limit")


def test_lan_https_port_serves_the_instance_on_the_hosts_address(home, instance, ca_root, secrets):
    from setpoint.net import host_addresses, http_client
    from setpoint.superset_api import SupersetClient
    from tests.s3_server import free_port

    addresses = host_addresses()
    if not addresses:
        pytest.fail("this machine has no non-loopback IPv4 address to serve an instance on (ip -4 addr)")
    port = free_port()
    spec = instance[0].model_copy(update={"lan_https_port": port})
    report = converge.up(home, spec)
    assert any("published" in action for action in report.actions)
    try:
        url = f"https://{addresses[0]}:{port}/"
        with http_client(url, ca_file=ca_root) as http:  # the internal CA signed a certificate for the address
            assert http.get("/health").text == "OK"
            api = SupersetClient(http)
            assert api.login("admin", secrets["admin_password"]).status_code == 200
            assert api.get("/api/v1/dashboard/").status_code == 200
    finally:
        converge.up(home, instance[0])  # by hostname only again
    with pytest.raises(httpx.HTTPError):
        with http_client(f"https://{addresses[0]}:{port}/", ca_file=ca_root, timeout=5) as http:
            http.get("/health")
