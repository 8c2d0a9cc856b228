"""Superset's permission checks and row-level security rules, answered from memory while the
permissions stay as they were. Runs inside Superset.

Copied beside superset_config.py, which installs it. Each chart-data request asks the metadata
database five to seven times whether the caller's roles hold a permission (Flask-AppBuilder's
`exist_permission_on_roles`: a join of five tables, built anew each time): about 14% of a web
worker's CPU under a warm-chart load (py-spy), and as much work again for PostgreSQL. It then
asks which row-level security rules apply to the caller's roles on the chart's dataset
(Superset's `get_rls_filters`, kept by Superset for one request only): twice per chart request,
once in the web process (the cache key) and once where the query is built.

What roles hold, and the rules on them, change only when someone changes them. Triggers in the
metadata database count those changes: every statement that changes one of TABLES (the
permissions, the roles, the row-level security rules and their roles and datasets) raises
`setpoint_permission_generation` in the same transaction (`up` creates them: `counter_sql`). Each
process keeps the answers of the newest generation it has read; a request reads the generation
once (one row) and uses an answer only if it was found under that same generation. So a change
is seen by the next request of every process, whoever made it (the API, `superset init`, psql).

Still asked each time: which roles the caller has (a user removed from a role loses it at once),
the Public role's permissions, ownership. Nothing is kept:
- in a request or task that changed one of TABLES itself (its own transaction sees its
  uncommitted change, which may yet be rolled back);
- for a request that read an older generation than the process's newest;
- for a guest user (an embedded dashboard's token carries rules of its own);
- when the triggers are not all in place (a metadata database Setpoint does not manage, one
  restored from before them), which each process checks once.
Stdlib only at import.
"""

from __future__ import annotations

import logging
import re
from typing import NamedTuple

TABLES = ("ab_permission", "ab_view_menu", "ab_permission_view", "ab_permission_view_role", "ab_role",
          "row_level_security_filters", "rls_filter_roles", "rls_filter_tables")
COUNTER = "setpoint_permission_generation"  # the table, its trigger function and its triggers
MAX_ANSWERS = 20000

# A statement that may change what roles hold: written to one of TABLES.
_VERBS = ("insert", "update", "delete", "truncate", "alter", "drop", "create")
_WRITE = re.compile(r"\s*(" + "|".join(_VERBS) + r")\b.*\b(" + "|".join(TABLES) + r")\b", re.IGNORECASE | re.DOTALL)
_WROTE = "_setpoint_permissions_written"
_GENERATION = "_setpoint_permission_generation"

logger = logging.getLogger("setpoint.permissions")


def counter_sql(owner: str) -> str:
    """The counter and its triggers, made or made again (PostgreSQL 14+), owned by `owner`, the
    role Superset connects as: its changes raise the counter in their own transaction."""
    triggers = "\n".join(
        f"CREATE OR REPLACE TRIGGER {COUNTER} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {COUNTER}();" for table in TABLES)
    return f"""BEGIN;
CREATE TABLE IF NOT EXISTS {COUNTER} (one boolean PRIMARY KEY DEFAULT true CHECK (one), generation bigint NOT NULL);
INSERT INTO {COUNTER} (generation) VALUES (0) ON CONFLICT DO NOTHING;
CREATE OR REPLACE FUNCTION {COUNTER}() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN UPDATE {COUNTER} SET generation = generation + 1; RETURN NULL; END $$;
ALTER TABLE {COUNTER} OWNER TO {owner};
ALTER FUNCTION {COUNTER}() OWNER TO {owner};
{triggers}
COMMIT;
"""


