"""A restored copy of an instance's cluster, started beside the instance to replay its WAL."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from setpoint import proc
from setpoint.errors import SetpointError
from setpoint.home import chown
from setpoint.net import instance_port_range, is_port_free
from setpoint.readiness import wait_until
from setpoint.render import InstanceContext
from setpoint.services.postgres import PostgresCluster


SOCKETS_PREFIX = ".copy-"


@contextmanager
def recovered(ctx: InstanceContext, data_dir: Path, log_file: Path) -> Iterator[PostgresCluster]:
    """Start the cluster pgBackRest restored into `data_dir` as `ctx`'s data account (the one
    that may read the repository its WAL comes from), on a free port and a socket of its own,
    archiving nothing; yield it once recovery has ended; stop it on the way out."""
    # In root's instance directory, not the data account's run/: there, the account could have
    # swapped it for a link between its making and pg_ctl's start, which enters it as root.
    socket_dir = Path(tempfile.mkdtemp(prefix=SOCKETS_PREFIX, dir=ctx.paths.root))
    chown(socket_dir, ctx.data_user)
    port = next(p for p in instance_port_range() if is_port_free(p, "127.0.0.1"))
    cluster = PostgresCluster(data_dir, socket_dir, port, ctx.data_user, ctx.db_superuser)
    started = False
    try:
        proc.run(
            ["pg_ctl", "start", "-D", data_dir, "-l", log_file, "-w", "-t", "300", "-o",
             f"-p {port} -k {socket_dir} -c listen_addresses='' -c archive_mode=off -c shared_buffers=32MB "
             f"-c max_connections={ctx.sizing.pg_max_connections} "
             # The instance's own client authentication: its data account, as the superuser role.
             f"-c hba_file={ctx.paths.config}/pg_hba.conf -c ident_file={ctx.paths.config}/pg_ident.conf"],
            user=ctx.data_user, cwd=socket_dir, timeout=330, what="starting the restored cluster",
        )
        started = True
        wait_until(cluster.is_primary, 600, SetpointError("the restored cluster did not finish recovery", f"see {log_file}"))
        yield cluster
    finally:
        if started:
            proc.run(["pg_ctl", "stop", "-D", data_dir, "-m", "fast", "-w"], user=ctx.data_user,
                     cwd=socket_dir, timeout=120, check=False)
        shutil.rmtree(socket_dir, ignore_errors=True)
