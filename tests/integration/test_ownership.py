"""Users see and change only what they own, tried as a Gamma or Alpha user of the session's
instance would against objects an admin (or another user) owns: themes, CSS templates and
annotation layers (no owners in Superset), tags on others' objects, another user's running query,
another user's chart pulled into one's own dashboard, the registration queue, a `javascript:` URL
in a dataset, a logout planted in content, a cross-site form replacing a session, sessions and
tokens that outlive a password change, the version told to anonymous visitors, raw SQL in error
answers. Each attack is refused while the owner can still do what is theirs."""

import contextlib
import json
import uuid

import pytest

from setpoint import examples
from setpoint.checklist.evidence import Evidence
from setpoint.net import http_client
from setpoint.readiness import wait_until
from setpoint.runtime.local import lifecycle
from setpoint.services.postgres import cluster_of
from setpoint.runtime.local.instance import load_context
from tests.conftest import USER_PASSWORD, form_login, form_logout, run_cli

THEME = json.dumps({"token": {"colorPrimary": "#2a9d8f"}})


@pytest.fixture(scope="module")
def login_address() -> str:
    return "127.0.0.4"  # this module's many logins count apart from the other modules'


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def gamma(make_user):
    return make_user("Gamma")


@pytest.fixture(scope="module")
def alpha_user(make_user):
    return make_user("Alpha")


@pytest.fixture(scope="module")
def admin_dashboard(admin):
    """A dashboard of the admin's, with a chart of the admin's on the sample data (which a plain
    Gamma user may not read)."""
    chart = admin.find("chart", "slice_name", "Top countries")[0]
    layout = {"DASHBOARD_VERSION_KEY": "v2", "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
              "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": ["CHART-a"]},
              "CHART-a": {"type": "CHART", "id": "CHART-a", "children": [], "meta": {"chartId": chart["id"], "width": 4, "height": 50}}}
    made = admin.post("/api/v1/dashboard/", json={"dashboard_title": unique("admins")}).json()["id"]
    # As the dashboard editor saves a layout: the charts it names become the dashboard's.
    admin.call("PUT", f"/api/v1/dashboard/{made}", json={"position_json": json.dumps(layout),
                                                         "json_metadata": json.dumps({"positions": layout})})
    assert [c["id"] for c in admin.get(f"/api/v1/dashboard/{made}/charts").json()["result"]] == [chart["id"]]
    yield {"id": made, "chart": chart["id"], "layout": layout}
    admin.call("DELETE", f"/api/v1/dashboard/{made}")


def new_body(resource: str) -> dict:
    """What creating (or changing) one of these objects takes, under a name of its own."""
    return {"theme": {"theme_name": unique("brand"), "json_data": THEME},
            "css_template": {"template_name": unique("css"), "css": ".x { color: red }"},
            "annotation_layer": {"name": unique("releases"), "descr": "releases"}}[resource]


@pytest.mark.parametrize("resource", ["theme", "css_template", "annotation_layer"])
def test_objects_without_owners_change_only_by_their_creator(admin, gamma, alpha_user, resource):
    pk = admin.post(f"/api/v1/{resource}/", json=new_body(resource)).json()["id"]
    try:
        for attacker in (gamma, alpha_user):
            changed = new_body(resource)
            if resource == "theme":  # CSS smuggled into a font token showed on the admin's dashboards
                changed["json_data"] = json.dumps({"token": {"fontFamily": "x}body{display:none"}})
            answer = attacker.call("PUT", f"/api/v1/{resource}/{pk}", json=changed)
            assert answer.status_code == 403 and "only what you own" in answer.text, (resource, answer.status_code, answer.text)
            assert attacker.call("DELETE", f"/api/v1/{resource}/{pk}").status_code == 403
            assert attacker.call("DELETE", f"/api/v1/{resource}/?q=!({pk})").status_code == 403
        if resource == "annotation_layer":
            added = alpha_user.call("POST", f"/api/v1/annotation_layer/{pk}/annotation/", json={
                "short_descr": "planted", "start_dttm": "2026-01-01 00:00:00", "end_dttm": "2026-01-01 00:00:00"})
            assert added.status_code == 403, added.text
        assert admin.get(f"/api/v1/{resource}/{pk}").status_code == 200  # still there
        # The creator still changes and deletes their own.
        own = alpha_user.post(f"/api/v1/{resource}/", json=new_body(resource)).json()["id"]
        assert alpha_user.call("PUT", f"/api/v1/{resource}/{own}", json=new_body(resource)).status_code == 200
        assert alpha_user.call("DELETE", f"/api/v1/{resource}/{own}").status_code == 200
    finally:
        admin.call("DELETE", f"/api/v1/{resource}/{pk}")


