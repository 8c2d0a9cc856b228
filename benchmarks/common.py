"""What the benchmarks share: a throwaway SETPOINT_HOME beside the host's own."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from setpoint.home import Home
from setpoint.services.supervisor import Supervisor


@contextmanager
def throwaway_home() -> Iterator[Home]:
    """A SETPOINT_HOME of its own under /tmp (reachable by the service accounts), sharing the
    Superset virtualenvs the tests cache; its supervisord stopped and its files removed on exit."""
    root = Path(tempfile.mkdtemp(prefix="setpoint-bench-", dir="/tmp"))
    root.chmod(0o755)
    venvs = Path(os.environ.get("SETPOINT_TEST_VENVS", "/tmp/setpoint-test-venvs"))
    venvs.mkdir(parents=True, exist_ok=True)
    venvs.chmod(0o755)
    (root / "venvs").symlink_to(venvs)
    os.environ["SETPOINT_HOME"] = str(root)
    home = Home(root)
    try:
        yield home
    finally:
        Supervisor(home).shutdown()
        shutil.rmtree(root, ignore_errors=True)
