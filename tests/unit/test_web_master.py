"""gunicorn master's reload hand-over: which earlier workers a new worker stops (real processes)."""

import os
import subprocess
import sys

import pytest

from setpoint.runtime.local.superset_side import web_master


@pytest.fixture
def child():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process.pid
    process.kill()
    process.wait()


def test_the_retiring_list_round_trips_pids_and_start_times():
    assert web_master.parse_retiring("") == ()
    assert web_master.parse_retiring("12:345,67:890") == ((12, 345), (67, 890))


def test_a_start_time_names_one_process(child):
    assert web_master.start_time(child) is not None
    assert web_master.start_time(child) >= web_master.start_time(os.getpid())
    assert web_master.parent_of(child) == os.getpid()
    assert web_master.start_time(2**22 + 7) is None  # above pid_max: no such process


def test_a_retiring_worker_is_stopped_only_while_it_is_that_same_process_under_this_master(child):
    started = web_master.start_time(child)
    assert web_master.retiring_siblings(((child, started),), os.getpid()) == [child]
    # Its pid reused by a later process: another start time.
    assert web_master.retiring_siblings(((child, started + 1),), os.getpid()) == []
    # Under another master (the pid of this test's parent).
    assert web_master.retiring_siblings(((child, started),), os.getppid()) == []


def test_the_master_is_the_one_process_a_reload_keeps(monkeypatch):
    """on_reload execs the master itself, with its sockets and its workers named for the new one."""
    calls = {}

    class Listener:
        def fileno(self):
            return 7

    class Server:
        LISTENERS = [Listener()]
        WORKERS = {os.getpid(): None}
        START_CTX = {"cwd": "/", 0: "/venv/bin/python", "args": ["/venv/bin/python", "/venv/bin/gunicorn"]}

        class log:  # noqa: N801 - gunicorn's attribute name
            @staticmethod
            def info(*args):
                calls["log"] = args

    monkeypatch.setattr(os, "chdir", lambda path: calls.setdefault("cwd", path))
    monkeypatch.setattr(os, "execvpe", lambda file, args, env: calls.update(file=file, args=args, env=env))
    monkeypatch.setenv("GUNICORN_FD", "99")
    web_master.on_reload(Server)
    assert calls["file"] == "/venv/bin/python" and calls["args"][1] == "/venv/bin/gunicorn" and calls["cwd"] == "/"
    env = calls["env"]
    assert env["GUNICORN_FD"] == "7" and env["GUNICORN_PID"] == str(os.getpid())
    assert web_master.parse_retiring(env[web_master.RETIRING]) == ((os.getpid(), web_master.start_time(os.getpid())),)
