"""Tenants cannot starve each other: a tenant instance ("hog", instance A) attacks its own limits
with real processes started inside its cgroup, while alpha (instance B) keeps serving."""

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from setpoint.backup.service import read_record, take_backup, update_record
from setpoint.errors import SetpointError
from setpoint.home import logstore_user, service_user, write_file
from setpoint.render import render_instance, render_programs_conf
from setpoint.runtime.local import converge, lifecycle, startup
from setpoint.runtime.local.accounts import lay_out
from setpoint.runtime.local.confine import confine_prefix
from setpoint.runtime.local.platform import load_platform
from setpoint.secret import SecretStore
from setpoint.services.postgres import cluster_of
from setpoint.runtime.local.instance import confinement, load_context
from setpoint.services.cgroup import host_cgroups
from setpoint.services.supervisor import Supervisor
from setpoint.spec.sizing import Limits
from tests.conftest import access_as, as_account, make_spec, report_figure

# No CPU cap, as by default: the hogs below take only hog's share (its weight) from its neighbour.
LIMITS = Limits(memory_mb=1536, cpus=None, pids=400)


@pytest.fixture(scope="module")
def hog(home, instance):
    """Instance A: small, with tight limits."""
    if host_cgroups() is None:
        pytest.fail("no writable cgroup with the memory, cpu and pids controllers here (mount | grep cgroup)")
    spec = make_spec("hog", examples=False, concurrent_users=10,
                     resources={"memory_mb": LIMITS.memory_mb, "pids": LIMITS.pids})
    converge.up(home, spec)
    yield spec
    if home.instance("hog").exists():  # the module's last test destroys it
        lifecycle.destroy(home, "hog")


def confined(home, name: str) -> list[str]:
    """The command prefix every process of instance `name` starts through: its cgroup, then its
    Superset account (where code an attacker planted in Superset would run)."""
    confinement_ = confinement(home, name)
    return confine_prefix(confinement_["confine_python"], confinement_["cgroup"], load_context(home, name).superset_user,
                          home.instance(name).config / "limits.json")


def inside(home, name: str, argv: list[str], **kwargs) -> subprocess.Popen:
    """A process started in instance `name` as its Superset processes are."""
    return subprocess.Popen(confined(home, name) + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kwargs)


def test_a_tenants_superset_account_opens_nothing_of_its_neighbour_nor_its_own_private_files(home, hog, instance):
    """As hog's Superset account, inside hog's cgroup: alpha's directory, secret store, Superset
    secrets, configuration, data, PostgreSQL socket and backups are closed (EACCES), and so are
    hog's own secret store, PostgreSQL files and socket, logs, backups and the host's CA key."""
    alpha, own = home.instance("alpha"), home.instance("hog")
    ports = {name: home.instance(name).read_state()["ports"]["postgres"] for name in ("alpha", "hog")}
    closed = [alpha.root, alpha.secrets_file, alpha.superset_secrets_file, alpha.config / "superset_config.py",
              alpha.pg_data / "PG_VERSION", alpha.superset_home, alpha.run / f".s.PGSQL.{ports['alpha']}",
              alpha.backup / "repo", alpha.redis_data,
              own.secrets_file, own.pg_data / "PG_VERSION", own.run / f".s.PGSQL.{ports['hog']}",
              own.backup / "repo", own.logs, own.config / "pgbackrest.conf",
              home.caddy_dir / "data" / "pki" / "authorities" / "local" / "root.key"]
    answers = access_as(load_context(home, "hog").superset_user, closed, wrapper=confined(home, "hog"))
    assert answers == {str(path): "EACCES" for path in closed}
    # What Superset needs stays open to it.
    needed = [own.superset_secrets_file, own.config / "superset_config.py", own.superset_home, own.redis_data]
    assert access_as("", needed, wrapper=confined(home, "hog")) == {str(path): "ok" for path in needed}


