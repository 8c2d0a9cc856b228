"""Root's actions on an instance, attacked as the instance's accounts would: after a flaw in
Superset (or in PostgreSQL), that account can plant links in its own directories, and Setpoint's
commands and the host's services, which run as root, must not be led by them to another file.
What root reads or runs (the spec, the configuration, the logs supervisord writes, the audit file
and access logs the log store reads) is in root's directories, where no such account can put
anything; what root does in the accounts' own directories never follows a link."""

import json
import random
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from setpoint.errors import SetpointError
from setpoint.home import caddy_user, logstore_user
from setpoint.observability import logstore
from setpoint.operations import gdpr
from setpoint.readiness import wait_until
from setpoint.runtime.local.accounts import lay_out
from setpoint.runtime.local.instance import load_context
from tests.conftest import access_as, as_account


def run_as(user: str, *argv: str, succeed: bool = True) -> subprocess.CompletedProcess:
    """Run a command as `user` with its own groups, as the instance's processes run."""
    done = subprocess.run(argv, **as_account(user), capture_output=True, text=True, timeout=30)
    assert (done.returncode == 0) == succeed, done.stderr
    return done


def test_neither_account_can_rename_what_root_keeps_in_the_instance_directory(home, instance):
    """Root reads and trusts the spec, the state and the records (one names the directory where
    root runs git), and writes export/ and docs/: the instance's directory is root's, which both
    accounts may only traverse."""
    ctx = load_context(home, "alpha")
    kept = [ctx.paths.spec_file, ctx.paths.state_file, ctx.paths.records_file, ctx.paths.root / "export", ctx.paths.root / "docs"]
    assert all(path.exists() for path in kept), [str(p) for p in kept if not p.exists()]
    for account in (ctx.data_user, ctx.superset_user):
        for path in kept:
            refused = run_as(account, "mv", "-T", str(path), f"{path}.moved", succeed=False)
            assert "Permission denied" in refused.stderr, refused.stderr
        run_as(account, "touch", str(ctx.paths.root / "planted"), succeed=False)
    # Each still reaches its own: the data account its backups, the Superset account its home.
    run_as(ctx.data_user, "ls", str(ctx.paths.backup / "repo"))
    run_as(ctx.superset_user, "ls", str(ctx.paths.superset_home))


def test_neither_account_can_change_the_code_or_limits_the_other_runs_with(home, instance):
    """Superset's processes run the Python in config/ (superset_config.py, gunicorn.conf.py, the
    setpoint_*.py modules, and anything on their PYTHONPATH, which is config/), and root applies
    limits.json: a data account able to write there would run code as the Superset account, or
    lift its own instance's memory and pids limits."""
    ctx = load_context(home, "alpha")
    config = ctx.paths.config
    ran = [config / "superset_config.py", config / "gunicorn.conf.py", config / "setpoint_web_master.py",
           config / "limits.json"]
    for account in (ctx.data_user, ctx.superset_user):
        for path in ran:
            refused = run_as(account, "sh", "-c", f"echo '# planted' >> {path}", succeed=False)
            assert "Permission denied" in refused.stderr, refused.stderr
            refused = run_as(account, "mv", "-T", str(path), f"{path}.moved", succeed=False)
            assert "Permission denied" in refused.stderr, refused.stderr
        refused = run_as(account, "touch", str(config / "sitecustomize.py"), succeed=False)
        assert "Permission denied" in refused.stderr, refused.stderr
    assert all("# planted" not in path.read_text() for path in ran)
    # Each reads what it runs with; pgBackRest's repository keys are the data account's alone.
    run_as(ctx.superset_user, "cat", str(config / "superset_config.py"), str(config / "superset-secrets.json"))
    run_as(ctx.data_user, "cat", str(config / "postgresql.conf"), str(config / "pgbackrest.conf"))
    refused = run_as(ctx.superset_user, "cat", str(config / "pgbackrest.conf"), succeed=False)
    assert "Permission denied" in refused.stderr, refused.stderr


def test_no_account_can_plant_a_link_where_supervisord_writes_a_log(home, instance, host_file):
    """supervisord, as root, appends each process's output to logs/COMPONENT.log, opening it anew
    at every restart: a link in its place would have root append to any file of the host (it did,
    while the directory was the data account's: /root/victim got Redis's start-up lines)."""
    ctx = load_context(home, "alpha")
    log = ctx.paths.logs / "redis.log"
    for account in (ctx.data_user, ctx.superset_user):
        refused = run_as(account, "mv", "-T", str(log), f"{log}.moved", succeed=False)
        assert "Permission denied" in refused.stderr, refused.stderr
        refused = run_as(account, "ln", "-s", str(host_file), str(ctx.paths.logs / "planted.log"), succeed=False)
        assert "Permission denied" in refused.stderr, refused.stderr
    assert log.owner() == "root" and not log.is_symlink()
    # The data account still writes its own logs: pgBackRest's and its restored clusters'.
    run_as(ctx.data_user, "touch", str(ctx.paths.data_logs / "written-by-the-data-account"))