def test_gamma_tags_and_untags_only_its_own_objects(admin, gamma, admin_dashboard, home):
    tag = unique("planted")
    answer = gamma.call("POST", "/api/v1/tag/", json={"name": tag, "objects_to_tag": [["dashboard", admin_dashboard["id"]]]})
    assert answer.status_code == 403, answer.text
    assert gamma.call("POST", f"/api/v1/tag/3/{admin_dashboard['id']}/", json={"properties": {"tags": [tag]}}).status_code == 403
    assert gamma.call("POST", "/api/v1/tag/bulk_create", json={
        "tags": [{"name": tag, "objects_to_tag": [["chart", admin_dashboard["chart"]]]}]}).status_code == 403
    # The admin's own tag on the admin's dashboard: Gamma can neither untag it nor delete the tag.
    admins_tag = unique("finance")
    assert admin.call("POST", "/api/v1/tag/", json={"name": admins_tag, "objects_to_tag": [["dashboard", admin_dashboard["id"]]]}).status_code == 201
    assert gamma.call("DELETE", f"/api/v1/tag/3/{admin_dashboard['id']}/{admins_tag}/").status_code == 403
    assert gamma.call("DELETE", f"/api/v1/tag/?q=!('{admins_tag}')").status_code == 403
    # Gamma's own dashboard: tagged and untagged.
    own = gamma.post("/api/v1/dashboard/", json={"dashboard_title": unique("gammas")}).json()["id"]
    mine = unique("mine")
    assert gamma.call("POST", "/api/v1/tag/", json={"name": mine, "objects_to_tag": [["dashboard", own]]}).status_code == 201
    assert gamma.call("DELETE", f"/api/v1/tag/3/{own}/{mine}/").status_code == 200
    # A deleted tag takes its tagged objects along (Superset 6.1 leaves them, unattached).
    assert admin.call("DELETE", f"/api/v1/tag/?q=!('{admins_tag}')").status_code == 200
    orphans = cluster_of(load_context(home, "alpha")).sql("SELECT count(*) FROM tagged_object WHERE tag_id IS NULL",
                                                          database="superset")
    assert orphans == "0"
    gamma.call("DELETE", f"/api/v1/dashboard/{own}")


def test_a_user_stops_only_their_own_queries(make_user):
    attacker, runner = make_user("Gamma", "sql_lab"), make_user("Alpha", "sql_lab")
    database = runner.find("database", "database_name", examples.DATABASE_NAME)[0]
    client_id = uuid.uuid4().hex[:10]
    started = runner.call("POST", "/api/v1/sqllab/execute/", json={
        "database_id": database["id"], "sql": "SELECT pg_sleep(30)", "runAsync": True, "client_id": client_id})
    assert started.status_code == 202, started.text
    refused = attacker.call("POST", "/api/v1/query/stop", json={"client_id": client_id})
    assert refused.status_code == 403 and "your own queries" in refused.text, refused.text
    # Its owner stops it once it runs (a queued query cannot be cancelled yet: 422).
    wait_until(lambda: runner.call("POST", "/api/v1/query/stop", json={"client_id": client_id}).status_code == 200,
               60, AssertionError("the owner could not stop their query"), interval=1)