def test_a_tenants_data_account_opens_nothing_of_its_neighbour(home, hog, instance):
    """As hog's data account, which runs hog's PostgreSQL (where a flaw in the server would land
    an attacker who reached it through hog's metadata role): alpha's secret store, configuration,
    database files, PostgreSQL socket, logs and backups are closed, and alpha's cluster asks it
    for the superuser's password over TCP."""
    alpha, ctx = home.instance("alpha"), load_context(home, "hog")
    port = alpha.read_state()["ports"]["postgres"]
    closed = [alpha.root, alpha.secrets_file, alpha.config / "pgbackrest.conf", alpha.pg_data / "PG_VERSION",
              alpha.run / f".s.PGSQL.{port}", alpha.logs, alpha.backup / "repo", alpha.superset_home,
              home.caddy_dir / "data" / "pki" / "authorities" / "local" / "root.key"]
    assert ctx.data_user != load_context(home, "alpha").data_user
    assert access_as(ctx.data_user, closed) == {str(path): "EACCES" for path in closed}
    # Its own are open to it.
    own = [ctx.paths.secrets_file, ctx.paths.pg_data / "PG_VERSION", ctx.paths.backup / "repo"]
    assert access_as(ctx.data_user, own) == {str(path): "ok" for path in own}
    # Only alpha's data account reaches its superuser, over alpha's socket (pg_ident.conf).
    refused = subprocess.run(["psql", "-X", "-h", "127.0.0.1", "-p", str(port), "-U", "setpoint", "-d", "postgres",
                              "-w", "-c", "SELECT 1"], **as_account(ctx.data_user), capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and "password" in refused.stderr, refused.stderr


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


ROUNDS = 6  # of 10 idle and 10 busy samples


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def test_every_process_of_an_instance_is_in_its_cgroup_with_its_limits(home, hog):
    group = confinement(home, "hog")["cgroup"]
    assert host_cgroups().limits(group) == LIMITS
    in_group = set(host_cgroups().pids(group))
    for name, state in Supervisor(home).states("hog").items():
        assert state.pid in in_group, name
        with open(f"/proc/{state.pid}/status") as handle:
            uid = int(next(line for line in handle if line.startswith("Uid:")).split()[1])
        assert uid != 0, f"{name} runs as root"
    # Children (gunicorn workers, PostgreSQL backends, Celery's pool) inherit it.
    assert len(in_group) > len(Supervisor(home).states("hog"))


def test_memory_past_the_limit_kills_a_process_of_that_instance_only(home, hog, admin):
    group = confinement(home, "hog")["cgroup"]
    kills_before = host_cgroups().usage(group).oom_kills
    hog_process = inside(home, "hog", ["/usr/bin/python3", "-c",
                                       "x = [bytearray(50 * 2**20) for _ in range(80)]\nprint('not stopped')"])
    _, _ = hog_process.communicate(timeout=120)
    assert hog_process.returncode == -signal.SIGKILL
    assert host_cgroups().usage(group).oom_kills > kills_before
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


@pytest.mark.quiet
def test_cpu_hogs_in_one_instance_leave_its_neighbour_responsive(home, hog, admin):
    """Eight hogs, four per core: left in the root cgroup, each would be a peer of alpha's
    processes, and alpha's warm chart took 5.8x as long at p95 (measured on the demo host); in
    hog's cgroup they weigh as one tenant, and it took 1.2x. Idle and busy samples interleave (the
    hogs stopped, then running, in turns), so that load from outside both instances weighs on both
    sides alike; the other test worker waits meanwhile."""
    hogs = [inside(home, "hog", ["/usr/bin/python3", "-c", "while True: pass"]) for _ in range(8)]
    idle: list[float] = []
    busy: list[float] = []
    try:
        for _ in range(ROUNDS):
            for process in hogs:
                os.killpg(process.pid, signal.SIGSTOP)
            idle += chart_latencies(admin, count=10)
            for process in hogs:
                os.killpg(process.pid, signal.SIGCONT)
            time.sleep(1)
            busy += chart_latencies(admin, count=10)
    finally:
        for process in hogs:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    report_figure(f"alpha's warm chart p95: {p95(idle) * 1000:.0f} ms idle, {p95(busy) * 1000:.0f} ms with eight CPU hogs "
                  f"in hog (no CPU cap, weight {LIMITS.cpu_weight} like alpha's), {len(busy)} samples each, interleaved; "
                  f"ratio {p95(busy) / p95(idle):.2f}")
    assert p95(busy) <= 2.5 * p95(idle)


def test_changed_limits_apply_to_the_live_instance_without_a_restart(home, hog):
    pids = {name: state.pid for name, state in Supervisor(home).states("hog").items()}
    wider = hog.model_copy(update={"resources": hog.resources.model_copy(update={"pids": LIMITS.pids + 100, "cpus": 0.5})})
    report = converge.up(home, wider)
    try:
        assert any(a.startswith("limited hog to") and "at most 0.5 core(s)" in a for a in report.actions), report.actions
        assert host_cgroups().limits(confinement(home, "hog")["cgroup"]) == Limits(LIMITS.memory_mb, 0.5, LIMITS.pids + 100)
        assert {name: state.pid for name, state in Supervisor(home).states("hog").items()} == pids
    finally:
        converge.up(home, hog)
    assert host_cgroups().limits(confinement(home, "hog")["cgroup"]) == LIMITS


def test_up_moves_an_instance_run_by_one_account_onto_its_own_accounts_losing_nothing(home, hog):
    """An instance laid out as before accounts were separated (every process and file the host's
    one service user's, as Setpoint made them before) is moved in place by `up`."""
    ctx = load_context(home, "hog")
    old = service_user()
    shared = dataclasses.replace(ctx, superset_user=old, data_user=old)
    secrets = SecretStore(ctx.paths.secrets_file).load()
    platform = load_platform(home)
    platform.supervisor.stop("hog-postgres")  # its files change hands
    lay_out(shared)
    for directory in (ctx.paths.root, ctx.paths.config, ctx.paths.logs):
        shutil.chown(directory, old, old)  # the instance's directory, configuration and logs were its account's
    # The audit trail was in the Superset account's home.
    former_trail = ctx.paths.former_audit_dir / "audit.log"
    former_trail.parent.mkdir(exist_ok=True)
    os.replace(ctx.paths.audit_log, former_trail)
    for path in (former_trail.parent, former_trail):
        shutil.chown(path, old, old)
    trail = former_trail.read_text()
    # A link that account planted where supervisord, as root, would append a process's output.
    planted = ctx.paths.logs / "planted.log"
    subprocess.run(["ln", "-s", "/etc/hostname", str(planted)], **as_account(old), check=True)
    # And bytecode its processes cached beside their configuration, which would run before the source.
    subprocess.run(["mkdir", "-p", str(ctx.paths.config / "__pycache__")], **as_account(old), check=True)
    ctx.paths.records_file.rename(ctx.paths.backup / "state.json")  # and so was the backup record's
    record = json.loads((ctx.paths.backup / "state.json").read_text())
    for rendered in render_instance(shared, secrets):
        # Redis's password was the data user's alone then (Redis ran as it).
        mode = 0o600 if rendered.path.name == "redis-auth.conf" else rendered.mode
        write_file(rendered.path, rendered.text, mode=mode, owner=old, group=old)
    write_file(home.programs_conf("hog"), render_programs_conf(shared), mode=0o600)
    platform.supervisor.update()
    platform.supervisor.start("hog-postgres")
    startup.wait_healthy(hog, platform, timeout=180)
    marker = ctx.paths.superset_home / "uploads" / "marker.csv"
    marker.parent.mkdir(exist_ok=True)
    write_file(marker, "kept\n", owner=old)
    users_before = cluster_of(shared).sql("SELECT count(*) FROM ab_user", database="superset")
    assert {process_user(s.pid) for s in Supervisor(home).states("hog").values()} == {old}
    assert (ctx.paths.pg_data / "PG_VERSION").owner() == old

    report = converge.up(home, hog)

    assert f"gave {ctx.paths.superset_home} to {ctx.superset_user}:{ctx.superset_user} (0700)" in report.actions
    assert f"stopped hog-postgres while its files and {ctx.data_user}'s groups change" in report.actions
    assert (ctx.paths.root.owner(), ctx.paths.root.group()) == ("root", ctx.superset_user)
    assert (ctx.paths.logs.owner(), ctx.paths.logs.group()) == ("root", ctx.data_user)
    assert f"removed the link {planted}, planted where supervisord writes a log" in report.actions
    assert not planted.is_symlink()
    assert f"moved {former_trail} to {ctx.paths.audit_log}" in report.actions
    assert ctx.paths.audit_log.read_text().startswith(trail) and former_trail.is_symlink()
    assert (ctx.paths.audit_log.owner(), ctx.paths.audit_log.group()) == (logstore_user(), ctx.superset_user)
    assert read_record(ctx.paths) == record and not (ctx.paths.backup / "state.json").exists()
    states = Supervisor(home).states("hog")
    assert {name.rsplit("-", 1)[1]: process_user(s.pid) for name, s in states.items()} == {
        "postgres": ctx.data_user, "redis": ctx.superset_user,
        "web": ctx.superset_user, "worker": ctx.superset_user, "beat": ctx.superset_user}
    assert marker.read_text() == "kept\n" and marker.owner() == ctx.superset_user
    for path in (ctx.paths.pg_data / "PG_VERSION", ctx.paths.pg_data / "global" / "pg_control", ctx.paths.secrets_file,
                 ctx.paths.backup / "repo"):
        assert path.owner() == ctx.data_user, path
    # Its configuration, which the old account owned, is root's now, each file read by its group.
    assert f"removed {ctx.paths.config / '__pycache__'}, written by an account that could change config/" in report.actions
    assert [p.name for p in ctx.paths.config.iterdir() if p.owner() != "root"] == []
    assert (ctx.paths.config / "pgbackrest.conf").group() == ctx.data_user
    assert cluster_of(ctx).sql("SELECT count(*) FROM ab_user", database="superset") == users_before
    assert lifecycle.instance_status(home, "hog").health == "ok"
    # Its backups go on, into the same repository, as the data account.
    assert take_backup(ctx, "incr").type == "incr"


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""  # ended meanwhile


@contextlib.contextmanager
def hogs_drill_midway(home):
    """hog's drill, due and started by the scheduler's tick (as the host's runs it every minute),
    caught while its scratch cluster runs: yields (the jobs, the scratch server's pid, the tick's
    running jobs). The host's scheduler would see the drill due too: it is stopped meanwhile, so
    that this tick is the only one (a stopped scheduler holds no lock)."""
    from setpoint.backup import schedule
    from setpoint.backup.service import now
    from tests.conftest import wait_until

    host_scheduler = Supervisor(home).states()["scheduler"].pid
    os.kill(host_scheduler, signal.SIGSTOP)
    try:
        paths = home.instance("hog")
        update_record(paths, last_drill={**read_record(paths)["last_drill"], "at": "2020-01-01T00:00:00+00:00"})
        running: dict[str, schedule.Jobs] = {}
        schedule.tick(home, now(), running)
        jobs = running["hog"]
        assert wait_until(lambda: scratch_servers(home) or jobs.process.poll() is not None, timeout=120, interval=0.2)
        assert jobs.process.poll() is None, "the drill ended before its scratch cluster was seen in hog's cgroup"
        assert json.loads(paths.jobs_file.read_text())["due"] == ["drill"]
        yield jobs, scratch_servers(home)[0], running
    finally:
        os.kill(host_scheduler, signal.SIGCONT)


def scratch_servers(home) -> list[int]:
    """The drills' scratch PostgreSQL servers in hog's cgroup."""
    from setpoint.backup.drill import SCRATCH_PREFIX

    server = f"-D {home.instance('hog').root}/{SCRATCH_PREFIX}"
    return [pid for pid in host_cgroups().pids(confinement(home, "hog")["cgroup"])
            if "postgres" in command_line(pid) and server in command_line(pid)]


def end_killed_drill(home, jobs, running) -> tuple[dict, list[str]]:
    """Kill the drill's process (kill -9); tick, which records the drill failed; then run the next
    drill, which clears what the killed one left. The failed entry, and what the next drill said."""
    from setpoint.backup import schedule
    from setpoint.backup.drill import run_drill
    from setpoint.backup.service import now
    from setpoint.runtime.local.instance import instance_lock

    jobs.process.kill()
    jobs.process.wait(timeout=30)
    schedule.tick(home, now(), running)
    assert "hog" not in running, "a failed drill is retried in ten minutes, not at the next tick"
    assert not home.instance("hog").jobs_file.exists()
    failed = read_record(home.instance("hog"))["last_drill"]
    said: list[str] = []
    with instance_lock(home, "hog"):  # free: the lock ended with its process
        record = run_drill(load_context(home, "hog"), log=said.append)
    assert record["ok"], record
    return failed, said


def test_a_tenants_scheduled_drill_runs_inside_its_limits_and_one_killed_midway_is_cleared(home, hog):
    """The scheduler runs hog's due jobs in a process of their own inside hog's cgroup: the drill's
    pgBackRest and scratch PostgreSQL count against hog's limits. Killed midway (kill -9, as its
    memory limit would), the process leaves the drill recorded failed, hog's lock free, and its
    scratch cluster running, which the next drill stops and removes."""
    from setpoint.backup.drill import SCRATCH_PREFIX

    paths, group = home.instance("hog"), confinement(home, "hog")["cgroup"]
    with hogs_drill_midway(home) as (jobs, scratch, running):
        assert jobs.process.pid in host_cgroups().pids(group), "the jobs process itself is in hog's cgroup"
        assert process_user(scratch) == load_context(home, "hog").data_user
        jobs.process.kill()
        jobs.process.wait(timeout=30)
        assert Path(f"/proc/{scratch}").exists(), "the killed drill's scratch cluster outlives it"
        failed, said = end_killed_drill(home, jobs, running)
    assert failed["ok"] is False and "ended (signal 9)" in failed["error"], failed
    assert "stopped and removed 1 scratch cluster(s) an earlier drill left behind" in said
    assert not list(paths.root.glob(f"{SCRATCH_PREFIX}*")) and not list(paths.root.glob(".copy-*"))
    assert not Path(f"/proc/{scratch}").exists() and not scratch_servers(home)
    report_figure("hog's scheduled drill ran in hog's cgroup; killed midway, the next drill cleared its scratch cluster")


def test_an_operators_drill_waits_for_the_scheduled_one_and_both_pass(home, hog):
    """Each drill begins by clearing the scratch clusters it finds, as a killed drill's leftovers.
    Before, `setpoint backup verify` took no lock: run during a scheduled drill, it stopped and
    removed that drill's scratch cluster under it, and the scheduled drill failed (seen on demo:
    "pg_ctl stop -D .../.drill-qh_w6w_0 ... could not start"). It now waits for the instance."""
    from tests.conftest import wait_until

    with hogs_drill_midway(home) as (jobs, scratch, running):
        os.kill(jobs.pid, signal.SIGSTOP)
        try:
            verify = subprocess.Popen([sys.executable, "-m", "setpoint.cli", "backup", "verify", "hog"],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env={**os.environ, "SETPOINT_HOME": str(home.root)})
            assert not wait_until(lambda: verify.poll() is not None, timeout=15), verify.communicate()
            assert Path(f"/proc/{scratch}").exists(), "the operator's drill left the scheduled one's scratch cluster alone"
        finally:
            os.kill(jobs.pid, signal.SIGCONT)
        assert jobs.process.wait(timeout=600) == 0
        scheduled = read_record(home.instance("hog"))["last_drill"]  # the operator's drill has only begun
        assert scheduled["ok"] is True and scheduled["at"] > "2021" and not home.instance("hog").jobs_file.exists(), scheduled
        out, err = verify.communicate(timeout=600)
    assert verify.returncode == 0 and "restore drill of hog passed" in out, err


def test_emergency_access_is_granted_revoked_and_expires_while_a_stuck_drill_holds_the_instance(home, hog):
    """A drill stopped midway (SIGSTOP: a large database's restore takes hours) holds hog's lock.
    Break-glass access must not wait for it: the grant works at once, the scheduler's expiry check
    deactivates the admin at its time, and --revoke works. (Before: the grant failed after 60 s and
    the expired admin stayed in until the drill ended.)"""
    from setpoint.backup import schedule
    from setpoint.backup.service import now
    from setpoint.runtime.local.instance import instance_lock
    from tests.conftest import run_cli

    cluster = cluster_of(load_context(home, "hog"))

    def active(username: str) -> str:
        return cluster.sql(f"SELECT active FROM ab_user WHERE username = '{username}'", database="superset")

    def grant(ttl: str) -> str:
        started = time.monotonic()
        result = run_cli("emergency-access", "hog", "--ttl", ttl, "--reason", "IdP down during a drill", "--format", "json",
                         home=home)
        assert result.returncode == 0, result.stderr
        seconds.append(time.monotonic() - started)
        return json.loads(result.stdout)["username"]

    seconds: list[float] = []
    with hogs_drill_midway(home) as (jobs, scratch, running):
        os.kill(jobs.process.pid, signal.SIGSTOP)
        try:
            with pytest.raises(SetpointError, match=r"the scheduler's drill of instance 'hog' is running \(since .* UTC, process \d+\)"):
                with instance_lock(home, "hog"):
                    pass
            expiring = grant("30s")
            assert active(expiring) == "t"
            schedule.expire_emergency_access(home, now() + timedelta(seconds=31))  # the check after its expiry
            assert active(expiring) == "f"
            revoked = grant("1h")
            result = run_cli("emergency-access", "hog", "--revoke", home=home)
            assert result.returncode == 0 and revoked in result.stdout + result.stderr, result.stderr
            assert active(revoked) == "f"
            grants = {g["username"]: g for g in read_record(home.instance("hog"))["emergency_access"]}
            assert grants[expiring]["revoked_at"] and grants[revoked]["revoked_at"]
        finally:
            os.kill(jobs.process.pid, signal.SIGCONT)
        end_killed_drill(home, jobs, running)
    report_figure(f"emergency access beside a stuck drill: granted in {max(seconds):.1f} s, expired and revoked at once")


def test_destroying_an_instance_during_its_scheduled_drill_leaves_nothing_of_it(home, hog):
    """Before, `destroy` neither waited for nor ended the instance's scheduled jobs: it deleted the
    directory under a running drill, whose scratch PostgreSQL kept running as the data account, in
    a cgroup it could then not remove, and that account was not deleted. Now destroy ends the jobs
    (TERM: the drill stops its scratch cluster), and whatever is left in the cgroup. The module's
    last test: hog is gone after it."""
    import pwd

    from setpoint.home import data_account, superset_account

    accounts = [data_account(home.root, "hog"), superset_account(home.root, "hog")]
    uids = {pwd.getpwnam(account).pw_uid for account in accounts}
    group = confinement(home, "hog")["cgroup"]
    with hogs_drill_midway(home) as (jobs, scratch, running):
        actions = lifecycle.destroy(home, "hog")
        assert any(a.startswith("stopped the scheduler's drill of hog") for a in actions), actions
        assert jobs.process.wait(timeout=30) != 0
    assert not home.instance("hog").exists() and not Path(f"/proc/{scratch}").exists()
    left = []
    for entry in os.scandir("/proc"):
        with contextlib.suppress(FileNotFoundError):  # ended meanwhile
            if entry.name.isdigit() and entry.stat().st_uid in uids:
                left.append(entry.name)
    assert not left, [command_line(int(pid)) for pid in left]
    assert not host_cgroups().pids(group)
    for account in accounts:
        with pytest.raises(KeyError):
            pwd.getpwnam(account)


def process_user(pid: int) -> str:
    return Path(f"/proc/{pid}").owner()
