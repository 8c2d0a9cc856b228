"""Password guessing is limited, as an attacker would try it: wrong passwords in a row against the
API login and the form login, from another loopback address, each request claiming a different
client in X-Forwarded-For. The limit is shared by gunicorn's workers and is per client address."""

import re
import ssl

import httpx
import pytest

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
    csrf_token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', attacker.get("/login/").text).group(1)
    answers = [guess(attacker, path, attempt, csrf_token) for attempt in range(LIMIT + 5)]
    codes = [a.status_code for a in answers]
    # Wrong passwords: 401 from the API, a redirect back to the page from the form.
    assert set(codes[:LIMIT]) == {401 if path.startswith("/api/") else 302}, codes
    assert codes[LIMIT:] == [429] * 5, codes
    assert 0 < int(answers[-1].headers["Retry-After"]) <= 60


def test_the_limit_is_per_client_address(secrets, instance, ca_root):
    from setpoint.net import http_client
    from setpoint.superset_api import SupersetClient

    with http_client(instance[0].url, ca_file=ca_root) as http:
        assert SupersetClient(http).login("admin", secrets["admin_password"]).status_code == 200
