"""Ending a user's sessions everywhere (`setpoint end-sessions NAME --user U`): after a stolen
laptop, a leaked token, or a person leaving.

Every browser session and API token of an instance carries a stamp of its user's credentials
(superset_side/identity_guard.py): their password hash, and a counter in the instance's Redis.
A password change voids the stamp by itself; `end_sessions` raises the counter, which voids every
session, access token and refresh token the user holds without touching their password.
"""

from __future__ import annotations

from setpoint.errors import InputError, SetpointError
from setpoint.observability.logstore import record_audit
from setpoint.render import REDIS_DB
from setpoint.runtime.local import lifecycle
from setpoint.runtime.local.instance import load_context
from setpoint.runtime.local.superset_side.identity_guard import EPOCH_KEY
from setpoint.services.postgres import cluster_of, sql_literal


def end_sessions(home, name: str, username: str, reason: str = "") -> int:
    """Void every session and token of `username` on instance `name`; the user's new epoch."""
    ctx = load_context(home, name)
    known = cluster_of(ctx).sql(f"SELECT 1 FROM ab_user WHERE username = '{sql_literal(username)}'", database="superset")
    if not known:
        raise InputError(f"{name} has no user named {username}", f"list them at {ctx.spec.url}users/list/")
    epoch = lifecycle.instance_redis(ctx).command("-n", str(REDIS_DB["sessions"]), "INCR", EPOCH_KEY.format(username=username))
    if not epoch.isdigit():
        raise SetpointError(f"the Redis of {name} refused to end the sessions of {username} ({epoch or 'no answer'})",
                         f"see: setpoint logs {name} redis")
    record_audit(ctx, "sessions_ended", user=username, reason=reason)
    return int(epoch)
