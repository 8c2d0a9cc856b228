"""Row-level security as code, tried as a tenant trying to read another tenant's rows would: two
users of the sample data's tenant roles (sales_europe, sales_north_america) ask the chart-data API
for everything, with a free WHERE clause that tries `OR 1=1`, a filter naming the other region,
a custom SQL metric and column counting the other region, a sub-query, the `samples` and
`drill_detail` result types, a CSV export, the values of the region column (what a dashboard's
native filter lists), and SQL Lab. A role given access to the dataset by hand, which the spec
does not name, sees no row at all. Every count is compared with the admin's."""

import csv
import io

import pytest

from setpoint.checklist import run_scorecard
from setpoint.runtime.local import lifecycle
from tests.conftest import COUNT, chart_data, counts_by_region, run_cli

REGION = {"sales_europe": "Europe", "sales_north_america": "North America"}


@pytest.fixture(scope="module")
def dataset(admin):
    return next(d["id"] for d in admin.get("/api/v1/dataset/?q=(page_size:100)").json()["result"]
                if d["table_name"] == "sales")


@pytest.fixture(scope="module")
def everyone(admin, dataset):
    return counts_by_region(admin, dataset)


@pytest.mark.parametrize("role", sorted(REGION))
def test_a_tenant_sees_its_own_rows_whatever_it_asks(make_user, dataset, everyone, role):
    tenant, own, other = make_user(role), REGION[role], next(r for r in everyone if r != REGION[role])
    assert len(everyone) == 5  # the admin sees every region
    expected = {own: everyone[own]}
    assert counts_by_region(tenant, dataset) == expected
    # A free WHERE clause that tries to open the filter it is ANDed with.
    tried = chart_data(tenant, dataset, columns=["region"], metrics=[COUNT], extras={"where": "1=1) OR (1=1"})
    assert tried is None or {r["region"] for r in tried} <= {own}
    assert counts_by_region(tenant, dataset, extras={"where": "1 = 1 OR region IS NOT NULL"}) == expected
    # A filter that names the other region.
    assert counts_by_region(tenant, dataset, filters=[{"col": "region", "op": "IN", "val": [own, other]}]) == expected
    # A custom metric counting the other region's rows; a custom column reading the whole table.
    assert chart_data(tenant, dataset, columns=[], metrics=[{
        "expressionType": "SQL", "sqlExpression": f"sum(CASE WHEN region <> '{own}' THEN 1 ELSE 0 END)", "label": "others"}]) \
        == [{"others": 0}]
    subquery = chart_data(tenant, dataset, columns=[{"expressionType": "SQL", "label": "all_rows",
                                                     "sqlExpression": "(SELECT count(*) FROM sales)"}], metrics=[COUNT])
    assert subquery is None or all(row["all_rows"] <= everyone[own] for row in subquery)
    # Samples, drill to detail, CSV.
    for result_type in ("samples", "drill_detail"):
        rows = chart_data(tenant, dataset, result_type=result_type, columns=["region"])
        assert rows and {r["region"] for r in rows} == {own}, result_type
    exported = chart_data(tenant, dataset, result_format="csv", columns=["region", "country"], metrics=[])
    assert exported.status_code == 200, exported.text
    assert {row["region"] for row in csv.DictReader(io.StringIO(exported.text))} == {own}


@pytest.mark.parametrize("role", sorted(REGION))
def test_a_tenant_lists_only_its_own_values_and_has_no_sql_lab(make_user, dataset, role, admin):
    tenant = make_user(role)
    # What a dashboard's native filter lists: the distinct values, through the chart-data API;
    # the datasource values API is not the tenant role's at all.
    assert {r["region"] for r in chart_data(tenant, dataset, columns=["region"], metrics=[])} == {REGION[role]}
    values = tenant.call("GET", f"/api/v1/datasource/table/{dataset}/column/region/values/")
    assert values.status_code == 403 or values.json()["result"] == [REGION[role]]
    database = next(d["id"] for d in admin.get("/api/v1/database/").json()["result"])
    sql = tenant.call("POST", "/api/v1/sqllab/execute/", json={
        "database_id": database, "sql": "SELECT region, count(*) FROM sales GROUP BY region", "runAsync": False})
    assert sql.status_code in (401, 403), sql.text


@pytest.mark.parametrize("role", ["Gamma", "sales_europe"])
def test_the_owner_pickers_name_people_without_their_e_mails(make_user, admin, role):
    """Superset 6.1 lists every user's e-mail to anyone who may pick an owner (issue 19)."""
    user = make_user(role)
    for path in ("/api/v1/dashboard/related/owners", "/api/v1/chart/related/owners"):
        assert any("email" in r["extra"] for r in admin.get(path).json()["result"])  # admins still see them
        people = user.get(path).json()["result"]
        assert people and all(r["text"] and "email" not in r["extra"] for r in people), people


def test_a_user_of_both_tenants_sees_both(make_user, dataset, everyone):
    both = make_user(*REGION)
    assert counts_by_region(both, dataset) == {r: everyone[r] for r in REGION.values()}


