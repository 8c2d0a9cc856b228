"""Single sign-on: the spec's section, and who a provider's claims make a user."""

import pytest

from setpoint.errors import InputError
from setpoint.identity import sso
from setpoint.runtime.local.superset_side.sso import USERNAME_PREFIX, user_info, username_of
from setpoint.spec import parse_spec


def spec(**section):
    return parse_spec({"name": "demo", "sso": {"issuer": "https://idp.example.com/realms/acme", "client_id": "superset",
                                               **section}})


def test_the_section_defaults_to_the_openid_scopes_and_refuses_users_in_no_group():
    sso_section = spec().sso
    assert sso_section.scopes == ["openid", "email", "profile"]
    assert sso_section.default_role is None
    assert sso_section.discovery_url == "https://idp.example.com/realms/acme/.well-known/openid-configuration"
    assert spec(scopes=["email", "groups"]).sso.scopes == ["openid", "email", "groups"]
    assert sso.redirect_uri(spec()) == "https://demo.localhost/oauth-authorized/oidc"


@pytest.mark.parametrize("section, says", [
    ({"issuer": "http://idp.example.com"}, "must be https://"),
    ({"issuer": "idp.example.com"}, "is an https:// URL"),
    ({"roles": {"analysts": []}}, "maps to no role"),
    ({"roles": {"analysts": ["Alpha; DROP"]}}, "role names"),
    ({"client_secret": "inline"}, "unknown field"),  # secrets never sit in a spec
])
def test_a_wrong_section_says_what_is_wrong(section, says):
    with pytest.raises(InputError, match=says):
        spec(**section)


def test_a_provider_on_this_host_may_use_plain_http():
    assert spec(issuer="http://127.0.0.1:8080/").sso.issuer == "http://127.0.0.1:8080"


def test_the_client_secret_comes_from_the_environment_then_the_store(monkeypatch):
    section = spec().sso
    monkeypatch.delenv(section.client_secret_env, raising=False)
    with pytest.raises(InputError, match="client secret") as refused:
        sso.credentials(section, {})
    assert "SETPOINT_SSO_CLIENT_SECRET" in refused.value.hint
    assert sso.credentials(section, {sso.CLIENT_SECRET_KEY: "stored"}) == {sso.CLIENT_SECRET_KEY: "stored"}
    monkeypatch.setenv(section.client_secret_env, "given")
    assert sso.credentials(section, {sso.CLIENT_SECRET_KEY: "stored"}) == {sso.CLIENT_SECRET_KEY: "given"}


def test_the_username_is_the_subject_never_the_name_the_provider_shows():
    claims = {"sub": "f3a1", "preferred_username": "admin", "email": "eve@example.com", "given_name": "Eve",
              "family_name": "Doe", "groups": ["analysts"]}
    info = user_info(claims, None, "groups")
    assert info == {"username": "sso-f3a1", "email": "eve@example.com", "first_name": "Eve", "last_name": "Doe",
                    "role_keys": ["analysts"]}


def test_userinfo_completes_the_id_token_only_for_the_same_subject():
    token = {"sub": "f3a1", "email": "eve@example.com"}
    assert user_info(token, {"sub": "f3a1", "groups": ["viewers"]}, "groups")["role_keys"] == ["viewers"]
    assert user_info(token, {"sub": "other", "groups": ["bi-admins"]}, "groups")["role_keys"] == []
    # The ID token wins where both speak.
    assert user_info(token, {"sub": "f3a1", "email": "mallory@example.com"}, "groups")["email"] == "eve@example.com"
    assert user_info(token, {"sub": "f3a1", "roles": "viewers"}, "roles")["role_keys"] == ["viewers"]


def test_a_long_subject_gets_a_digest_that_fits_the_username_column():
    long = "x" * 300
    assert len(username_of(long)) == 64 and username_of(long).startswith(USERNAME_PREFIX)
    assert username_of(long) != username_of(long + "y")