def test_a_dashboard_cannot_pull_in_a_chart_its_editor_may_not_read(admin, gamma, admin_dashboard):
    own = gamma.post("/api/v1/dashboard/", json={"dashboard_title": unique("gammas")}).json()["id"]
    try:
        answer = gamma.call("PUT", f"/api/v1/dashboard/{own}", json={
            "position_json": json.dumps(admin_dashboard["layout"]), "json_metadata": json.dumps({"positions": admin_dashboard["layout"]})})
        assert answer.status_code == 403 and str(admin_dashboard["chart"]) in answer.text, answer.text
        copied = gamma.call("POST", f"/api/v1/dashboard/{own}/copy/", json={
            "dashboard_title": unique("copy"), "json_metadata": json.dumps({"positions": admin_dashboard["layout"]})})
        assert copied.status_code == 403, copied.text
        assert gamma.get(f"/api/v1/dashboard/{own}/charts").json()["result"] == []
    finally:
        gamma.call("DELETE", f"/api/v1/dashboard/{own}")
    # A dashboard shared with Gamma (as an owner) lists only the charts Gamma may read; the admin sees all.
    me = admin.get("/api/v1/me/").json()["result"]["id"]
    assert admin.call("PUT", f"/api/v1/dashboard/{admin_dashboard['id']}", json={"owners": [me, gamma.user_id]}).status_code == 200
    assert [c["id"] for c in admin.get(f"/api/v1/dashboard/{admin_dashboard['id']}/charts").json()["result"]] == [admin_dashboard["chart"]]
    assert gamma.get(f"/api/v1/dashboard/{admin_dashboard['id']}/charts").json()["result"] == []


def test_normal_work_of_a_tenant_still_works(make_user):
    tenant = make_user("sales_europe")
    dashboard = tenant.find("dashboard", "dashboard_title", examples.DASHBOARD_TITLE)[0]
    charts = tenant.get(f"/api/v1/dashboard/{dashboard['id']}/charts").json()["result"]
    assert charts and all(c["form_data"] for c in charts)  # its charts are on a dataset it reads
    sales = tenant.find("dataset", "table_name", examples.TABLE)[0]
    chart = tenant.post("/api/v1/chart/", json={"slice_name": unique("europe"), "viz_type": "table",
                                               "datasource_id": sales["id"], "datasource_type": "table"}).json()["id"]
    assert tenant.call("POST", "/api/v1/tag/", json={"name": unique("mine"), "objects_to_tag": [["chart", chart]]}).status_code == 201
    assert tenant.call("DELETE", f"/api/v1/chart/{chart}").status_code == 200


def test_only_admins_see_the_registration_queue(gamma, alpha_user, admin):
    for user in (gamma, alpha_user):
        assert user.call("GET", "/api/v1/security/user_registrations/").status_code in (401, 403)
    assert admin.call("GET", "/api/v1/security/user_registrations/").status_code == 200


def test_url_fields_take_only_web_urls_from_anyone(admin):
    sales = admin.find("dataset", "table_name", examples.TABLE)[0]
    for url in ("javascript:alert(document.cookie)", " JaVaScRiPt:alert(1)", "data:text/html,<script>alert(1)</script>"):
        answer = admin.call("PUT", f"/api/v1/dataset/{sales['id']}", json={"default_endpoint": url})
        assert answer.status_code == 400 and "http(s)" in answer.text, (url, answer.text)
    assert admin.call("PUT", f"/api/v1/dataset/{sales['id']}", json={"default_endpoint": "https://example.com/sales"}).status_code == 200
    assert admin.call("PUT", f"/api/v1/dataset/{sales['id']}", json={"default_endpoint": ""}).status_code == 200


@contextlib.contextmanager
def browser_login(instance, ca_root, username: str, password: str):
    """A browser signed in through the login form (a session cookie)."""
    with http_client(instance[0].url, ca_file=ca_root, follow_redirects=False, local_address="127.0.0.4") as browser:
        assert form_login(browser, username, password).status_code == 302 and browser.get("/api/v1/me/").status_code == 200
        yield browser


def test_content_cannot_log_a_viewer_out_only_their_own_post_does(instance, ca_root, gamma):
    with browser_login(instance, ca_root, gamma.username, USER_PASSWORD) as browser:
        # What a CSS url(/logout/) or a markdown image does: a GET.
        page = browser.get("/logout/")
        assert page.status_code == 200 and browser.get("/api/v1/me/").status_code == 200
        # A POST without the page's token (a cross-site form) does not either.
        assert browser.post("/logout/", data={}).status_code in (302, 400)
        assert browser.get("/api/v1/me/").status_code == 200
        assert form_logout(browser).status_code == 302
        assert browser.get("/api/v1/me/").status_code == 401


