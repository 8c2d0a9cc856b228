"""Logins and sessions, tried as an attacker would: wrong passwords in a row against the API login
and the form login, from another loopback address, each request claiming a different client in
X-Forwarded-For (the limit is shared by gunicorn's workers and is per client address); a session
cookie replayed after logout; a session past its lifetime; weak passwords set through the users
API, and the API echoing a password back."""

import json
import ssl
import textwrap
import uuid

import httpx
import pytest

from tests.conftest import form_login, form_logout, form_token

ATTACKER = "127.0.0.2"  # its own address, so the session's other logins (127.0.0.1) are not limited
LIMIT = 20  # AUTH_RATE_LIMIT: 20 per minute


@pytest.fixture(scope="module")
def attacker(instance, ca_root):
    transport = httpx.HTTPTransport(local_address=ATTACKER, verify=ssl.create_default_context(cafile=str(ca_root)))
    with httpx.Client(base_url=instance[0].url, transport=transport, timeout=60) as client:
        yield client


def guess(attacker, path: str, attempt: int, csrf_token: str) -> httpx.Response:
    spoofed = {"X-Forwarded-For": f"198.51.100.{attempt}"}
    if path == "/login/":  # as the login page's form posts it: with its CSRF token and a Referer
        return attacker.post(path, data={"username": "admin", "password": f"guess{attempt}", "csrf_token": csrf_token},
                             headers={**spoofed, "Referer": str(attacker.base_url.join("/login/"))})
    return attacker.post(path, json={"username": "admin", "password": f"guess{attempt}", "provider": "db"}, headers=spoofed)


@pytest.mark.parametrize("path", ["/api/v1/security/login", "/login/"])
def test_password_guesses_are_refused_past_the_limit(attacker, path):
    csrf_token = form_token(attacker, "/login/")
    answers = [guess(attacker, path, attempt, csrf_token) for attempt in range(LIMIT + 5)]
    codes = [a.status_code for a in answers]
    # Wrong passwords: 401 from the API, a redirect back to the page from the form.
    assert set(codes[:LIMIT]) == {401 if path.startswith("/api/") else 302}, codes
    assert codes[LIMIT:] == [429] * 5, codes
    assert 0 < int(answers[-1].headers["Retry-After"]) <= 60


def test_the_limit_is_per_client_address(secrets, instance, ca_root):
    """Another client than the attacker logs in at once; from an address of its own too, since the
    session's other tests (each scorecard logs in) share 127.0.0.1 and its limit."""
    from setpoint.net import http_client
    from setpoint.superset_api import SupersetClient

    with http_client(instance[0].url, ca_file=ca_root, local_address="127.0.0.3") as http:
        assert SupersetClient(http).login("admin", secrets["admin_password"]).status_code == 200


def test_a_session_cookie_replayed_after_logout_is_refused(instance, ca_root, secrets):
    from setpoint.net import http_client

    with http_client(instance[0].url, ca_file=ca_root) as browser:
        assert form_login(browser, "admin", secrets["admin_password"]).status_code == 302
        assert browser.get("/api/v1/me/").status_code == 200
        stolen = browser.cookies.get("session")
        set_cookie = browser.get("/api/v1/me/").headers.get("set-cookie", "")
        form_logout(browser)
    with http_client(instance[0].url, ca_file=ca_root, cookies={"session": stolen}) as attacker:
        assert attacker.get("/api/v1/me/").status_code == 401
    # The cookie is an opaque id (the session lives in Redis), renewed for the idle timeout (8 h).
    assert "." not in stolen and "Expires=" in set_cookie


LIFETIME_PROBE = textwrap.dedent("""
    import json, time
    from superset.app import create_app
    app = create_app()
    client = app.test_client()
    with app.app_context():
        admin_id = app.appbuilder.sm.find_user(username="admin").id
    answers = {}
    for age, label in ((60, "young"), (24 * 3600 + 60, "old")):
        with client.session_transaction(base_url="https://localhost/") as session:
            session["_user_id"] = str(admin_id)
            session["_fresh"] = True
            session["_setpoint_session_started"] = time.time() - age
        answers[label] = client.get("/api/v1/me/", base_url="https://localhost/").status_code
    print(json.dumps(answers))
""")


def test_a_session_ends_at_the_end_of_its_lifetime_however_busy(home, instance):
    """Superset itself, with the instance's configuration: a session logged in a minute ago works,
    one logged in a day and a minute ago (the default lifetime is 24 h) is logged out."""
    from setpoint.runtime.local.instance import load_context
    from setpoint.services.superset import SupersetCommands

    commands = SupersetCommands(load_context(home, "alpha"))
    output = commands.run([str(commands.ctx.venv / "bin" / "python"), "-c", LIFETIME_PROBE],
                          what="probing session lifetimes")
    assert json.loads(output.strip().splitlines()[-1]) == {"young": 200, "old": 401}


def test_weak_local_passwords_are_refused_and_never_echoed(admin):
    roles = admin.get("/api/v1/security/roles/", params={"q": "(page_size:100)"}).json()["result"]
    gamma = next(r["id"] for r in roles if r["name"] == "Gamma")
    name = f"weak{uuid.uuid4().hex[:6]}"
    user = {"first_name": "Weak", "last_name": "Password", "username": name, "email": f"{name}@example.com",
            "active": True, "roles": [gamma]}
    for weak, reason in (("Password123!", "most common"), ("Welcome1", "at least 12"), ("zzzzzzzzzzzzzzzz", "most common")):
        response = admin.call("POST", "/api/v1/security/users/", json={**user, "password": weak})
        assert response.status_code == 400 and reason in response.text, (weak, response.text)
    created = admin.call("POST", "/api/v1/security/users/", json={**user, "password": "violet tram mountain"})
    assert created.status_code == 201, created.text
    changed = admin.call("PUT", f"/api/v1/security/users/{created.json()['id']}", json={"password": "another long phrase"})
    assert changed.status_code == 200
    assert "another long phrase" not in changed.text and "password" not in changed.json()["result"]
