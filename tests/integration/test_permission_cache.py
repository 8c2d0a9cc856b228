"""Superset's processes keep their permission checks' answers until the permissions change
(superset_side/permission_cache.py): a permission taken away, through the API or straight in the
metadata database, ends access at the very next request of every web worker."""

import uuid

from setpoint.runtime.local.instance import load_context
from setpoint.runtime.local.superset_side import permission_cache
from setpoint.services.postgres import cluster_of


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
