"""Forwarded headers count only when Caddy sent them. Runs inside Superset.

Copied beside superset_config.py, which lists `only_from_caddy` in ADDITIONAL_MIDDLEWARE, around
Superset's ProxyFix. gunicorn listens on loopback, where every local account can reach it
straight, Caddy bypassed: with an X-Forwarded-For of its choosing, a process of another instance
(or any account of the host) was a new client address at each login, so the login rate limit,
which counts per address, never applied, and the audit trail recorded the address it made up.

Caddy sends the instance's proxy secret in X-Setpoint-Proxy (and replaces one a client sent). A
request that carries it keeps its forwarded headers; any other request loses them, and is what it
is: a client on loopback, over plain HTTP, counted under 127.0.0.1.
"""

from __future__ import annotations

import hmac

HEADER = "HTTP_X_SETPOINT_PROXY"
FORWARDED = ("HTTP_FORWARDED", "HTTP_X_FORWARDED_")


def only_from_caddy(secret: str):
    """A WSGI middleware that drops the forwarded headers of a request Caddy did not send."""

    def wrap(app):
        def middleware(environ, start_response):
            given = environ.pop(HEADER, "")
            if not (given and hmac.compare_digest(given.encode(), secret.encode())):
                for key in [k for k in environ if k.startswith(FORWARDED)]:
                    del environ[key]
                environ["wsgi.url_scheme"] = "http"  # gunicorn trusts X-Forwarded-Proto from loopback
            return app(environ, start_response)

        return middleware

    return wrap
