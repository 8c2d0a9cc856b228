"""The host as a service: its installation's identity, desired states, capacity, and user-facing text."""

import json
import os
from pathlib import Path

import pytest

from setpoint.checklist.catalog import CHECKS
from setpoint.errors import SetpointError
from setpoint.home import Home
from setpoint.host import boot, capacity, installation
from setpoint.runtime.local.lifecycle import desired_state
from setpoint.spec import parse_spec, size_instance
from setpoint.spec.sizing import MIB_RENDER, Limits, cpu_text, estimated_memory_mib, resource_limits
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[2]


def test_the_running_setpoint_is_installed_from_its_source_tree():
    source, digest = installation.source_of_running()
    assert Path(source) == REPO
    assert len(digest) == 64 and digest == installation.source_of_running()[1]


def test_a_changed_source_is_another_installation(tmp_path):
    tree = tmp_path / "checkout"
    (tree / "src" / "setpoint").mkdir(parents=True)
    (tree / "pyproject.toml").write_text("[project]\nname = 'setpoint'\n")
    module = tree / "src" / "setpoint" / "x.py"
    module.write_text("A = 1\n")
    first = installation._digest(tree)
    (tree / "src" / "setpoint" / "__pycache__").mkdir()
    (tree / "src" / "setpoint" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"compiled")
    assert installation._digest(tree) == first, "compiled files are not source"
    module.write_text("A = 2\n")
    assert installation._digest(tree) != first


def test_the_build_copy_leaves_the_checkout_untouched(tmp_path):
    copy = installation._buildable_copy(REPO, tmp_path)
    assert (copy / "pyproject.toml").exists() and (copy / "src" / "setpoint" / "cli.py").exists()
    assert not list(copy.rglob("__pycache__")) and not (copy / "tests").exists()


def test_activation_is_one_atomic_link_and_keeps_the_previous(tmp_path):
    home = Home(tmp_path)
    old, new = (installation.Installation(tmp_path / "venvs" / f"setpoint-0.1.0-{d}") for d in ("aaa", "bbb"))
    for item in (old, new):
        item.root.mkdir(parents=True)
        (item.root / installation.MARKER).write_text("x\n")
    assert installation.activate(home, old) is None
    assert installation.activate(home, new) == old
    assert installation.current(home) == new
    unrelated = tmp_path / "venvs" / "setpoint-0.0.9-ccc"
    unrelated.mkdir()
    assert installation.prune(home, keep={old.root}) == [unrelated.resolve()]
    assert old.root.exists() and new.root.exists()


def test_an_incomplete_installation_is_never_current(tmp_path):
    home = Home(tmp_path)
    half = installation.Installation(tmp_path / "venvs" / "setpoint-0.1.0-half")
    half.root.mkdir(parents=True)
    installation.activate(home, half)
    assert installation.current(home) is None


def test_desired_state_is_recorded_and_defaults_from_the_programs_file(tmp_path):
    home = Home(tmp_path)
    paths = home.instance("demo")
    paths.root.mkdir(parents=True)
    paths.write_state({"ports": {}})
    assert desired_state(home, "demo") == "down"
    home.programs_conf("demo").parent.mkdir(parents=True)
    home.programs_conf("demo").write_text("")
    assert desired_state(home, "demo") == "up"  # an instance from before desired states existed
    paths.write_state({"desired": "down"})
    assert desired_state(home, "demo") == "down"


def test_unit_names_differ_per_home():
    assert boot.unit_name(Home(Path("/var/lib/setpoint"))) == "setpoint.service"
    other = boot.unit_name(Home(Path("/srv/other")))
    assert other.startswith("setpoint-") and other.endswith(".service") and other != "setpoint.service"


def test_default_instance_estimate_matches_the_measured_idle_size():
    # Measured on the demo instance after a chart load: 778 MiB (PSS) with one pool process, and
    # PostgreSQL's shared buffers not yet filled (the estimate counts all 128 MiB of them).
    assert 800 <= estimated_memory_mib(size_instance(50, cores=2)) <= 1000
    assert estimated_memory_mib(size_instance(1000, cores=2)) > estimated_memory_mib(size_instance(50, cores=2))


