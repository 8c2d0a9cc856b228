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
would render at once and could take the instance past its memory limit. A render waits for the
instance's lock in Redis; a render whose process is killed frees it when it expires (its task's
hard time limit). Stdlib only at import.
"""

from __future__ import annotations

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


def one_browser_at_a_time(redis_url: str, hold_s: int) -> None:
    """Renders of this instance's processes take turns (see the module's docstring)."""
    import redis
    from superset.utils.webdriver import WebDriverSelenium

    render = WebDriverSelenium.get_screenshot
    client = redis.Redis.from_url(redis_url)

    def in_turn(self, *args, **kwargs):
        with client.lock(BROWSER_LOCK, timeout=hold_s, blocking_timeout=hold_s):
            return render(self, *args, **kwargs)

    WebDriverSelenium.get_screenshot = in_turn
