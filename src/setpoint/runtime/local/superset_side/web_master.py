"""gunicorn's master for Superset: Superset loaded once and shared by the workers, and a reload
that loads a changed configuration without dropping a request. Runs inside gunicorn's master.

Copied beside gunicorn.conf.py, which calls `patch()` first and hands gunicorn these hooks.

Shared: the master loads Superset (`preload_app`) and forks its workers from it, so the pages
that hold Superset's code and its loaded app are the workers' copy-on-write, not each worker's
own (the demo instance's web processes: 477 MiB PSS before, 388-409 after chart loads; each
worker copies some of the shared pages as it serves).
`when_ready` freezes what is loaded out of the garbage collector's reach (`gc.freeze`), whose
passes would otherwise write to, and so copy, every page; and closes the metadata database's
connections the master opened while loading, which its workers would otherwise share.

Reload: gunicorn's own HUP keeps a preloaded app as it was, so a changed superset_config.py
would never be read. `on_reload` instead has the master exec itself: the same process (the pid
supervisord watches), a fresh interpreter, handed gunicorn's listening socket (GUNICORN_FD, as
gunicorn's USR2 does) and the list of its workers. While the new master loads Superset, those
workers are still its children and keep serving from the same socket. Each new worker, once it
is ready, has them stop gracefully (they finish their requests within graceful_timeout), so
the socket is never without a worker and no request is refused.

gevent: the master is patched before Superset loads, so what Superset makes as it loads (locks,
sockets, pools) is cooperative in the workers, as when each worker loaded it after patching.
os, signal and subprocess stay unpatched in the master, whose arbiter forks, reaps and signals
its workers itself; each worker patches them when it starts. Stdlib only at import.
"""

from __future__ import annotations

import gc
import glob
import os
import signal

RETIRING = "SETPOINT_RETIRING_WORKERS"  # "pid:start_time,..." of the workers a reload replaces

# Read once, in the master, when this master starts; its workers inherit the list.
_retiring: tuple[tuple[int, int], ...] = ()


def patch() -> None:
    """Make the master ready to load Superset for gevent workers; note the workers to replace."""
    global _retiring
    from gevent import monkey

    monkey.patch_all(os=False, signal=False, subprocess=False)
    if signal.getsignal(signal.SIGHUP) == signal.SIG_DFL:
        # Until gunicorn installs its handlers, after Superset has loaded, a HUP would end the master.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    _retiring = parse_retiring(os.environ.pop(RETIRING, ""))


def parse_retiring(text: str) -> tuple[tuple[int, int], ...]:
    return tuple((int(pid), int(started)) for pid, started in (item.split(":") for item in text.split(",") if item))


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command's name (fields[0] is field 3 of proc(5))."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks after boot): with its pid, it names one process."""
    fields = _stat(pid)
    return int(fields[19]) if fields else None  # field 22


def parent_of(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[1]) if fields else None  # field 4


def on_starting(server) -> None:
    """A fresh start forgets the metrics of an earlier one's processes (counters start from zero
    again, which Prometheus reads as a reset). After a reload, the retiring workers still write theirs."""
    if _retiring:
        return
    for path in glob.glob(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], "*.db")):
        os.remove(path)


def when_ready(server) -> None:
    """Superset is loaded and no worker is forked yet."""
    _close_metadata_connections(server.app.callable)
    gc.collect()
    gc.freeze()


def _close_metadata_connections(app) -> None:
    from superset.extensions import db

    with app.app_context():
        engines = getattr(db, "engines", None)  # Flask-SQLAlchemy 3; 2.5 has one engine
        for engine in engines.values() if engines is not None else [db.engine]:
            engine.dispose()


def on_reload(server) -> None:
    """Load the new configuration in a fresh master with the same pid (see the module's docstring)."""
    env = {k: v for k, v in os.environ.items() if k not in ("GUNICORN_FD", "GUNICORN_PID")}
    # With GUNICORN_PID, gunicorn takes its sockets from GUNICORN_FD; seeing that its parent is
    # not that pid, it then runs as the one master.
    env["GUNICORN_PID"] = str(os.getpid())
    env["GUNICORN_FD"] = ",".join(str(listener.fileno()) for listener in server.LISTENERS)
    started = {pid: start_time(pid) for pid in server.WORKERS}
    env[RETIRING] = ",".join(f"{pid}:{at}" for pid, at in started.items() if at is not None)
    server.log.info("Reloading: a new master loads Superset while workers %s serve", sorted(server.WORKERS))
    os.chdir(server.START_CTX["cwd"])
    os.execvpe(server.START_CTX[0], server.START_CTX["args"], env)


def post_fork(server, worker) -> None:
    # psycopg2 blocks a whole gevent worker unless its waits are made cooperative.
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()


def post_worker_init(worker) -> None:
    """This worker serves now: the workers of before the reload stop gracefully."""
    for pid in retiring_siblings(_retiring, os.getppid()):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def retiring_siblings(retiring: tuple[tuple[int, int], ...], master: int) -> list[int]:
    """The retiring workers still running: the same process (pid and start time) under this master."""
    return [pid for pid, started in retiring if start_time(pid) == started and parent_of(pid) == master]
