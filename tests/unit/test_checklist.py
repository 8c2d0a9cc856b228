"""The checklist as data, its evaluation table-tested against evidence, and its report formats."""

import html
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from xml.etree import ElementTree as ET

import httpx
import pytest

from setpoint.checklist import CHECKS, report
from setpoint.checklist import performance as perf
from setpoint.checklist import security as sec
from setpoint.checklist.evidence import Evidence, Target, once
from setpoint.checklist.model import CheckResult, Finding, Scorecard, Section, Status, combine, level_of


def test_catalog_is_the_checklist():
    assert [c.id for c in CHECKS] == list(range(1, 26))
    assert len({c.key for c in CHECKS}) == 25
    per_section = {s: sum(c.section is s for c in CHECKS) for s in Section}
    assert list(per_section.values()) == [8, 5, 4, 4, 4]
    for check in CHECKS:
        assert callable(check.probe) and check.title and check.remedy_managed and check.remedy_external


@pytest.mark.parametrize("score, level", [(0, "POC"), (10, "POC"), (11, "acceptable for internal use"),
                                          (18, "acceptable for internal use"), (19, "solid production"),
                                          (23, "solid production"), (24, "exemplary"), (25, "exemplary")])
def test_levels_are_the_checklists(score, level):
    assert level_of(score) == level


def test_combine_never_passes_what_was_not_seen():
    ok, bad, unknown = Finding(Status.PASS, "a"), Finding(Status.FAIL, "b", "fix b"), Finding(Status.UNVERIFIED, "c")
    assert combine([ok, ok]).status is Status.PASS
    assert combine([ok, unknown]).status is Status.UNVERIFIED
    assert combine([unknown, bad]).status is Status.FAIL
    assert combine([ok, bad]).remedy == "fix b"


def response(status=200, headers=None, text="OK"):
    return httpx.Response(status, headers=headers or {}, text=text, request=httpx.Request("GET", "https://x/"))


def evidence(**attrs):
    """A stand-in for Evidence: the probes only read attributes and config sections."""
    sections = attrs.pop("sections", {})
    defaults = dict(target=SimpleNamespace(managed=None, is_https=True, url="https://bi.example.com/",
                                           plain_http_url="http://bi.example.com/"),
                    metadata=None, login_page=None, config=sections or None, facts=sections,
                    version_told_to_anonymous=None, login_settings=None)
    ns = SimpleNamespace(**{**defaults, **attrs})
    ns.config_section = lambda name: sections.get(name)
    ns.get = lambda path: attrs.get("health")
    return ns


SECURE_COOKIE = "session=abc; Secure; HttpOnly; Path=/; SameSite=Lax"


@pytest.mark.parametrize(
    "ev, expected",
    [
        (evidence(forged_cookies_accepted={"k": False},
                  sections={"secret_key": {"sha256": "0", "length": 64, "in_config_file": False}}), Status.PASS),
        (evidence(forged_cookies_accepted={"k": True},
                  sections={"secret_key": {"sha256": "0", "length": 64, "in_config_file": False}}), Status.FAIL),
        (evidence(forged_cookies_accepted={"k": False},
                  sections={"secret_key": {"sha256": "0", "length": 20, "in_config_file": False}}), Status.FAIL),
        (evidence(forged_cookies_accepted={"k": False},
                  sections={"secret_key": {"sha256": "0", "length": 64, "in_config_file": True}}), Status.FAIL),
        (evidence(forged_cookies_accepted={"k": False},
                  sections={"secret_key": {"sha256": "0", "length": 64, "in_config_file": False,
                                           "published_defaults": ["GUEST_TOKEN_JWT_SECRET"]}}), Status.FAIL),
        (evidence(forged_cookies_accepted={"k": False}), Status.UNVERIFIED),
    ],
)
def test_secret_key(ev, expected):
    assert sec.probe_secret_key(ev).status is expected


