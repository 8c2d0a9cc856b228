"""Readiness by probing, never by sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable

from setpoint.errors import SetpointError


def wait_until(ready: Callable[[], bool], timeout: float, failure: SetpointError, interval: float = 0.3) -> None:
    """Poll `ready` until it returns True; raise `failure` when `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise failure
        time.sleep(interval)
