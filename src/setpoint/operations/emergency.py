"""Emergency access: a time-limited admin for when the usual way in is lost (the identity
provider is down, the admin's password is gone).

`grant` creates the admin with a generated password that is shown once and stored nowhere,
records the grant (who, why, until when) in the instance's audit trail and in its record, and
the host's scheduler calls `revoke_expired` every minute: at expiry the account is deactivated,
which ends its sessions and API tokens at their next request (Flask-AppBuilder loads only
active users). The account stays, inactive, so what it did remains attributed in Superset.
"""

from __future__ import annotations

import secrets as random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from setpoint.backup.service import amend_record, now, read_record
from setpoint.errors import InputError
from setpoint.identity import sso
from setpoint.observability.logstore import record_audit
from setpoint.render import InstanceContext
from setpoint.services.postgres import cluster_of, sql_literal
from setpoint.services.superset import SupersetCommands
from setpoint.spec import InstanceSpec

RECORD = "emergency_access"
GENERATED_NAME = r"^emergency-[0-9]{8}-[0-9]{6}$"  # the names `grant` gives, and only those
SHORTEST = timedelta(seconds=30)
ROLE = "Admin"


@dataclass(frozen=True)
class Grant:
    username: str
    password: str
    expires: datetime
    reason: str


def sign_in_url(spec: InstanceSpec) -> str:
    """Where an emergency admin signs in: the break-glass form under single sign-on (whose login
    page offers only the provider), else the login page."""
    return spec.url + (sso.BREAK_GLASS_PATH if spec.sso else "/login/").lstrip("/")


def grant(ctx: InstanceContext, ttl: timedelta, reason: str) -> Grant:
    """Create an emergency admin that lives `ttl`; its password is in the answer only."""
    longest = timedelta(hours=ctx.spec.runbook.emergency_access_max_h)
    if not SHORTEST <= ttl <= longest:
        raise InputError(f"emergency access lasts between 30s and {ctx.spec.runbook.emergency_access_max_h}h",
                         "give a --ttl of at least 30s" if ttl < SHORTEST else
                         "give a shorter --ttl, or raise runbook.emergency_access_max_h in the spec")
    if not reason.strip():
        raise InputError("emergency access needs a reason", 'say why with --reason, e.g. --reason "IdP down, INC-1234"')
    start = now()
    username = f"emergency-{start:%Y%m%d-%H%M%S}"
    password = random.token_urlsafe(18)
    SupersetCommands(ctx).ensure_user(username, password, [ROLE], "Emergency", "Access", f"{username}@{ctx.spec.host}")
    entry = {"username": username, "granted_at": start.isoformat(), "expires_at": (start + ttl).isoformat(),
             "reason": reason.strip()}
    amend_record(ctx.paths, lambda record: record.update({RECORD: [*record.get(RECORD, []), entry]}))
    record_audit(ctx, "emergency_access_granted", user=username, role=ROLE, reason=entry["reason"],
                 expires=entry["expires_at"])
    return Grant(username, password, start + ttl, entry["reason"])


def grants(ctx: InstanceContext) -> list[dict]:
    """Every emergency admin ever granted on the instance, with its expiry and revocation."""
    return read_record(ctx.paths).get(RECORD, [])


def active(ctx: InstanceContext) -> list[dict]:
    return [g for g in grants(ctx) if not g.get("revoked_at")]


def name_list(names: Iterable[str]) -> str:
    """Usernames as an SQL list: 'a', 'b'."""
    return ", ".join(f"'{sql_literal(name)}'" for name in names)


def revoke_expired(ctx: InstanceContext, at: datetime | None = None, everyone: bool = False) -> list[str]:
    """Deactivate the emergency admins whose time is over (all of them with `everyone`); their names.
    Needs no instance lock: it works while a command or a long scheduled job holds the instance."""
    at = at or now()
    revoked: list[str] = []

    def revoke(record: dict) -> None:
        due = [g for g in record.get(RECORD, []) if not g.get("revoked_at")
               and (everyone or datetime.fromisoformat(g["expires_at"]) <= at)]
        if not due:
            return
        cluster_of(ctx).sql(f"UPDATE ab_user SET active = false WHERE username IN ({name_list(g['username'] for g in due)})",
                            database="superset")
        for entry in due:
            entry["revoked_at"] = at.isoformat()
            record_audit(ctx, "emergency_access_revoked", user=entry["username"],
                         reason="revoked by the operator" if everyone else "expired")
            revoked.append(entry["username"])

    amend_record(ctx.paths, revoke)
    return revoked


def deactivate_ended(ctx: InstanceContext) -> list[str]:
    """Deactivate every emergency admin the metadata holds active whose access is not current in
    this instance's record: revoked, expired, or granted on another instance. A restore brings back
    the users of its moment as they were then, so a rewound instance, or a copy restored from
    another, had its ended emergency admins active again, and nothing would end them. Their names."""
    return cluster_of(ctx).sql(deactivate_ended_sql(active(ctx), now()), database="superset").split()


def deactivate_ended_sql(grants: list[dict], at: datetime) -> str:
    current = [g["username"] for g in grants if datetime.fromisoformat(g["expires_at"]) > at]
    # `NOT IN` an empty or NULL list matches nothing in SQL: only a list of current names is excluded.
    kept = f" AND username NOT IN ({name_list(current)})" if current else ""
    return f"UPDATE ab_user SET active = false WHERE active AND username ~ '{GENERATED_NAME}'{kept} RETURNING username"
