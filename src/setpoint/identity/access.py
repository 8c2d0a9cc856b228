"""Roles and row-level security as code (points 7 and 8), the Setpoint side.

`declared` is what an instance's spec asks for: its `roles:` and `row_level_security:`, plus,
with the sample data, two tenant roles of the sample sales (so a demo shows row-level security
at work). superset_config.py carries it as SETPOINT_ACCESS; superset_side/apply_access.py makes
it at `up`, and the scorecard's facts (superset_side/facts.py) check it.
"""

from __future__ import annotations

import hashlib
import json
import re

from setpoint import examples
from setpoint.identity.sso import EMERGENCY_USERNAME_PATTERN
from setpoint.runtime.local.superset_side.sso import USERNAME_PREFIX as SSO_USERNAME_PREFIX
from setpoint.spec.model import InstanceSpec, Role, RowLevelSecurity

ADMIN = "Admin"
SUPERSET_ROLES = (ADMIN, "Alpha", "Gamma", "Public", "sql_lab")
# Permissions Superset 6.1 gives Gamma and Alpha that no role but Admin keeps: full rights on the
# self-registration queue (names, e-mails and registration hashes of people signing up;
# apache/superset#43390 makes it admin-only after 6.1.0).
WITHHELD = [(permission, "UserRegistrationsRestAPI") for permission in
            ("can_add", "can_delete", "can_edit", "can_list", "can_show")]
SAMPLE_ROLES = {
    "sales_europe": Role(base="Gamma", datasets=[examples.TABLE]),
    "sales_north_america": Role(base="Gamma", datasets=[examples.TABLE]),
}
SAMPLE_RLS = RowLevelSecurity(dataset=examples.TABLE, tenant_column="region", all_rows=["Alpha"],
                              filters={"sales_europe": "region = 'Europe'",
                                       "sales_north_america": "region = 'North America'"})


def declared(spec: InstanceSpec) -> dict:
    """The roles and row-level security the spec declares, and who may hold Admin, as SETPOINT_ACCESS."""
    roles, rules = dict(spec.roles), list(spec.row_level_security)
    if spec.examples and not any(r.dataset == examples.TABLE for r in rules):
        roles = {**SAMPLE_ROLES, **roles}
        rules.append(SAMPLE_RLS)
    return {"roles": {name: role.model_dump() for name, role in roles.items()},
            "row_level_security": [rule.model_dump() for rule in rules],
            "withheld": [list(p) for p in WITHHELD],
            "admins": {"users": [spec.admin.username, *spec.admins], "pattern": EMERGENCY_USERNAME_PATTERN,
                       # Users signed in through a group the provider maps to Admin hold it rightly.
                       "by_group": bool(spec.sso) and any(ADMIN in roles for roles in spec.sso.roles.values())}}


def undeclared_admins(metadata: dict) -> list[str]:
    """Users holding Admin whom the declaration does not name (nor an emergency admin, nor a
    single sign-on user when a group maps to Admin)."""
    admins = metadata.get("declared_admins")
    if not admins:
        return []
    return [user for user in metadata.get("admin_users", [])
            if user not in admins["users"] and not re.match(admins["pattern"], user)
            and not (admins["by_group"] and user.startswith(SSO_USERNAME_PREFIX))]


def digest(access: dict) -> str:
    return hashlib.sha256(json.dumps(access, sort_keys=True).encode()).hexdigest()[:16]


def audit(metadata: dict) -> dict:
    """What the metadata's facts (superset_side/facts.py) say against the declaration: roles
    no one declared, declared roles that drifted, roles opening SQL Lab that may not, and how each
    multi-tenant dataset's readers are filtered."""
    declared = set(metadata.get("declared_roles", []))
    return {
        "roles": metadata["roles"],
        "not_declared": sorted(set(metadata["roles"]) - set(SUPERSET_ROLES) - declared),
        "drifted": metadata.get("role_drift", []),
        "sql_lab_not_allowed": (["Gamma"] if metadata["gamma_sql_lab"] else []) + metadata.get("other_sql_lab_roles", []),
        "withheld_held": metadata.get("withheld_held") or {},
        "admins_not_declared": undeclared_admins(metadata),
        "row_level_security": metadata.get("rls_coverage") or [],
    }
