"""Roles and row-level security as code: what a spec declares, and how point 7 reads the facts."""

import pytest

from setpoint.checklist.model import Status
from setpoint.checklist.security import probe_rls
from setpoint.errors import InputError
from setpoint.identity import access
from setpoint.spec import parse_spec
from tests.unit.test_checklist import evidence

TENANTS = {"dataset": "orders", "tenant_column": "customer_id",
           "filters": {"customer_a": "customer_id = 1", "customer_b": "customer_id = 2"}}


def test_the_sample_data_brings_two_tenant_roles_of_its_sales():
    declared = access.declared(parse_spec({"name": "demo"}))
    assert set(declared["roles"]) == {"sales_europe", "sales_north_america"}
    [rule] = declared["row_level_security"]
    assert rule["dataset"] == "sales" and rule["tenant_column"] == "region" and rule["all_rows"] == ["Alpha"]
    declared = access.declared(parse_spec({"name": "demo", "examples": False}))
    assert declared["roles"] == {} and declared["row_level_security"] == []


def test_the_spec_s_own_rules_come_beside_the_sample_or_replace_it():
    spec = parse_spec({"name": "demo", "roles": {"customer_a": {"datasets": ["orders"]}, "customer_b": {"datasets": ["orders"]}},
                       "row_level_security": [TENANTS]})
    declared = access.declared(spec)
    assert [r["dataset"] for r in declared["row_level_security"]] == ["orders", "sales"]
    assert declared["roles"]["customer_a"] == {"base": "Gamma", "datasets": ["orders"], "databases": [], "users": [], "sql_lab": False}
    own_sales = {**TENANTS, "dataset": "sales", "tenant_column": "region"}
    replaced = access.declared(parse_spec({"name": "demo", "row_level_security": [own_sales]}))
    assert replaced["row_level_security"] == [{**own_sales, "all_rows": []}] and replaced["roles"] == {}
    assert access.digest(declared) != access.digest(replaced)


@pytest.mark.parametrize("fields, says", [
    ({"roles": {"Alpha": {}}}, "may not redefine Superset's own Alpha"),
    ({"row_level_security": [TENANTS, TENANTS]}, "names each dataset once"),
    ({"row_level_security": [{**TENANTS, "filters": {"customer_a": "1=1; DROP TABLE ab_user"}}]}, "without ';'"),
    ({"row_level_security": [{**TENANTS, "filters": {}}]}, "filters"),
    ({"roles": {"analyst": {"base": "Admin"}}}, "base"),
])
def test_a_wrong_declaration_says_what_is_wrong(fields, says):
    with pytest.raises(InputError, match=says):
        parse_spec({"name": "demo", **fields})


def facts(coverage):
    return evidence(metadata={"rls_rules": 3, "datasets": 2, "rls_coverage": coverage})


@pytest.mark.parametrize("coverage, status, says", [
    (None, Status.UNVERIFIED, "which datasets are multi-tenant is not known"),
    ([], Status.FAIL, "declares no multi-tenant dataset"),
    ([{"dataset": "orders", "readers": ["Admin", "Alpha", "customer_a"], "all_rows": ["Admin", "Alpha"], "unfiltered": []}],
     Status.PASS, "each of its 3 reading roles is filtered, but Admin and Alpha"),
    ([{"dataset": "orders", "readers": ["Admin", "Gamma_plus"], "all_rows": ["Admin"], "unfiltered": ["Gamma_plus"]}],
     Status.FAIL, "orders is read unfiltered by Gamma_plus"),
    ([{"dataset": "orders", "problem": "no datasets are named orders"}], Status.FAIL, "no datasets are named orders"),
])
def test_point_7_fails_on_any_reading_role_left_unfiltered(coverage, status, says):
    finding = probe_rls(facts(coverage))
    assert finding.status is status and says in finding.evidence


def test_users_holding_admin_are_drift_unless_the_spec_names_them():
    spec = parse_spec({"name": "demo", "admins": ["alice"]})
    facts = {"declared_admins": access.declared(spec)["admins"],
             "admin_users": ["admin", "alice", "mallory", "emergency-20261201-101500", "sso-1234"]}
    assert access.undeclared_admins(facts) == ["mallory", "sso-1234"]
    assert access.audit({"roles": [], "gamma_sql_lab": [], **facts})["admins_not_declared"] == ["mallory", "sso-1234"]
    # Under single sign-on, a group the provider maps to Admin makes its users admins rightly.
    sso = parse_spec({"name": "demo", "sso": {"issuer": "https://idp.example.com", "client_id": "superset",
                                              "roles": {"bi-admins": ["Admin"]}}})
    assert access.undeclared_admins({**facts, "declared_admins": access.declared(sso)["admins"]}) == ["alice", "mallory"]
    # A Superset Setpoint did not make declares nothing: nothing to compare with.
    assert access.undeclared_admins({"admin_users": ["mallory"]}) == []