@pytest.fixture
def host_file():
    """A file of the host's, root's alone, that mentions someone."""
    path = Path("/root") / f"setpoint-host-file-{random.randbytes(4).hex()}"
    path.write_text("owner: planted.person@example.com\n")
    path.chmod(0o644)
    yield path
    path.unlink(missing_ok=True)


def test_no_account_can_put_a_link_in_place_of_the_audit_file_the_store_reads_as_root(home, instance, host_file):
    """The host's log store (rsyslog, as root) reads the audit file and follows a link: while the
    file was in the Superset account's home, that account swapped it for a link to a root-only
    file, whose lines then came out of `setpoint audit` as the instance's records."""
    ctx = load_context(home, "alpha")
    audit = ctx.paths.audit_log
    for account in (ctx.superset_user, ctx.data_user):
        for argv in (["ln", "-sfn", str(host_file), str(audit)], ["mv", "-T", str(audit), f"{audit}.moved"],
                     ["ln", "-s", str(host_file), str(ctx.paths.audit_dir / "planted.log")]):
            refused = run_as(account, *argv, succeed=False)
            assert "Permission denied" in refused.stderr, refused.stderr
    assert audit.is_file() and not audit.is_symlink()
    # Superset's account still appends its records, and root its own.
    run_as(ctx.superset_user, "sh", "-c", f"echo '{{\"event\":\"written_by_superset\"}}' >> {audit}")
    logstore.record_audit(ctx, "written_by_setpoint", user="someone")
    assert "written_by_superset" in audit.read_text() and "written_by_setpoint" in audit.read_text()
    assert host_file.read_text() == "owner: planted.person@example.com\n"


def test_the_data_account_cannot_swap_the_superset_accounts_home_or_redis_data(home, instance):
    """data/ was the data account's: it could rename data/superset or data/redis and put a link
    there, which root followed when it gave the directory back to its owner (see the next test),
    and into which Superset's commands started as root would have changed directory."""
    ctx = load_context(home, "alpha")
    for path in (ctx.paths.superset_home, ctx.paths.redis_data, ctx.paths.pg_data):
        refused = run_as(ctx.data_user, "mv", "-T", str(path), f"{path}.moved", succeed=False)
        assert "Permission denied" in refused.stderr, refused.stderr
    assert (ctx.paths.data.owner(), ctx.paths.data.group()) == ("root", ctx.superset_user)


@pytest.fixture
def host_dir():
    """A directory of the host's, root's, with a file in it."""
    path = Path("/root") / f"setpoint-host-dir-{random.randbytes(4).hex()}"
    path.mkdir(mode=0o755)
    (path / "passwd").write_text("root's\n")
    yield path
    shutil.rmtree(path)


def test_caddys_account_cannot_put_a_link_in_place_of_an_access_log_the_store_reads_as_root(home, instance, http,
                                                                                           host_file):
    """Caddy, the host's process that faces the Internet, appends each instance's access log;
    the log store reads it as root and follows a link. While the logs were in Caddy's own
    directory, its account could have pointed one at any file of the host."""
    log = home.instance("alpha").access_log
    for argv in (["ln", "-sfn", str(host_file), str(log)], ["mv", "-T", str(log), f"{log}.moved"],
                 ["ln", "-s", str(host_file), str(log.parent / "planted.log")]):
        refused = run_as(caddy_user(), *argv, succeed=False)
        assert "Permission denied" in refused.stderr, refused.stderr
    size = log.stat().st_size
    assert http.get("/health").status_code == 200
    wait_until(lambda: log.stat().st_size > size, 10, AssertionError("Caddy no longer writes the access log"))
    assert log.is_file() and not log.is_symlink() and (log.owner(), log.group()) == (logstore_user(), caddy_user())


