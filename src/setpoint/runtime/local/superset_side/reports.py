"""Alerts, reports and thumbnails: what Setpoint adds. Runs inside Superset.

Copied beside superset_config.py, which installs it.

When the spec names no mail server (smtp:), Superset would accept an e-mail report and fail each
time it runs (its default server is localhost:25, with the published password "superset"): an
alert or report with an e-mail recipient is refused when it is saved, with what to configure.
Slack recipients stay possible.

The worker's browser renders a report's or a thumbnail's page from gunicorn, and that page asks
for its charts' data. Asynchronous queries would queue them for the worker, whose processes may
all be busy rendering: the page would wait for itself until its load timeout, and the image would
show spinners. Requests made straight to gunicorn on loopback (the renderer's; everything through
Caddy carries X-Forwarded-For) run their queries in the web process instead.

One browser at a time: each holds about 650 MiB while it renders, and the worker has several
pool processes (a dashboard's queries run side by side), so two reports due in the same minute
would render at once and could take the instance past its memory limit. A render waits for its
turn, a lock in the instance's Redis. The turn of a render whose process was killed passes at once
to the next (its token names its pid); it expires at the task's hard time limit in any case.

A turn ends only once no browser of the instance's account is left: Superset leaves a render's
browser running when its login page fails (or a time limit stops it there), and a killed task
leaves its browser to init. A thumbnail's task takes its turn before it looks in the cache: each
poll of a thumbnail being rendered queues another task, which then finds the image made while it
waited instead of rendering it again. Stdlib only at import.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import threading
import time
import uuid

REPORTS_API = "/api/v1/report"
BROWSER_LOCK = "setpoint:browser"


def wants_email(body: dict) -> bool:
    """Whether an alert or report, as the API receives it, sends e-mail."""
    return any(isinstance(r, dict) and r.get("type") == "Email" for r in body.get("recipients") or [])


def refuse_email_without_server(app, remedy: str) -> None:
    from flask import jsonify, request

    @app.before_request
    def _refuse():
        if request.method in ("POST", "PUT") and request.path.startswith(REPORTS_API):
            body = request.get_json(silent=True)
            if isinstance(body, dict) and wants_email(body):
                return jsonify({"message": f"This instance sends no e-mail: {remedy}"}), 422
        return None


def is_direct_local_request() -> bool:
    """Whether the current request came straight to gunicorn from this host, not through Caddy."""
    from flask import has_request_context, request

    return has_request_context() and "X-Forwarded-For" not in request.headers and request.remote_addr in ("127.0.0.1", "::1")


def feature_enabled(feature: str, default: bool | None) -> bool:
    """Superset's IS_FEATURE_ENABLED_FUNC: the spec's flags, with asynchronous queries off for the
    renderer's requests (see the module's docstring)."""
    if feature == "GLOBAL_ASYNC_QUERIES" and is_direct_local_request():
        return False
    return bool(default)


# Chromium (its browser and helpers, its crash handler) and ChromeDriver: their names start so.
BROWSER_NAMES = "chrom"


def browser_processes(uid: int) -> list[int]:
    """The browser processes account `uid` runs, zombies aside (they hold nothing)."""
    found = []
    for entry in os.scandir("/proc"):
        try:
            if not entry.name.isdigit() or entry.stat().st_uid != uid:
                continue
            with open(f"/proc/{entry.name}/stat") as stat:
                head, tail = stat.read().rsplit(")", 1)  # "PID (NAME) STATE ..."
        except OSError:  # gone meanwhile
            continue
        if head.split("(", 1)[1].startswith(BROWSER_NAMES) and tail.split()[0] != "Z":
            found.append(int(entry.name))
    return found


def end_browsers(wait_s: float = 10) -> int:
    """Kill the browsers this account still runs and wait until they are gone; how many there were."""
    left = browser_processes(os.getuid())
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + wait_s
    while browser_processes(os.getuid()) and time.monotonic() < deadline:
        for pid in left:  # a driver this process started stays a zombie until reaped
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    return len(left)


# Deletes the turn only if the same holder still has it.
BREAK_IF_HELD_BY = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def holder_is_gone(token: bytes) -> bool:
    """Whether the process that holds the turn (its token starts with its pid) no longer exists:
    killed (its time limit, the instance's memory limit), it never releases it. A token of
    another form, or a pid in use again, waits for the turn's expiry."""
    pid = token.split(b":", 1)[0]
    return pid.isdigit() and not os.path.exists(f"/proc/{int(pid)}")


def one_browser_at_a_time(redis_url: str, hold_s: int) -> None:
    """Renders of this instance's processes take turns (see the module's docstring)."""
    import logging

    import redis
    from superset.utils.screenshots import BaseScreenshot
    from superset.utils.webdriver import WebDriverSelenium

    client, held = redis.Redis.from_url(redis_url), threading.local()
    logger = logging.getLogger(__name__)
    break_if_held_by = client.register_script(BREAK_IF_HELD_BY)

    def take_turn():
        lock = client.lock(BROWSER_LOCK, timeout=hold_s)
        deadline, token = time.monotonic() + hold_s, f"{os.getpid()}:{uuid.uuid4().hex}"
        while not lock.acquire(blocking_timeout=1, token=token):
            holder = client.get(BROWSER_LOCK)
            if holder is not None and holder_is_gone(holder) and break_if_held_by(keys=[BROWSER_LOCK], args=[holder]):
                logger.warning("took the browser's turn from process %s, which is gone", holder.split(b":")[0].decode())
            if time.monotonic() > deadline:
                raise TimeoutError(f"another render held the browser for {hold_s} s")
        return lock

    def end_left_browsers():
        if left := end_browsers():
            logger.warning("ended %d browser process(es) an earlier render left running", left)

    def in_turn(work):
        @functools.wraps(work)
        def wrapped(*args, **kwargs):
            if getattr(held, "turn", False):  # a thumbnail's render, within its task's turn
                return work(*args, **kwargs)
            lock = take_turn()
            held.turn = True
            try:
                end_left_browsers()  # of a render killed at its time limit or out of memory
                return work(*args, **kwargs)
            finally:
                held.turn = False
                end_left_browsers()
                with contextlib.suppress(redis.exceptions.LockError):  # expired meanwhile
                    lock.release()
        return wrapped

    WebDriverSelenium.get_screenshot = in_turn(WebDriverSelenium.get_screenshot)
    BaseScreenshot.compute_and_cache = in_turn(BaseScreenshot.compute_and_cache)