def test_capacity_measures_real_processes(tmp_path):
    home = Home(tmp_path)
    home.instances_dir.mkdir()
    limits = resource_limits(50, cores=2)
    report = capacity.measure(home, {"me": [os.getpid()]}, {"me": "up"}, {"me": limits}, enforced=True, sample_s=0.1)
    me = report.instances[0]
    assert me.processes >= 1 and me.memory_mib > 10 and me.memory_limit_mib == limits.memory_mb
    assert report.memory_available_mib <= report.memory_total_mib
    assert report.memory_committed_mib == limits.memory_mb
    assert report.more_instances >= 0 and report.limited_by in ("memory", "disk")
    assert json.loads(json.dumps(report.to_dict()))["instances"][0]["name"] == "me"


def test_default_limits_follow_the_size():
    default = resource_limits(50, cores=2)
    idle = estimated_memory_mib(size_instance(50, cores=2))
    assert default.memory_mb >= max(2 * idle, idle + MIB_RENDER) and default.memory_mb % 256 == 0
    # No CPU cap by default: every core the others leave idle, a core's weight per 100 users.
    assert default.cpus is None and default.cpu_weight == 1024 and default.pids > size_instance(50, cores=2).pg_max_connections
    assert resource_limits(1000, cores=2).cpu_weight == 2048  # never more than the host has
    assert resource_limits(50, memory_mb=1024, cpus=0.5, pids=300, cores=2) == Limits(1024, 0.5, 300, 1024)
    assert cpu_text(default) == "every idle core, weight 1024"
    assert cpu_text(Limits(1024, 0.5, 300)) == "at most 0.5 core(s)"


def test_an_instance_whose_limits_do_not_fit_is_refused_with_the_numbers(tmp_path):
    home, spec = Home(tmp_path), parse_spec({"name": "acme", "concurrent_users": 200})
    others = {"a": Limits(9216, 1, 1000), "b": Limits(9216, 1, 1000)}
    with pytest.raises(SetpointError) as caught:
        capacity.require_room(home, spec, others, memory=lambda: (20480, 15000))
    message = caught.value.message
    assert "limited to 3,328 MiB" in message and "limited to 18,432 MiB together" in message and "20,480 MiB" in message
    assert "resources.memory_mb" in caught.value.hint
    with pytest.raises(SetpointError, match="needs 2,048 MiB of disk and .* has 100 MiB free"):
        capacity.require_room(home, spec, {}, memory=lambda: (65536, 60000), disk=lambda path: (100, 1000))
    capacity.require_room(home, parse_spec({"name": "small", "concurrent_users": 10}), {})  # this host has room


def test_remedies_say_what_to_do_now_not_the_plan():
    for check in CHECKS:
        for text in (check.remedy_managed, check.remedy_external):
            assert "issue" not in text and "arrives" not in text, (check.id, text)


def test_validation_text_is_printed_literally_and_in_words(tmp_path):
    result = run_cli("up", "Bad[x]", home=Home(tmp_path))
    assert result.returncode == 2
    assert "'Bad[x]'" in result.stderr
    assert "lowercase letters, digits and dashes" in result.stderr
    assert "Traceback" not in result.stderr
    assert "^" not in result.stderr  # no regular expression shown to the operator


def test_users_elsewhere_are_told_how_to_reach_the_instance():
    from setpoint.cli import reach_lines

    local = parse_spec({"name": "demo"})
    tunnel = reach_lines(local, [])
    assert len(tunnel) == 1 and tunnel[0].startswith("from another computer: ssh -N -L 8443:127.0.0.1:443 ")
    assert tunnel[0].endswith("then open https://demo.localhost:8443/")
    assert "set lan_https_port in the spec" in reach_lines(local, ["192.0.2.2"])[1]
    served = reach_lines(parse_spec({"name": "demo", "lan_https_port": 8443}), ["192.0.2.2"])
    assert served == ["on your network: https://192.0.2.2:8443/ (trust the CA certificate in the browser)"]
    assert reach_lines(parse_spec({"name": "demo", "hostname": "bi.example.com"}), ["192.0.2.2"]) == []