def test_a_role_given_the_dataset_by_hand_sees_no_row(admin, make_user, dataset, role_ids, home):
    """Read access granted in Superset's own screens, to a role the spec does not name: the
    dataset's base rule leaves it nothing, and the scorecard names the role."""
    permissions = admin.get(f"/api/v1/security/roles/{role_ids['sales_europe']}/permissions/").json()["result"]
    by_hand = admin.post("/api/v1/security/roles/", json={"name": "by_hand_readers"}).json()["id"]
    try:
        assert admin.post(f"/api/v1/security/roles/{by_hand}/permissions", json={
            "permission_view_menu_ids": [p["id"] for p in permissions]}).status_code == 200
        role_ids["by_hand_readers"] = by_hand
        reader = make_user("by_hand_readers")
        assert counts_by_region(reader, dataset) == {}
        card = {r.check.id: r for r in run_scorecard(lifecycle.managed_target(home, "alpha"), name="alpha").results}
        assert card[7].status.value == "PASS", card[7].evidence  # filtered: by the base rule
        assert card[8].status.value == "FAIL" and "by_hand_readers" in card[8].evidence
        admin.call("DELETE", f"/api/v1/security/users/{reader.user_id}")
    finally:
        admin.delete(f"/api/v1/security/roles/{by_hand}")


def test_roles_and_rules_changed_by_hand_are_reported_then_put_back(admin, home, role_ids):
    rules = admin.get("/api/v1/rowlevelsecurity/?q=(page_size:100)").json()["result"]
    europe = next(r for r in rules if r["name"] == "setpoint: sales for sales_europe")
    assert admin.call("PUT", f"/api/v1/rowlevelsecurity/{europe['id']}", json={"clause": "1 = 1"}).status_code in (200, 201)
    # SQL Lab given by hand to a tenant role: it would read every tenant's rows there.
    held = admin.get(f"/api/v1/security/roles/{role_ids['sales_europe']}/permissions/").json()["result"]
    sql_lab = admin.get(f"/api/v1/security/roles/{role_ids['sql_lab']}/permissions/").json()["result"]
    assert admin.post(f"/api/v1/security/roles/{role_ids['sales_europe']}/permissions", json={
        "permission_view_menu_ids": sorted({p["id"] for p in held + sql_lab})}).status_code == 200
    # The registration queue, which only admins may see, given back to Gamma by hand.
    queue = next(p["id"] for p in admin.get(f"/api/v1/security/roles/{role_ids['Admin']}/permissions/").json()["result"]
                 if (p["permission_name"], p["view_menu_name"]) == ("can_list", "UserRegistrationsRestAPI"))
    gamma = admin.get(f"/api/v1/security/roles/{role_ids['Gamma']}/permissions/").json()["result"]
    assert admin.post(f"/api/v1/security/roles/{role_ids['Gamma']}/permissions", json={
        "permission_view_menu_ids": sorted({p["id"] for p in gamma} | {queue})}).status_code == 200
    card = {r.check.id: r for r in run_scorecard(lifecycle.managed_target(home, "alpha"), name="alpha").results}
    assert card[8].status.value == "FAIL" and "the role sales_europe drifted from the spec" in card[8].evidence
    assert "roles the spec does not allow SQL Lab open it: sales_europe" in card[8].evidence
    assert "the role Gamma holds what only admins may (can_list on UserRegistrationsRestAPI)" in card[8].evidence
    audit = run_cli("roles", "alpha")
    assert audit.returncode == 1 and "the role sales_europe drifted" in audit.stderr + audit.stdout
    repaired = run_cli("roles", "alpha", "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    for change in ("withheld from Gamma what only Admin may do: can_list on UserRegistrationsRestAPI",
                   "gave the role sales_europe the permissions of Gamma and read access to sales",
                   "put back the row-level security rule 'setpoint: sales for sales_europe'"):
        assert change in repaired.stdout + repaired.stderr, repaired.stdout
    assert admin.get(f"/api/v1/rowlevelsecurity/{europe['id']}").json()["result"]["clause"] == "region = 'Europe'"
    scorecard = run_scorecard(lifecycle.managed_target(home, "alpha"), name="alpha")
    card = {r.check.id: r for r in scorecard.results}
    assert card[8].status.value == "PASS", (card[8].evidence, scorecard.problems)  # problems: why facts were unreadable
    assert run_cli("roles", "alpha").returncode == 0


def test_an_admin_the_spec_does_not_name_is_drift(admin, home, make_user, role_ids):
    stranger = make_user("Admin")  # given Admin in Superset's own screens, not in the spec's admins
    card = {r.check.id: r for r in run_scorecard(lifecycle.managed_target(home, "alpha"), name="alpha").results}
    assert card[8].status.value == "FAIL" and f"spec's admins do not name: {stranger.username}" in card[8].evidence
    audit = run_cli("roles", "alpha")
    assert audit.returncode == 1 and f"{stranger.username} holds Admin" in audit.stdout + audit.stderr
    assert admin.call("PUT", f"/api/v1/security/users/{stranger.user_id}", json={"roles": [role_ids["Gamma"]]}).status_code == 200
    card = {r.check.id: r for r in run_scorecard(lifecycle.managed_target(home, "alpha"), name="alpha").results}
    assert card[8].status.value == "PASS", card[8].evidence
