"""Every API call asks whether the anonymous (Public) role may make it: a cheaper answer while
that role may do nothing. Runs inside Superset.

Copied beside superset_config.py, which installs it. Flask-AppBuilder's `protect()` asks
`is_item_public` before it looks at the caller, on every API call, and each time loads the Public
role and its permissions from the metadata database: two queries, about 13% of a web worker's
CPU under a warm-chart load (py-spy). Setpoint instances grant the Public role nothing (point 3).
While it holds no permission, a process remembers that for `ttl_s` seconds and answers "not
public" without asking. A permission granted to it takes effect within `ttl_s`; one taken away
takes effect at once (a role that holds permissions is never remembered). Stdlib only at import.
"""

from __future__ import annotations

import time

TTL_S = 5.0


def remember_when_empty(app, ttl_s: float = TTL_S) -> None:
    sm = app.appbuilder.sm
    ask = sm.is_item_public
    empty_until = 0.0

    def is_item_public(permission_name, view_name):
        nonlocal empty_until
        if time.monotonic() < empty_until:
            return False
        if not sm.get_public_permissions():
            empty_until = time.monotonic() + ttl_s
            return False
        return ask(permission_name, view_name)

    sm.is_item_public = is_item_public