def test_up_gives_no_directory_through_a_link_an_account_planted(home, instance, host_dir):
    """`up` gives each directory of the instance to its account, everything in it too when it
    changes hands. The Superset account replaced its metrics directory with a link to a directory
    of the host's: `up` would have given that directory, and everything in it, to the account."""
    ctx = load_context(home, "alpha")
    metrics, kept = ctx.paths.metrics_dir, ctx.paths.metrics_dir.with_name("metrics.kept")
    before = (host_dir.stat(), (host_dir / "passwd").stat())
    run_as(ctx.superset_user, "mv", "-T", str(metrics), str(kept))
    try:
        run_as(ctx.superset_user, "ln", "-s", str(host_dir), str(metrics))
        with pytest.raises(SetpointError, match="is a link or a file"):
            lay_out(ctx)
    finally:
        run_as(ctx.superset_user, "rm", "-f", str(metrics))
        run_as(ctx.superset_user, "mv", "-T", str(kept), str(metrics))
    after = (host_dir.stat(), (host_dir / "passwd").stat())
    assert [(s.st_uid, s.st_gid, s.st_mode) for s in after] == [(s.st_uid, s.st_gid, s.st_mode) for s in before]
    assert lay_out(ctx) == []


def test_the_erasure_neither_searches_nor_masks_through_a_planted_link(home, instance, host_file):
    ctx = load_context(home, "alpha")
    # The erasure still searches where an earlier Setpoint kept the audit trail, in the Superset
    # account's home, where that account can plant links.
    run_as(ctx.superset_user, "mkdir", "-p", str(ctx.paths.former_audit_dir))
    planted = ctx.paths.former_audit_dir / "planted.log"
    run_as(ctx.superset_user, "ln", "-sfn", str(host_file), str(planted))
    try:
        assert not any("planted" in place for place in gdpr.find(home, ctx, ["planted.person@example.com"]))
        assert gdpr._mask(home, planted, gdpr._pattern(["planted.person@example.com"])) == 0
        assert host_file.read_text() == "owner: planted.person@example.com\n"
    finally:
        planted.unlink()


def test_the_log_store_runs_as_its_own_account_which_reads_the_logs_and_nothing_else(home, instance):
    """rsyslog parses lines the instances' people shape, and ran as root. It runs as its own
    account, which reads the logs through ACL entries and owns the files the writers append to:
    none of an instance's secrets, configuration, data or backups, and no instance's account
    reads the store."""
    ctx = load_context(home, "alpha")
    conf = f"{home.logstore_dir}/rsyslog.conf"
    users = subprocess.run(["ps", "-ww", "-eo", "user:32,args"], capture_output=True, text=True, check=True).stdout
    store = [line.split()[0] for line in users.splitlines() if "rsyslogd" in line and conf in line]
    assert store and set(store) == {logstore_user()}, users
    paths = ctx.paths
    closed = [paths.secrets_file, paths.config / "superset_config.py", paths.config / "pgbackrest.conf", paths.pg_data,
              paths.backup, paths.run, paths.superset_home, paths.redis_data, home.caddy_dir]
    read = [paths.logs / "web.log", paths.audit_log, paths.access_log, paths.logs]
    seen = access_as(logstore_user(), closed + read)
    assert {str(p): seen[str(p)] for p in closed} == {str(p): "EACCES" for p in closed}
    assert {str(p): seen[str(p)] for p in read} == {str(p): "ok" for p in read}
    for account in (ctx.superset_user, ctx.data_user):
        store = [home.logstore_dir, logstore.records_dir(home, "alpha")]
        assert set(access_as(account, store).values()) == {"EACCES"}, account


def test_root_reads_and_prunes_the_store_without_following_a_link_its_account_planted(home, instance, host_dir):
    """The records are the store's account's: after a flaw in rsyslog, it could put links where
    root reads records (`setpoint logs`, `setpoint audit`, the scorecard) and deletes old days."""
    records, user = logstore.records_dir(home, "alpha"), logstore_user()
    today = datetime.now(timezone.utc).date().isoformat()
    secret = host_dir / f"{today}.log"
    secret.write_text(json.dumps({"time": f"{today}T00:00:00Z", "message": "root's own line"}) + "\n")
    old_host_day = host_dir / "2000-01-01.log"
    old_host_day.write_text("root's\n")
    planted, linked = records / "planted", records / "linked"
    try:
        run_as(user, "mkdir", str(planted))
        run_as(user, "ln", "-s", str(secret), str(planted / f"{today}.log"))
        run_as(user, "ln", "-s", str(host_dir), str(linked))
        run_as(user, "touch", str(planted / "2000-01-01.log"))
        assert list(logstore.read(home, "alpha", ["planted"])) == []
        assert list(logstore.read(home, "alpha", ["linked"])) == []
        removed = logstore.prune(home)
        assert planted / "2000-01-01.log" in removed and not (planted / "2000-01-01.log").exists()
        assert old_host_day.read_text() == "root's\n" and secret.exists()
    finally:
        shutil.rmtree(planted, ignore_errors=True)
        linked.unlink(missing_ok=True)
