"""Restore drills: prove the latest backup restores, and how long it takes (the measured RTO)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from pathlib import Path

from setpoint.backup.pgbackrest import PgBackRest
from setpoint import proc
from setpoint.backup.recovery import SOCKETS_PREFIX, recovered
from setpoint.backup.service import now, update_record
from setpoint.errors import SetpointError
from setpoint.home import chown
from setpoint.render import InstanceContext
from setpoint.services.postgres import PostgresCluster, cluster_of
from setpoint.services.superset import SupersetCommands

# What must be the same in the restored metadata as in the live one.
COUNTED = {
    "dashboards": "SELECT count(*) FROM dashboards",
    "charts": "SELECT count(*) FROM slices",
    "datasets": "SELECT count(*) FROM tables",
    "users": "SELECT count(*) FROM ab_user",
    "saved_queries": "SELECT count(*) FROM saved_query",
    "schema_version": "SELECT version_num FROM alembic_version",
}


def metadata_counts(cluster: PostgresCluster) -> dict[str, str]:
    return {key: cluster.sql(query, database="superset") for key, query in COUNTED.items()}


def drill_problems(restored: dict[str, str], live: dict[str, str], opened: dict, version: str) -> list[str]:
    """What makes a restore useless: metadata that differs from the live one, a schema this
    Superset version cannot run on, objects its models do not see, passwords the key cannot open."""
    problems = []
    differences = [f"{k} {restored[k]} vs {live[k]}" for k in live if restored[k] != live[k]]
    if differences:
        problems.append(f"the restored metadata differs from the live one: {', '.join(differences)}")
    if not opened["revision_is_head"]:
        problems.append(f"its schema revision {opened['revision']} is not one Superset {version} runs on")
    unseen = [f"{k} {opened[k]} vs {restored[k]}" for k in COUNTED if k in opened and str(opened[k]) != restored[k]]
    if unseen:
        problems.append(f"Superset's models count other numbers than the tables: {', '.join(unseen)}")
    if opened["passwords_decrypted"] < opened["passwords"]:
        problems.append(f"{opened['passwords'] - opened['passwords_decrypted']} of {opened['passwords']} database "
                        "passwords do not decrypt with the instance's SECRET_KEY")
    return problems


SCRATCH_PREFIX = ".drill-"


def clear_leftovers(ctx: InstanceContext) -> int:
    """Stop and remove what a drill killed midway left (kill -9, its instance's memory limit):
    its scratch cluster, still running, and the copy of the database it restored. Drills run under
    the instance's lock, so any scratch place found by the next one is a leftover. Only root makes
    entries in the instance's directory; the server is stopped as the data account, which can
    signal no process but its own. Returns how many it removed."""
    leftovers = sorted(ctx.paths.root.glob(f"{SCRATCH_PREFIX}*"))
    for scratch in leftovers:
        proc.run(["pg_ctl", "stop", "-D", scratch, "-m", "immediate", "-w"], user=ctx.data_user, cwd=scratch,
                 timeout=120, check=False)
        shutil.rmtree(scratch, ignore_errors=True)
    for sockets in ctx.paths.root.glob(f"{SOCKETS_PREFIX}*"):
        with contextlib.suppress(OSError):  # empty once its server stopped; one in use is left
            sockets.rmdir()
    return len(leftovers)


def run_drill(ctx: InstanceContext, log=lambda message: None) -> dict:
    """Restore the latest backup into a scratch cluster, verify it, compare it with the live
    instance, record the result and the time it took, and clean up."""
    started = time.monotonic()
    backrest = PgBackRest(ctx)
    left = clear_leftovers(ctx)
    if left:
        log(f"stopped and removed {left} scratch cluster(s) an earlier drill left behind")
    # A scratch place of its own, so that two drills never share one, in root's instance directory:
    # the data account may not rename it while root works in it.
    scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=ctx.paths.root))
    record: dict = {"at": now().isoformat(), "ok": False}
    try:
        if not backrest.backups():
            raise SetpointError(f"instance {ctx.spec.name} has no backup to restore", f"take one: setpoint backup {ctx.spec.name}")
        log("pushing the current WAL to the repository (pgbackrest check)")
        backrest.check()
        log("verifying the repository's checksums (pgbackrest verify)")
        backrest.verify()
        chown(scratch, ctx.data_user)
        log("restoring the latest backup and its WAL into a scratch cluster")
        backrest.run("restore", f"--pg1-path={scratch}", "--archive-mode=off", timeout=3600, what="the drill's restore")
        with recovered(ctx, scratch, ctx.paths.data_logs / "drill-postgres.log") as temporary:
            restored = metadata_counts(temporary)
            live = metadata_counts(cluster_of(ctx))
            log(f"opening the restored metadata with Superset {ctx.spec.superset_version}")
            opened = SupersetCommands(ctx).open_restored(temporary.socket_dir, temporary.port)
        problems = drill_problems(restored, live, opened, ctx.spec.superset_version)
        record.update(restored=restored, live=live, superset=opened, ok=not problems, backup=backrest.backups()[-1].label)
        if problems:
            record["error"] = "; ".join(problems)
    except SetpointError as exc:
        record["error"] = exc.message
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        record["seconds"] = round(time.monotonic() - started, 1)
        update_record(ctx.paths, last_drill=record)
    if not record["ok"]:
        raise SetpointError(f"the restore drill of {ctx.spec.name} failed: {record['error']}",
                            f"see {ctx.paths.data_logs} and {ctx.paths.data_logs / 'drill-postgres.log'}")
    return record
