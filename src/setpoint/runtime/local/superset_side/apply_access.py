"""Runs inside an instance's Superset virtualenv: make the roles and row-level security rules that
superset_config.py's SETPOINT_ACCESS declares (rendered from the spec's `roles:` and
`row_level_security:`), and put back those that drifted. Prints one JSON line: the changes made,
and the problems left (a dataset or role that does not exist).

A role gets its base role's permissions, SQL Lab's when asked, and read access to its datasets.
A multi-tenant dataset gets one rule per tenant role (its clause, grouped by the tenant column so
that a user with two tenant roles sees both tenants) and a base rule `1 = 0` for every role but
those, the `all_rows` roles and Admin: a role that gains access to the dataset later sees nothing
until the spec names it. Rules that Setpoint made are named `setpoint: ...`; one the spec no
longer declares is deleted.

First, every role but Admin loses the permissions the declaration withholds (Superset's
`superset init` gives them back to Gamma and Alpha, so this runs after it).
"""

import json

from superset.app import create_app

RULE_PREFIX = "setpoint: "
ADMIN = "Admin"
NOBODY = "1 = 0"

app = create_app()
with app.app_context():
    from superset import db, security_manager as sm
    from superset.connectors.sqla.models import RowLevelSecurityFilter, SqlaTable
    from superset.models.core import Database
    from superset.utils.core import RowLevelSecurityFilterType

    access = app.config.get("SETPOINT_ACCESS") or {"roles": {}, "row_level_security": []}
    changes: list[str] = []
    problems: list[str] = []

    def dataset(name: str):
        tables = db.session.query(SqlaTable).filter_by(table_name=name).all()
        if len(tables) != 1:
            problems.append(f"{len(tables) or 'no'} datasets are named {name}" + (": name one per spec" if tables else ""))
            return None
        return tables[0]

    def permissions_of(role_name: str) -> set:
        role = sm.find_role(role_name)
        return set(role.permissions) if role else set()

    withheld = {(p, v) for p, v in access.get("withheld", [])}
    # `superset init` gives them back each time: one line for the roles that lost the same ones.
    taken: dict[str, list[str]] = {}
    for role in sm.get_all_roles():
        kept = [pv for pv in role.permissions if (pv.permission.name, pv.view_menu.name) not in withheld]
        if role.name != ADMIN and len(kept) != len(role.permissions):
            by_view: dict[str, list[str]] = {}
            for pv in set(role.permissions) - set(kept):
                by_view.setdefault(pv.view_menu.name, []).append(pv.permission.name)
            what = "; ".join(f"{', '.join(sorted(names))} on {view}" for view, names in sorted(by_view.items()))
            taken.setdefault(what, []).append(role.name)
            role.permissions = kept
    for what, roles in taken.items():
        changes.append(f"withheld from {', '.join(sorted(roles))} what only Admin may do: {what}")

    for name, role in access["roles"].items():
        wanted = permissions_of(role["base"]) | (permissions_of("sql_lab") if role["sql_lab"] else set())
        for table in filter(None, (dataset(d) for d in role["datasets"])):
            wanted.add(sm.add_permission_view_menu("datasource_access", table.perm))
        for database_name in role.get("databases", []):
            database = db.session.query(Database).filter_by(database_name=database_name).one_or_none()
            if database is None:
                problems.append(f"no database is named {database_name} (role {name})")
            else:
                wanted.add(sm.add_permission_view_menu("database_access", database.perm))
        current = sm.find_role(name)
        if current is None:
            current = sm.add_role(name)
            changes.append(f"created the role {name}")
        if set(current.permissions) != wanted:
            current.permissions = list(wanted)
            readable = [*role["datasets"], *(f"the database {d}" for d in role.get("databases", []))]
            changes.append(f"gave the role {name} the permissions of {role['base']}"
                           + (" and SQL Lab" if role["sql_lab"] else "")
                           + (f" and read access to {', '.join(readable)}" if readable else ""))
        for username in role.get("users", []):
            user = sm.find_user(username=username)
            if user is None:
                problems.append(f"no user is named {username} (role {name})")
            elif current not in user.roles:
                user.roles = [*user.roles, current]
                changes.append(f"gave {username} the role {name}")

    desired = {}
    for rule in access["row_level_security"]:
        table = dataset(rule["dataset"])
        roles = {n: sm.find_role(n) for n in [*rule["filters"], *rule["all_rows"], ADMIN]}
        missing = sorted(n for n, r in roles.items() if r is None)
        if missing:
            problems.append(f"row-level security of {rule['dataset']}: no role named {', '.join(missing)}")
        if table is None or missing:
            continue
        for role_name, clause in rule["filters"].items():
            desired[f"{RULE_PREFIX}{rule['dataset']} for {role_name}"] = (
                RowLevelSecurityFilterType.REGULAR, table, [roles[role_name]], clause, rule["tenant_column"])
        exempt = [roles[n] for n in dict.fromkeys([*rule["filters"], *rule["all_rows"], ADMIN])]
        desired[f"{RULE_PREFIX}{rule['dataset']} for every other role"] = (
            RowLevelSecurityFilterType.BASE, table, exempt, NOBODY, None)

    existing = {r.name: r for r in db.session.query(RowLevelSecurityFilter)
                if r.name.startswith(RULE_PREFIX)}
    for name, (kind, table, roles, clause, group_key) in desired.items():
        rule = existing.pop(name, None)
        if rule is None:
            rule = RowLevelSecurityFilter(name=name, description="made by Setpoint from the spec; edits are undone by setpoint up")
            db.session.add(rule)
            changes.append(f"created the row-level security rule '{name}'")
        elif (rule.filter_type, [t.id for t in rule.tables], sorted(r.id for r in rule.roles), rule.clause, rule.group_key) \
                != (kind, [table.id], sorted(r.id for r in roles), clause, group_key):
            changes.append(f"put back the row-level security rule '{name}'")
        rule.filter_type, rule.tables, rule.roles, rule.clause, rule.group_key = kind, [table], roles, clause, group_key
    for name, rule in existing.items():
        db.session.delete(rule)
        changes.append(f"deleted the row-level security rule '{name}' (no longer in the spec)")
    db.session.commit()
    print(json.dumps({"changes": changes, "problems": problems}))