def test_a_cross_site_request_never_replaces_a_session(instance, ca_root):
    """A top-level cross-site POST carries no session cookie (SameSite=Lax): Superset answered it
    with a new session cookie, which replaced the signed-in user's."""
    with http_client(instance[0].url, ca_file=ca_root, follow_redirects=False) as stranger:
        same_site = stranger.post("/login/", data={"username": "x", "password": "y"})
        assert "session=" in same_site.headers.get("set-cookie", "")  # what the guard prevents below
        stranger.cookies.clear()
        for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            answer = stranger.post("/login/", data={"username": "x", "password": "y"}, headers=headers)
            assert "set-cookie" not in answer.headers, headers


def test_sessions_and_tokens_end_with_a_password_change_and_on_demand(instance, ca_root, make_user, admin, home):
    user = make_user("Gamma")
    tokens = user.login(user.username, USER_PASSWORD).json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    refresh = {"Authorization": f"Bearer {tokens['refresh_token']}"}
    with browser_login(instance, ca_root, user.username, USER_PASSWORD) as browser, \
            http_client(instance[0].url, ca_file=ca_root) as api:
        assert api.get("/api/v1/me/", headers=bearer).status_code == 200
        new_password = "another passphrase long enough 2026"
        assert admin.call("PUT", f"/api/v1/security/users/{user.user_id}", json={"password": new_password}).status_code == 200
        assert browser.get("/api/v1/me/").status_code == 401
        assert api.get("/api/v1/me/", headers=bearer).status_code == 401
        assert api.post("/api/v1/security/refresh", headers=refresh).status_code == 401
        assert user.login(user.username, new_password).status_code == 200
    # "Log out everywhere": the password stays, every session and token ends.
    tokens = user.login(user.username, new_password).json()
    with browser_login(instance, ca_root, user.username, new_password) as browser, \
            http_client(instance[0].url, ca_file=ca_root) as api:
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert api.get("/api/v1/me/", headers=bearer).status_code == 200
        ended = run_cli("end-sessions", "alpha", "--user", user.username, "--reason", "laptop stolen", home=home)
        assert ended.returncode == 0, ended.stderr
        assert browser.get("/api/v1/me/").status_code == 401
        assert api.get("/api/v1/me/", headers=bearer).status_code == 401
        assert api.post("/api/v1/security/refresh", headers={"Authorization": f"Bearer {tokens['refresh_token']}"}).status_code == 401
        assert user.login(user.username, new_password).status_code == 200
    unknown = run_cli("end-sessions", "alpha", "--user", "nobody-by-that-name", home=home)
    assert unknown.returncode != 0 and "no user named nobody-by-that-name" in unknown.stderr + unknown.stdout


def test_anonymous_visitors_are_not_told_the_version(home, instance, ca_root, admin):
    with http_client(instance[0].url, ca_file=ca_root) as anonymous:
        assert "6.1.0" not in anonymous.get("/login/").text
    assert Evidence(lifecycle.managed_target(home, "alpha")).version_told_to_anonymous is None
    assert admin.get("/version").json()["version_string"] == "6.1.0"  # signed-in users still see it


def test_error_answers_carry_no_sql_of_the_metadata(admin, make_user):
    """Deleting a user who made things fails on a foreign key: Superset 6.1 answered with the SQL."""
    maker = make_user("Alpha")
    made = maker.post("/api/v1/dashboard/", json={"dashboard_title": unique("makers")}).json()["id"]
    try:
        answer = admin.call("DELETE", f"/api/v1/security/users/{maker.user_id}")
        assert answer.status_code >= 400, answer.text
        assert "[SQL:" not in answer.text and "ab_user" not in answer.text and "sqlalche.me" not in answer.text, answer.text
    finally:
        admin.call("DELETE", f"/api/v1/dashboard/{made}")
