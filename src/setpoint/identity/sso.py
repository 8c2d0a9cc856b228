"""Single sign-on through an OpenID Connect provider (point 4), the Setpoint side.

`credentials` takes the client secret from the environment (then the secret store); `check`
asks the provider, before anything changes, whether it serves a discovery document for the
spec's issuer with the code flow and PKCE, and whether it accepts the client's secret.
superset_side/sso.py does the sign-in inside Superset.
"""

from __future__ import annotations

import httpx

from setpoint.errors import SetpointError
from setpoint.net import http_client
from setpoint.runtime.local.superset_side.identity_guard import BREAK_GLASS_PATH  # noqa: F401 - served there
from setpoint.secret import given_or_stored
from setpoint.spec.model import InstanceSpec, Sso

CLIENT_SECRET_KEY = "sso_client_secret"
PROVIDER_NAME = "oidc"  # in Superset's URLs: /login/oidc, /oauth-authorized/oidc
# The accounts whose password only this host holds, which may still log in with it under SSO:
# the instance's admin (spec.admin.username) and emergency admins (operations/emergency.py).
EMERGENCY_USERNAME_PATTERN = r"^emergency-[0-9]{8}-[0-9]{6}$"


def credentials(sso: Sso, stored: dict[str, str]) -> dict[str, str]:
    """The client secret: from the environment variable the spec names (it then moves into the
    secret store), else the one stored by an earlier converge."""
    return {CLIENT_SECRET_KEY: given_or_stored(CLIENT_SECRET_KEY, sso.client_secret_env, stored,
                                               f"single sign-on needs the client secret of {sso.client_id} at {sso.issuer}")}


def redirect_uri(spec: InstanceSpec) -> str:
    """The address the provider sends users back to: register it with the client."""
    return f"{spec.url}oauth-authorized/{PROVIDER_NAME}"


def check(sso: Sso, client_secret: str, timeout: float = 15) -> dict:
    """Fail, naming the cause, unless the provider's discovery document names the spec's issuer
    and offers the code flow with PKCE (S256), and its token endpoint accepts the client's secret.
    Return the discovery document."""
    fix = "check sso.issuer in the spec (and that the provider is up), then run the command again"
    with http_client(timeout=timeout) as client:
        try:
            response = client.get(sso.discovery_url)
            response.raise_for_status()
            metadata = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SetpointError(f"the identity provider's discovery document {sso.discovery_url} could not be read "
                                f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]})", fix) from None
        if not isinstance(metadata, dict) or metadata.get("issuer", "").rstrip("/") != sso.issuer:
            issuer = metadata.get("issuer") if isinstance(metadata, dict) else None
            raise SetpointError(f"the discovery document at {sso.discovery_url} names the issuer {issuer!r}, "
                                f"not {sso.issuer}: tokens would be checked against the wrong issuer", fix)
        missing = [k for k in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not metadata.get(k)]
        if missing:
            raise SetpointError(f"the discovery document of {sso.issuer} lacks {', '.join(missing)}", fix)
        if "code" not in metadata.get("response_types_supported", ["code"]):
            raise SetpointError(f"{sso.issuer} does not offer the authorization code flow", fix)
        if "S256" not in metadata.get("code_challenge_methods_supported", ["S256"]):
            raise SetpointError(f"{sso.issuer} does not offer PKCE with S256",
                                "enable PKCE (S256) for the client at the provider, then run the command again")
        # A code nobody was given: a provider authenticates the client before it looks at the
        # code (invalid_client for a wrong secret, invalid_grant for the code).
        try:
            answer = client.post(metadata["token_endpoint"], data={
                "grant_type": "authorization_code", "code": "setpoint-check", "redirect_uri": "https://invalid/"},
                auth=(sso.client_id, client_secret))
        except httpx.HTTPError as exc:
            raise SetpointError(f"the token endpoint of {sso.issuer} did not answer ({type(exc).__name__})", fix) from None
        error = answer.json().get("error") if answer.headers.get("content-type", "").startswith("application/json") else None
        if error in ("invalid_client", "unauthorized_client"):
            raise SetpointError(f"{sso.issuer} refuses client {sso.client_id} with the given secret ({error})",
                                f"set {sso.client_secret_env} to the client's secret and run the command again")
    return metadata