HSTS = {"strict-transport-security": "max-age=63072000; includeSubDomains; preload"}


@pytest.mark.parametrize(
    "ev, expected",
    [
        (evidence(health=response(headers=HSTS), plain_http=response(308, {"location": "https://x/"}),
                  legacy_tls_accepted=False), Status.PASS),
        (evidence(health=response(headers={"strict-transport-security": "max-age=300"}),
                  plain_http=response(308, {"location": "https://x/"}), legacy_tls_accepted=False), Status.FAIL),
        (evidence(health=response(headers=HSTS), plain_http=response(200), legacy_tls_accepted=False), Status.FAIL),
        (evidence(health=response(headers=HSTS), plain_http=response(308, {"location": "https://x/"}),
                  legacy_tls_accepted=True), Status.FAIL),
        (evidence(target=SimpleNamespace(is_https=False, url="http://x/", managed=None)), Status.FAIL),
    ],
)
def test_https(ev, expected):
    assert sec.probe_https(ev).status is expected


@pytest.mark.parametrize(
    "cookie, refused, limit, expected",
    [
        (SECURE_COOKIE, True, None, Status.PASS),
        ("session=abc; HttpOnly; Path=/; SameSite=Lax", True, None, Status.FAIL),
        (SECURE_COOKIE, False, None, Status.FAIL),
        (SECURE_COOKIE, True, 3600, Status.FAIL),
    ],
)
def test_cookies_and_csrf(cookie, refused, limit, expected):
    ev = evidence(login_page=response(headers={"set-cookie": cookie}), tokenless_post_refused=refused,
                  sections={"cookies": {"csrf_time_limit": limit}})
    assert sec.probe_cookies_csrf(ev).status is expected


@pytest.mark.parametrize(
    "csp, expected",
    [
        ("default-src 'self'; script-src 'self' 'nonce-x'", Status.PASS),
        ("default-src 'self'; script-src 'self' 'unsafe-eval'", Status.FAIL),
        ("default-src 'self' 'unsafe-eval'", Status.FAIL),
        (None, Status.FAIL),
    ],
)
def test_csp(csp, expected):
    ev = evidence(login_page=response(headers={"content-security-policy": csp} if csp else {}))
    assert sec.probe_csp(ev).status is expected


def meta(**overrides):
    return {"trivial_password_users": [], "active_local_users": 1, "public_permissions": 0, "gamma_sql_lab": [],
            "roles": ["Admin", "Alpha", "Gamma", "Public", "sql_lab"], "dialect": "postgresql",
            "server_version_num": 150020, "dashboards": 1, "datasets": 1, "engine_options": {}, **overrides}


@pytest.mark.parametrize(
    "refused, metadata, expected",
    [
        (True, meta(), Status.PASS),
        (False, meta(), Status.FAIL),
        (True, meta(trivial_password_users=["bob"]), Status.FAIL),
        (True, None, Status.UNVERIFIED),
    ],
)
def test_default_admin(refused, metadata, expected):
    assert sec.probe_default_admin(evidence(admin_admin_refused=refused, metadata=metadata)).status is expected


@pytest.mark.parametrize(
    "anonymous, metadata, expected",
    [
        (401, meta(), Status.PASS),
        (200, meta(), Status.FAIL),
        (401, meta(public_permissions=3), Status.FAIL),
        (401, meta(gamma_sql_lab=["menu_access on SQL Lab"]), Status.FAIL),
        (401, meta(withheld_held={"Gamma": ["can_list on UserRegistrationsRestAPI"]}), Status.FAIL),
        (401, None, Status.UNVERIFIED),
    ],
)
def test_roles(anonymous, metadata, expected):
    assert sec.probe_roles(evidence(anonymous_api_status=anonymous, metadata=metadata)).status is expected