# The tables of TABLES whose counter trigger is in place and enabled, one per row.
TRIGGERED_TABLES_SQL = (f"SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                        f"WHERE t.tgname = '{COUNTER}' AND t.tgenabled <> 'D' AND NOT t.tgisinternal ORDER BY 1")


def all_triggered(tables) -> bool:
    """Whether `tables` (the rows of TRIGGERED_TABLES_SQL) name every table of TABLES."""
    return set(TABLES) <= set(tables)


def triggers_in_place(connection) -> bool:
    from sqlalchemy import text

    return all_triggered(row[0] for row in connection.execute(text(TRIGGERED_TABLES_SQL)))


def writes_permissions(statement: str) -> bool:
    # Most statements are SELECTs: told apart by their first word before the expression runs.
    return statement.lstrip()[:8].lower().startswith(_VERBS) and bool(_WRITE.match(statement))


class _Rule(NamedTuple):
    """A row-level security rule as Superset's `get_rls_filters` gives it."""

    id: int
    group_key: str | None
    clause: str


class PermissionCache:
    """One process's answers, under the generation they were found in."""

    def __init__(self) -> None:
        self.generation: int | None = None
        self.answers: dict[tuple, object] = {}

    def get(self, generation: int, key: tuple):
        return self.answers.get(key) if generation == self.generation else None

    def put(self, generation: int, key: tuple, answer) -> None:
        if self.generation is None or generation > self.generation:
            self.generation, self.answers = generation, {}
        if generation == self.generation:
            if len(self.answers) >= MAX_ANSWERS:
                self.answers.clear()
            self.answers[key] = answer


def install(app) -> None:
    from flask import g, has_app_context
    from sqlalchemy import event, text
    from sqlalchemy.engine import Engine

    from superset.extensions import db

    sm = app.appbuilder.sm
    ask, rules = sm.exist_permission_on_roles, sm.get_rls_filters
    cache = PermissionCache()
    enabled: list[bool] = []  # decided at the first check, in an app context

    def is_enabled() -> bool:
        if not enabled:
            try:
                with db.engine.connect() as connection:
                    enabled.append(connection.dialect.name == "postgresql" and triggers_in_place(connection))
            except Exception:  # noqa: BLE001 - no database now: ask it each time, decide later
                logger.warning("permission cache: cannot tell whether the counter's triggers are in place", exc_info=True)
                return False
            if not enabled[0]:
                logger.warning("permission cache off: the metadata database has no %s triggers "
                               "(run setpoint up to create them)", COUNTER)
        return enabled[0]

    def generation() -> int | None:
        """This request's generation, read once; None when nothing may be kept."""
        if g.get(_WROTE) or not is_enabled():
            return None
        if _GENERATION not in g:
            # Through the session that answers the checks: the generation and the answers are read
            # at the same isolation, so an answer is never older than the generation it is kept under.
            setattr(g, _GENERATION, db.session.execute(text(f"SELECT generation FROM {COUNTER}")).scalar())
        return getattr(g, _GENERATION)

    def remembered(key: tuple, find):
        """The answer for `key` under this request's generation, found with `find()` once per
        generation; None when nothing may be kept."""
        current = generation()
        if current is None:
            return None
        answer = cache.get(current, key)
        if answer is None:
            answer = find()
            if not g.get(_WROTE):  # it wrote while answering: the answer saw its own change
                cache.put(current, key, answer)
        return answer

    def exist_permission_on_roles(view_name: str, permission_name: str, role_ids) -> bool:
        answer = remembered(("permission", view_name, permission_name, tuple(sorted(role_ids))),
                            lambda: bool(ask(view_name, permission_name, role_ids)))
        return ask(view_name, permission_name, role_ids) if answer is None else answer

    def get_rls_filters(table):
        user = g.get("user")
        if user is None or sm.get_current_guest_user_if_guest() is not None:
            return rules(table)
        roles = tuple(sorted(role.id for role in sm.get_user_roles(user)))
        # Kept as plain tuples (id, group_key, clause), as Superset's callers read them; a new list
        # each time, since a caller sorts it in place.
        kept = remembered(("rls", table.id, roles), lambda: tuple(_Rule(*row) for row in rules(table)))
        return rules(table) if kept is None else list(kept)

    sm.exist_permission_on_roles = exist_permission_on_roles
    sm.get_rls_filters = get_rls_filters

    def note_writes(conn, cursor, statement, parameters, context, executemany) -> None:
        if writes_permissions(statement) and has_app_context():
            setattr(g, _WROTE, True)

    # Every engine: the metadata database's is made after this runs in some versions.
    event.listen(Engine, "before_cursor_execute", note_writes)
