"""Rate limits on every password login of a Superset instance, and the lifetime of its sessions.
Runs inside Superset.

Copied beside superset_config.py, whose FLASK_APP_MUTATOR calls `limit_logins` and
`end_sessions_after`. Superset 6.1
puts AUTH_RATE_LIMIT on its own login page's blueprint (SupersetAuthView), which only serves GET,
and switches Flask-AppBuilder's limit off, so the requests that check a password were never
limited: the form login (FAB's AuthDBView, POST /login/) and the API login (FAB's SecurityApi,
POST /api/v1/security/login and /refresh). This module limits those blueprints' POSTs.

The limiter keys on the client address Caddy saw (ProxyFix trusts one X-Forwarded-For hop, which
Caddy sets, replacing the client's own), and counts in Redis, shared by every gunicorn worker.
Over the limit: 429 with Retry-After.

Sessions are server-side (Flask-Session in Redis) and end when idle (PERMANENT_SESSION_LIFETIME,
renewed by each request); `end_sessions_after` also ends them a fixed time after their login,
however busy. Stdlib only at import.
"""

from __future__ import annotations

import logging
import time

# The blueprints whose POST routes take a password or a refresh token.
LOGIN_BLUEPRINTS = ("AuthDBView", "SecurityApi")

logger = logging.getLogger("setpoint.login")


def limit_logins(app, limit: str) -> list[str]:
    """Apply `limit` (e.g. "20 per minute") to the POSTs of every login blueprint the app has."""
    limiter = app.appbuilder.sm.limiter
    limited = []
    for name in LOGIN_BLUEPRINTS:
        blueprint = app.blueprints.get(name)
        if blueprint is not None:
            limiter.limit(limit, methods=["POST"])(blueprint)
            limited.append(name)
    if len(limited) < len(LOGIN_BLUEPRINTS):
        logger.warning("login rate limit: %s not found, not limited",
                       ", ".join(sorted(set(LOGIN_BLUEPRINTS) - set(limited))))
    return limited


SESSION_STARTED = "_setpoint_session_started"


def end_sessions_after(app, lifetime_s: int) -> None:
    """Log out any browser session older than `lifetime_s` since its login."""
    from flask import session
    from flask_login import current_user, logout_user

    @app.before_request
    def _end_old_sessions():
        if not current_user.is_authenticated or "_user_id" not in session:
            return  # anonymous, or a bearer token (its own expiry applies)
        started = session.setdefault(SESSION_STARTED, time.time())
        if time.time() - started > lifetime_s:
            logout_user()
            session.clear()
