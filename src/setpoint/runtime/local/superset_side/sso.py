"""Single sign-on through an OpenID Connect provider, inside Superset (point 4).

Copied beside superset_config.py, which sets CUSTOM_SECURITY_MANAGER to `security_manager(...)`
when the spec has an `sso:` section. Flask-AppBuilder's AUTH_OAUTH with Authlib does the flow:
the authorization code with PKCE (S256), `state` and `nonce`, and the ID token's signature,
issuer, audience and expiry. This module adds what Flask-AppBuilder leaves to each provider:

- who the user is: the verified ID token's claims, completed by the userinfo endpoint when the
  provider has one (same `sub` only). The username is `sso-` and the `sub` claim, never the
  provider's display name: an account named `admin` at the provider does not become the local
  admin. Groups come from the spec's claim and map to roles at every login (AUTH_ROLES_MAPPING).
- a user in no mapped group (and no default role) is refused, with a message saying why;
- a login while the provider does not answer says so, and names the way in that remains.

Superset 6.1's login page shows no flashed message, so a sign-in that fails answers with a page
of its own that says why (Flask-AppBuilder's reason, or one of the two above).

Stdlib only at import; Flask, Flask-AppBuilder and Superset are imported where used.
"""

from __future__ import annotations

import hashlib
import logging

logger = logging.getLogger("setpoint.sso")

USERNAME_PREFIX = "sso-"
MAX_USERNAME = 64  # ab_user.username
PROVIDER_DOWN = ("The sign-in provider {issuer} does not answer ({reason}). Try again in a few minutes. "
                 "If it stays down, an administrator of this host can give emergency access "
                 "(setpoint emergency-access), which signs in at /break-glass/.")
NO_ROLE = ("Your account at {issuer} is in none of the groups that give access to this Superset. "
           "Ask its administrators to add you to one.")
PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign-in failed</title></head>
<body style="font-family: sans-serif; max-width: 36em; margin: 4em auto">
<h1>Sign-in failed</h1>
{paragraphs}
<p><a href="/login/">Back to the sign-in page</a></p>
</body></html>"""


def failure_page(messages: list[str]) -> str:
    from markupsafe import escape

    return PAGE.format(paragraphs="\n".join(f"<p>{escape(m)}</p>" for m in messages))


def username_of(sub: str) -> str:
    """The Superset username of the provider's subject `sub` (a digest when it is too long)."""
    name = f"{USERNAME_PREFIX}{sub}"
    if len(name) <= MAX_USERNAME:
        return name
    return f"{USERNAME_PREFIX}{hashlib.sha256(sub.encode()).hexdigest()[:MAX_USERNAME - len(USERNAME_PREFIX)]}"


def user_info(claims: dict, userinfo: dict | None, groups_claim: str) -> dict:
    """Flask-AppBuilder's user info from the verified ID token's claims and the userinfo
    endpoint's answer (used only when it is about the same subject)."""
    if userinfo and userinfo.get("sub") == claims["sub"]:
        claims = {**userinfo, **claims}
    groups = claims.get(groups_claim) or []
    if isinstance(groups, str):
        groups = [groups]
    return {
        "username": username_of(str(claims["sub"])),
        "email": claims.get("email") or "",
        "first_name": claims.get("given_name") or claims.get("name") or "",
        "last_name": claims.get("family_name") or "",
        "role_keys": [str(g) for g in groups],
    }


def security_manager(provider: str, issuer: str, groups_claim: str, check_timeout_s: float = 5):
    """Superset's security manager, with this module's sign-in."""
    from flask import flash, session
    from flask_appbuilder import expose
    from flask_appbuilder.security.views import AuthOAuthView
    from flask_login import current_user

    from superset.security import SupersetSecurityManager

    discovery_url = f"{issuer}/.well-known/openid-configuration"

    def provider_problem() -> str | None:
        """Why the provider cannot sign anyone in now (its discovery document does not answer)."""
        import requests

        try:
            requests.get(discovery_url, timeout=check_timeout_s).raise_for_status()
        except requests.RequestException as exc:
            return type(exc).__name__
        return None

    class SetpointOAuthView(AuthOAuthView):
        @expose("/login/")
        @expose("/login/<provider>")
        def login(self, provider: str | None = None):
            if provider in self.appbuilder.sm.oauth_remotes:
                problem = provider_problem()
                if problem:
                    logger.error("sign-in provider %s does not answer: %s", issuer, problem)
                    return failure_page([PROVIDER_DOWN.format(issuer=issuer, reason=problem)]), 503
            return super().login(provider)

        @expose("/oauth-authorized/<provider>")
        def oauth_authorized(self, provider: str):
            response = super().oauth_authorized(provider)
            if current_user.is_authenticated:
                return response
            # Flask-AppBuilder flashed why, for a page that does not show it: say it here.
            messages = [str(m) for _, m in session.pop("_flashes", [])] or ["The sign-in did not complete."]
            return failure_page(messages), 403

    class SetpointSecurityManager(SupersetSecurityManager):
        authoauthview = SetpointOAuthView

        def get_oauth_user_info(self, provider_name: str, resp: dict) -> dict:
            if provider_name != provider:
                return super().get_oauth_user_info(provider_name, resp)
            claims = resp.get("userinfo")  # the ID token, verified by Authlib
            if not claims or claims.get("iss", "").rstrip("/") != issuer:
                raise ValueError(f"no ID token from {issuer}")
            remote = self.oauth_remotes[provider]
            userinfo = remote.userinfo(token=resp) if remote.load_server_metadata().get("userinfo_endpoint") else None
            return user_info(dict(claims), dict(userinfo or {}), groups_claim)

        def auth_user_oauth(self, userinfo: dict):
            if not self._oauth_calculate_user_roles(userinfo):
                logger.warning("sign-in of %s refused: in no mapped group (%s)", userinfo.get("username"),
                               ", ".join(userinfo.get("role_keys", [])) or "no groups")
                flash(NO_ROLE.format(issuer=issuer), "danger")  # shown by SetpointOAuthView.oauth_authorized
                return None
            return super().auth_user_oauth(userinfo)

    return SetpointSecurityManager
