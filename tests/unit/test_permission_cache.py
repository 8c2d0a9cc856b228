"""The permission cache's pure parts: which statements change what roles hold, and answers kept
only under the newest generation. Against a real instance: tests/integration/test_permission_cache.py."""

import pytest

from setpoint.runtime.local.superset_side.permission_cache import TABLES, PermissionCache, counter_sql, writes_permissions


@pytest.mark.parametrize("statement", [
    "INSERT INTO ab_permission_view_role (id, permission_view_id, role_id) VALUES (1, 2, 3)",
    "DELETE FROM ab_permission_view_role WHERE ab_permission_view_role.id = %(id)s",
    "  update ab_role set name=%(name)s where ab_role.id = %(id)s",
    "TRUNCATE ab_permission_view",
    "INSERT INTO ab_view_menu (name) VALUES (%(name)s) RETURNING ab_view_menu.id",
    "DELETE FROM ab_permission WHERE id = 4",
    "UPDATE row_level_security_filters SET clause=%(clause)s WHERE row_level_security_filters.id = %(id)s",
    "DELETE FROM rls_filter_roles WHERE rls_filter_roles.rls_filter_id = %(id)s",
    "INSERT INTO rls_filter_tables (id, table_id, rls_filter_id) VALUES (1, 2, 3)",
])
def test_a_write_to_the_permission_tables_is_noticed(statement):
    assert writes_permissions(statement)


@pytest.mark.parametrize("statement", [
    "SELECT ab_role.id FROM ab_role JOIN ab_user_role ON ab_role.id = ab_user_role.role_id",
    "INSERT INTO ab_user_role (user_id, role_id) VALUES (1, 2)",  # which roles a user has is read each time
    "UPDATE ab_user SET last_login=%(last_login)s WHERE ab_user.id = %(id)s",
    "INSERT INTO ab_rolex (name) VALUES ('x')",  # a table whose name only starts like one
])
def test_other_statements_are_not(statement):
    assert not writes_permissions(statement)


def test_answers_are_kept_only_under_the_newest_generation():
    cache = PermissionCache()
    key = ("Dashboard", "can_read", (3,))
    cache.put(7, key, True)
    assert cache.get(7, key) is True
    assert cache.get(8, key) is None  # a request that read a newer generation asks the database
    cache.put(6, key, False)  # found by a request that read an older one: not kept
    assert cache.get(7, key) is True and cache.get(6, key) is None
    cache.put(8, key, False)
    assert cache.get(8, key) is False and cache.get(7, key) is None


def test_the_counter_is_raised_by_every_permission_table_and_owned_by_supersets_role():
    sql = counter_sql("superset")
    for table in TABLES:
        assert f"OR TRUNCATE ON {table} FOR EACH STATEMENT" in sql
    assert "ALTER TABLE setpoint_permission_generation OWNER TO superset" in sql
    assert sql.startswith("BEGIN;") and sql.rstrip().endswith("COMMIT;")


def test_the_cache_is_on_only_when_every_table_has_its_trigger():
    from setpoint.runtime.local.superset_side.permission_cache import all_triggered

    assert all_triggered(sorted(TABLES)) and all_triggered([*TABLES, "ab_user"])
    assert not all_triggered(TABLES[:-1]) and not all_triggered([])