def test_roles_of_a_managed_instance_need_every_ownership_guard_and_no_version_told():
    from setpoint.runtime.local.superset_side.ownership_guard import GUARDS

    managed = SimpleNamespace(managed=object(), is_https=True, url="https://bi.example.com/")
    every = meta(ownership_guards=sorted(GUARDS), declared_roles=[])
    assert sec.probe_roles(evidence(target=managed, anonymous_api_status=401, metadata=every)).status is Status.PASS
    one_missing = meta(ownership_guards=sorted(GUARDS)[1:], declared_roles=[])
    finding = sec.probe_roles(evidence(target=managed, anonymous_api_status=401, metadata=one_missing))
    assert finding.status is Status.FAIL and sorted(GUARDS)[0] in finding.evidence
    told = evidence(anonymous_api_status=401, metadata=meta(), version_told_to_anonymous="6.1.0")
    assert sec.probe_roles(told).status is Status.FAIL


@pytest.mark.parametrize(
    "auth, expected",
    [
        ({"auth_type": 4, "oauth_providers": ["keycloak"]}, Status.PASS),
        ({"auth_type": 1, "oauth_providers": []}, Status.FAIL),
        (None, Status.UNVERIFIED),
    ],
)
def test_sso(auth, expected):
    sections = {"auth": auth} if auth else {}
    assert sec.probe_sso(evidence(sections=sections)).status is expected


def bootstrap_page(conf: dict) -> str:
    data = html.escape(json.dumps({"common": {"conf": conf}}), quote=True)
    return f'<html><body><div id="app" data-bootstrap="{data}"></div></body></html>'


@pytest.mark.parametrize(
    "page, expected",
    [
        (response(text=bootstrap_page({"AUTH_TYPE": 4, "AUTH_PROVIDERS": [{"name": "keycloak", "icon": "fa-key"}]})),
         (Status.PASS, "OAuth/OIDC (keycloak) (as the login page tells visitors)")),
        (response(text=bootstrap_page({"AUTH_TYPE": 1, "AUTH_USER_REGISTRATION": False})),
         (Status.FAIL, "AUTH_TYPE is 1 (database logins)")),
        (response(text=bootstrap_page({"AUTH_TYPE": 2})), (Status.FAIL, "(LDAP logins)")),
        (response(302, {"location": "https://idp.example.com/authorize?client_id=bi&response_type=code&state=x"}),
         (Status.PASS, "OAuth/OIDC (idp.example.com)")),
        (response(302, {"location": "https://idp.example.com/sso?SAMLRequest=abc"}), (Status.PASS, "SAML")),
        (response(302, {"location": "/login/keycloak"}), (Status.UNVERIFIED, "give --config")),
        (response(text="<html>no bootstrap</html>"), (Status.UNVERIFIED, "give --config")),
    ],
)
def test_sso_of_a_foreign_superset_from_its_login_page(page, expected):
    ev = Evidence(Target(url="https://bi.example.com/"))
    ev.__dict__["login_page"] = page  # what the site answered to GET /login/
    finding = sec.probe_sso(ev)
    assert (finding.status, expected[1] in finding.evidence) == (expected[0], True), finding.evidence
    ev.close()


REDIS = {"type": "RedisCache", "reachable": True}


@pytest.mark.parametrize(
    "caches, expected",
    [
        ({"CACHE_CONFIG": REDIS, "DATA_CACHE_CONFIG": REDIS, "RESULTS_BACKEND": {"type": "RedisCache"}}, Status.PASS),
        ({"CACHE_CONFIG": REDIS, "DATA_CACHE_CONFIG": {"type": "NullCache"}, "RESULTS_BACKEND": {"type": None}}, Status.FAIL),
        ({"CACHE_CONFIG": {**REDIS, "reachable": False, "error": "refused"}, "RESULTS_BACKEND": {"type": None}}, Status.FAIL),
    ],
)
def test_redis_cache(caches, expected):
    assert perf.probe_redis_cache(evidence(sections={"caches": caches})).status is expected


