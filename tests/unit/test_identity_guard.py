"""The identity guard's password policy (its Flask hooks are tried against a real instance in
tests/integration/test_logins.py)."""

import importlib.util
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "src/setpoint/runtime/local/superset_side/identity_guard.py"
_spec = importlib.util.spec_from_file_location("identity_guard", SOURCE)
identity_guard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(identity_guard)


@pytest.mark.parametrize("password", ["password", "Password123!", "!!Welcome1!!", "Superset2026", "qwerty_qwerty",
                                      "aaaaaaaaaaaaaaaa", "1212121212121"])
def test_common_passwords_and_their_decorated_forms_are_common(password):
    assert identity_guard.is_common(password)


@pytest.mark.parametrize("password", ["violet tram mountain", "xK9#mQ2$vL7p", "pRz4wLq8sN2vT6yB9cD3fG7h"])
def test_uncommon_passwords_pass(password):
    assert not identity_guard.is_common(password)


def test_forwarded_headers_count_only_with_the_proxy_secret():
    """superset_side/proxy.py: a request straight to gunicorn loses its X-Forwarded-* and its
    https scheme; Caddy's, with the secret, keeps them; the secret never reaches Superset."""
    from setpoint.runtime.local.superset_side.proxy import only_from_caddy

    seen = []
    app = only_from_caddy("the-secret")(lambda environ, start_response: seen.append(dict(environ)) or [])
    forwarded = {"HTTP_X_FORWARDED_FOR": "198.51.100.7", "HTTP_X_FORWARDED_PROTO": "https", "HTTP_FORWARDED": "for=x",
                 "wsgi.url_scheme": "https", "REMOTE_ADDR": "127.0.0.1"}
    for given in (None, "", "a-guess", "the-secret"):
        environ = {**forwarded, **({"HTTP_X_SETPOINT_PROXY": given} if given is not None else {})}
        app(environ, None)
        kept = seen[-1]
        assert "HTTP_X_SETPOINT_PROXY" not in kept
        if given == "the-secret":
            assert kept["HTTP_X_FORWARDED_FOR"] == "198.51.100.7" and kept["wsgi.url_scheme"] == "https"
        else:
            assert not any(k.startswith(("HTTP_X_FORWARDED", "HTTP_FORWARDED")) for k in kept), given
            assert kept["wsgi.url_scheme"] == "http" and kept["REMOTE_ADDR"] == "127.0.0.1"
