"""Superset's processes keep their permission checks' answers and the row-level security rules
until the permissions change (superset_side/permission_cache.py): a permission taken away, or a
rule changed, through the API or straight in the metadata database, applies at the very next
request of every web worker and of the Celery worker that builds the query."""

import uuid

from setpoint.runtime.local.instance import load_context
from setpoint.runtime.local.superset_side import permission_cache
from setpoint.services.postgres import cluster_of
from tests.conftest import counts_by_region


def generation(cluster) -> int:
    return int(cluster.sql(f"SELECT generation FROM {permission_cache.COUNTER}", database="superset"))


def test_a_permission_taken_away_ends_access_at_the_next_request_of_every_worker(admin, make_user, role_ids, home):
    cluster = cluster_of(load_context(home, "alpha"))
    assert cluster.sql(permission_cache.TRIGGERED_TABLES_SQL, database="superset").split() == sorted(permission_cache.TABLES)
    admin_role = admin.find("security/roles", "name", "Admin")[0]["id"]
    held = admin.get(f"/api/v1/security/roles/{admin_role}/permissions/").json()["result"]
    read_dashboards = next(p["id"] for p in held if (p["permission_name"], p["view_menu_name"]) == ("can_read", "Dashboard"))
    name, empty = (f"{kind}-{uuid.uuid4().hex[:6]}" for kind in ("dashboard-readers", "no-permissions"))
    role = admin.post("/api/v1/security/roles/", json={"name": name}).json()["id"]
    role_ids[empty] = admin.post("/api/v1/security/roles/", json={"name": empty}).json()["id"]

    def grant(*permissions: int) -> None:
        before = generation(cluster)
        assert admin.post(f"/api/v1/security/roles/{role}/permissions",
                          json={"permission_view_menu_ids": list(permissions)}).status_code == 200
        assert generation(cluster) > before  # the triggers counted the change

    reader = outsider = None
    try:
        grant(read_dashboards)
        role_ids[name] = role
        reader, outsider = make_user(name), make_user(empty)

        def answers(user=None) -> list[int]:  # enough requests to reach every web worker, each answering from memory
            return [(user or reader).call("GET", "/api/v1/dashboard/").status_code for _ in range(10)]

        assert answers() == [200] * 10
        # An answer kept for one role is never another's.
        assert answers(outsider) == [403] * 10 and answers() == [200] * 10
        grant()  # through the API
        assert answers() == [403] * 10
        grant(read_dashboards)
        assert answers() == [200] * 10
        # Straight in the metadata database, as an operator in psql would.
        cluster.sql(f"DELETE FROM ab_permission_view_role WHERE role_id = {int(role)}", database="superset")
        assert answers() == [403] * 10
    finally:
        for user in (reader, outsider):
            if user is not None:
                admin.call("DELETE", f"/api/v1/security/users/{user.user_id}")
        for each in (role, role_ids[empty]):
            admin.delete(f"/api/v1/security/roles/{each}")
    web_log = (home.instance("alpha").logs / "web.log").read_text(errors="replace")
    assert "permission cache off" not in web_log and "permission cache: cannot tell" not in web_log


def test_a_changed_row_level_security_rule_applies_at_the_next_request(admin, make_user, role_ids, home):
    """A rule of a role of its own narrows what a sales_europe user sees (the two rules are ANDed):
    changing its clause through the API or in psql applies to the next chart queries (forced: the
    worker builds each one), while a user of sales_europe alone, asked in between, keeps its own
    answer: a rule kept for one set of roles is never another's."""
    cluster = cluster_of(load_context(home, "alpha"))
    sales = next(d["id"] for d in admin.get("/api/v1/dataset/?q=(page_size:100)").json()["result"] if d["table_name"] == "sales")
    name = f"narrowed-{uuid.uuid4().hex[:6]}"
    role_ids[name] = admin.post("/api/v1/security/roles/", json={"name": name}).json()["id"]
    rule = admin.post("/api/v1/rowlevelsecurity/", json={
        "name": name, "filter_type": "Regular", "tables": [sales], "roles": [role_ids[name]],
        "group_key": name, "clause": "1 = 1"}).json()["id"]
    try:
        narrowed, tenant = make_user("sales_europe", name), make_user("sales_europe")
        europe = counts_by_region(tenant, sales)
        assert list(europe) == ["Europe"]

        def seen(user=None) -> list[dict]:  # both web workers, each answering from memory
            return [counts_by_region(user or narrowed, sales) for _ in range(4)]

        def change(clause: str, through_psql: bool = False) -> None:
            before = generation(cluster)
            if through_psql:
                cluster.sql(f"UPDATE row_level_security_filters SET clause = '{clause}' WHERE id = {int(rule)}",
                            database="superset")
            else:
                # The whole rule: Superset empties the roles and datasets a PUT leaves out.
                assert admin.call("PUT", f"/api/v1/rowlevelsecurity/{rule}", json={
                    "clause": clause, "roles": [role_ids[name]], "tables": [sales]}).status_code in (200, 201)
            assert generation(cluster) > before  # the triggers counted the change

        assert seen() == [europe] * 4
        change("1 = 0")
        assert seen() == [{}] * 4
        assert seen(tenant) == [europe] * 4 and seen() == [{}] * 4
        change("1 = 1", through_psql=True)
        assert seen() == [europe] * 4
    finally:
        admin.call("DELETE", f"/api/v1/rowlevelsecurity/{rule}")
        admin.delete(f"/api/v1/security/roles/{role_ids[name]}")