@pytest.mark.parametrize(
    "metadata, expected",
    [
        (meta(), Status.PASS),
        (meta(server_version_num=130011), Status.FAIL),
        (meta(dialect="sqlite"), Status.FAIL),
        (None, Status.UNVERIFIED),
    ],
)
def test_metadata_postgres(metadata, expected):
    assert perf.probe_metadata_postgres(evidence(metadata=metadata)).status is expected


@pytest.mark.parametrize(
    "gaq, workers, expected",
    [
        ({"enabled": True, "jwt_secret_is_default": False, "jwt_secret_length": 64, "jwt_secret_equals_secret_key": False}, {"w": 1}, Status.PASS),
        ({"enabled": False}, {"w": 1}, Status.FAIL),
        ({"enabled": True, "jwt_secret_is_default": True, "jwt_secret_length": 21, "jwt_secret_equals_secret_key": False}, {"w": 1}, Status.FAIL),
        ({"enabled": True, "jwt_secret_is_default": False, "jwt_secret_length": 64, "jwt_secret_equals_secret_key": False}, {}, Status.FAIL),
    ],
)
def test_async_queries(gaq, workers, expected):
    ev = evidence(sections={"async_queries": gaq, "celery": {"configured": True, "workers": workers}})
    assert perf.probe_async_queries(ev).status is expected


def test_hsts_parser():
    assert sec.parse_hsts("max-age=63072000; includeSubDomains; preload") == (63072000, True)
    assert sec.parse_hsts("max-age=300") == (300, False)
    assert sec.parse_hsts(None) == (0, False)


def sample_card():
    results = [CheckResult(c, Status.PASS if c.id <= 11 else Status.FAIL, f"evidence {c.id}",
                           None if c.id <= 11 else "fix it") for c in CHECKS]
    return Scorecard(target="demo", managed=True, results=results, seconds=1.5)


def test_json_schema_is_stable():
    payload = json.loads(report.to_json(sample_card()))
    assert list(payload) == ["instance", "score", "max", "level", "problems", "checks"]
    assert payload["score"] == 11 and payload["max"] == 25 and payload["level"] == "acceptable for internal use"
    assert list(payload["checks"][0]) == ["id", "key", "section", "title", "status", "evidence", "remedy"]
    assert payload["checks"][0]["key"] == "secret-key" and payload["checks"][24]["key"] == "update-procedure"


def test_junit_has_one_testcase_per_point():
    root = ET.fromstring(report.to_junit(sample_card()))
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == 25
    assert sum(c.find("failure") is not None for c in cases) == 14


def test_markdown_groups_by_section():
    text = report.to_markdown(sample_card())
    assert "**Score: 11/25, acceptable for internal use.**" in text
    for section in Section:
        assert f"## {section.value}" in text


def test_endpoints_on_this_host_are_not_off_site():
    from setpoint.checklist.operations import is_this_host

    for name in ("localhost", "minio.localhost", "127.0.0.1", "::1"):
        assert is_this_host(name), name
    assert not is_this_host("192.0.2.10")  # TEST-NET-1: never an address of this machine


def test_each_piece_of_evidence_is_gathered_once_and_pieces_side_by_side():
    """The probes run in threads: a piece several probes ask for at once (a login, the admin/admin
    attempt) is gathered once, and two different pieces are gathered at the same time (each waits
    here for the other: gathered one after the other, they would time out)."""

    class Pieces:
        def __init__(self):
            self.both = threading.Barrier(2, timeout=10)
            self.calls = []

        @once
        def login(self):
            self.calls.append("login")
            self.both.wait()
            return "token"

        @once
        def cookies(self):
            self.calls.append("cookies")
            self.both.wait()
            return "refused"

    pieces = Pieces()
    with ThreadPoolExecutor(max_workers=6) as pool:
        got = list(pool.map(lambda name: getattr(pieces, name), ["login", "cookies"] * 3))
    assert got == ["token", "refused"] * 3
    assert sorted(pieces.calls) == ["cookies", "login"]
