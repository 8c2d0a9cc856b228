"""The host's process supervisor (supervisord): keeps every Setpoint process running."""

from __future__ import annotations

import os
import signal
import sys
import time
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path

from supervisor.xmlrpc import SupervisorTransport

from setpoint import proc
from setpoint.errors import SetpointError
from setpoint.home import Home
from setpoint.readiness import wait_until


@dataclass(frozen=True)
class ProcessState:
    """What supervisord says about one program."""

    name: str
    state: str  # RUNNING, STARTING, BACKOFF, STOPPED, EXITED, FATAL
    pid: int
    uptime_s: int
    description: str

    @property
    def is_running(self) -> bool:
        return self.state == "RUNNING"


# The processes an instance may have, in start order.
COMPONENTS = ("postgres", "redis", "web", "worker", "beat")
# Beside the clean environment: every Python program's output reaches its log as it is written,
# and none writes bytecode beside the code it runs (config/ is root's).
SUPERVISORD_ENVIRONMENT = {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def program_names(instance: str) -> set[str]:
    """Supervisor program names of an instance (exact: `demo-` is also a prefix of `demo-pitr-`)."""
    return {f"{instance}-{component}" for component in COMPONENTS}


class Supervisor:
    """Controls the supervisord of one SETPOINT_HOME."""

    def __init__(self, home: Home, bin_dir: Path | None = None) -> None:
        self.home = home
        self.conf = home.supervisor_dir / "supervisord.conf"
        self.socket = home.supervisor_dir / "supervisor.sock"
        # supervisord is a Python dependency of Setpoint: it lives beside Setpoint's interpreter.
        self.bin_dir = bin_dir or Path(sys.executable).parent

    def _bin(self, name: str) -> str:
        candidate = self.bin_dir / name
        return str(candidate) if candidate.exists() else proc.find_binary(name)

    def _rpc(self):
        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def is_running(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return self._rpc().getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Error):
            return False

    def ensure_running(self, timeout: float = 20) -> bool:
        """Start supervisord if it is not running; return whether it was started."""
        if self.is_running():
            return False
        (self.home.supervisor_dir / "conf.d").mkdir(parents=True, exist_ok=True)
        # Every program inherits supervisord's environment: the clean one, never the operator's.
        proc.run([self._bin("supervisord"), "-c", self.conf], what="starting supervisord", timeout=30,
                 clean_env=True, env=SUPERVISORD_ENVIRONMENT)
        wait_until(self.is_running, timeout, SetpointError(
            "supervisord did not start", f"see {self.home.supervisor_dir}/supervisord.log"), interval=0.2)
        return True

    def inherited_variables(self) -> list[str]:
        """The names of the variables in the running supervisord's environment beyond the clean
        one (every program inherits them): those of the shell that started it, by an earlier
        Setpoint."""
        try:
            environ = Path(f"/proc/{self._rpc().getPID()}/environ").read_bytes()
        except (OSError, xmlrpc.client.Error):
            return []
        names = {entry.split(b"=", 1)[0].decode(errors="replace") for entry in environ.split(b"\0") if entry}
        return sorted(names - set(proc.KEPT_ENVIRONMENT) - set(SUPERVISORD_ENVIRONMENT))

    def ctl(self, *args: str, timeout: float = 120) -> str:
        """Run supervisorctl against this home's supervisord."""
        result = proc.run([self._bin("supervisorctl"), "-c", self.conf, *args], timeout=timeout, check=False)
        # supervisorctl exits non-zero when a program it was asked about is not running; callers
        # judge the states they need through `states`.
        return result.stdout

    def update(self) -> None:
        """Apply changed include files: add, remove or restart the programs they changed."""
        self.ctl("update")

    def states(self, instance: str | None = None) -> dict[str, ProcessState]:
        """Every program and its state; with `instance`, only that instance's programs."""
        if not self.is_running():
            return {}
        infos = self._rpc().getAllProcessInfo()
        now = int(time.time())
        return {
            i["name"]: ProcessState(
                i["name"],
                i["statename"],
                i["pid"],
                now - i["start"] if i["statename"] == "RUNNING" else 0,
                i["description"],
            )
            for i in infos
            if instance is None or i["name"] in program_names(instance)
        }

    def start(self, *names: str) -> None:
        if names:
            self.ctl("start", *names)

    def stop(self, *names: str) -> None:
        if names:
            self.ctl("stop", *names)

    def restart(self, *names: str) -> None:
        if names:
            self.ctl("restart", *names)

    def signal(self, signal_name: str, *names: str) -> None:
        """Send a signal (HUP, TERM...) to running programs, without restarting them."""
        if names:
            self.ctl("signal", signal_name, *names)

    def wait_running(self, names: list[str], timeout: float = 60) -> None:
        """Wait until every named program is RUNNING, or fail naming the ones that are not."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.states()
            missing = [n for n in names if n not in states or not states[n].is_running]
            if not missing:
                return
            failed = [n for n in missing if n in states and states[n].state in ("FATAL", "EXITED", "BACKOFF")]
            if time.monotonic() > deadline or (failed and time.monotonic() > deadline - timeout / 2):
                raise SetpointError(f"{', '.join(missing)} did not start", self._log_hint(missing[0]))
            time.sleep(0.5)

    def _log_hint(self, program: str) -> str:
        instance, _, component = program.rpartition("-")
        if instance:
            return f"see: setpoint logs {instance} {component}"
        return f"see the host's logs in {self.home.supervisor_dir} and {self.home.caddy_dir}"

    def shutdown(self, timeout: float = 90) -> None:
        """Stop supervisord and everything it runs, and wait until it has exited."""
        pid = self.pid()
        if self.is_running():
            self._rpc().shutdown()
        elif pid:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid and _is_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.5)

    def pid(self) -> int | None:
        """The pid of this home's supervisord, if it runs."""
        try:
            pid = int((self.home.supervisor_dir / "supervisord.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _is_alive(pid) else None


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited; it only waits for its parent.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return False
