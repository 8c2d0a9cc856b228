"""What Setpoint reads back of a `superset db upgrade`'s migration times: from a file in the
instance's Superset account's home, which that account could have replaced with anything."""

import json
import os
from types import SimpleNamespace

from setpoint.home import InstancePaths
from setpoint.services.superset import describe_migrations, last_migration_times, migration_times_file


def context(tmp_path):
    paths = InstancePaths(tmp_path / "instances" / "alpha")
    paths.superset_home.mkdir(parents=True, exist_ok=True)
    return SimpleNamespace(paths=paths)


def test_the_times_are_read_in_order_and_described_by_the_slowest(tmp_path):
    ctx = context(tmp_path)
    migration_times_file(ctx).write_text(
        json.dumps({"revision": "a1", "message": "add themes", "seconds": 0.4}) + "\n"
        + json.dumps({"revision": "b2", "message": "copy the logs", "seconds": 2.95}) + "\n")
    times = last_migration_times(ctx)
    assert [t["revision"] for t in times] == ["a1", "b2"]
    assert describe_migrations(times) == "2 migration(s) in 3.4 s, the slowest 3.0 s (b2, copy the logs)"
    assert describe_migrations([]) == "no migration"
    # Superset 5.0's longest migration has no message.
    assert describe_migrations([{"revision": "96164e3017c6", "message": "", "seconds": 0.8}]) == \
        "1 migration(s) in 0.8 s, the slowest 0.8 s (96164e3017c6)"


def test_a_link_or_junk_planted_by_the_instance_account_is_ignored(tmp_path):
    ctx = context(tmp_path)
    secret = tmp_path / "root-only"
    secret.write_text(json.dumps({"revision": "leaked", "message": "x", "seconds": 1}) + "\n")
    os.symlink(secret, migration_times_file(ctx))
    assert last_migration_times(ctx) == []  # never followed through a link
    os.unlink(migration_times_file(ctx))
    migration_times_file(ctx).write_text('not json\n{"revision": "c3"}\n[1, 2]\n'
                                         + json.dumps({"revision": "d4", "message": "m", "seconds": "0.5"}) + "\n")
    assert last_migration_times(ctx) == [{"revision": "d4", "message": "m", "seconds": 0.5}]
    os.unlink(migration_times_file(ctx))
    os.mkfifo(migration_times_file(ctx))
    assert last_migration_times(ctx) == []  # at once: a FIFO is never opened for reading
    assert last_migration_times(context(tmp_path / "missing")) == []
