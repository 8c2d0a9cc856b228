"""Probes of the checklist's security points (1-8)."""

from __future__ import annotations

import hashlib
import re

from setpoint.checklist.evidence import AUTH_OAUTH, AUTH_REMOTE_USER, Evidence
from setpoint.checklist.known_keys import KNOWN_DEFAULT_KEYS
from setpoint.checklist.model import Finding, combine, failed, passed, unverified
from setpoint.identity import access
from setpoint.runtime.local.superset_side.ownership_guard import GUARDS as OWNERSHIP_GUARDS

ONE_YEAR_S = 31536000
AUTH_NAMES = {0: "OpenID 2.0", 1: "database", 2: "LDAP", AUTH_REMOTE_USER: "the proxy's identity", AUTH_OAUTH: "OAuth/OIDC"}
KNOWN_KEY_HASHES = {hashlib.sha256(k.encode()).hexdigest(): label for label, k in KNOWN_DEFAULT_KEYS.items()}


def probe_secret_key(ev: Evidence) -> Finding:
    parts = []
    forged = ev.forged_cookies_accepted
    accepted = [label for label, ok in forged.items() if ok]
    if accepted:
        parts.append(failed(f"a session cookie forged with the {accepted[0]} key was accepted (CVE-2023-27524)"))
    elif all(v is False for v in forged.values()):
        parts.append(passed(f"cookies forged with {len(forged)} known default keys were refused"))
    else:
        parts.append(unverified("the forged-cookie probe could not reach the site"))
    key = ev.config_section("secret_key")
    if key is None:
        parts.append(unverified("length and storage of SECRET_KEY unknown: give --config"))
    else:
        if key["sha256"] in KNOWN_KEY_HASHES:
            parts.append(failed(f"SECRET_KEY is the {KNOWN_KEY_HASHES[key['sha256']]} key"))
        elif key["length"] < 42:
            parts.append(failed(f"SECRET_KEY has {key['length']} characters (42 or more needed)"))
        else:
            parts.append(passed(f"SECRET_KEY has {key['length']} characters"))
        if key["in_config_file"]:
            parts.append(failed("SECRET_KEY is written in plain text in the config file"))
        else:
            parts.append(passed("SECRET_KEY is not in the config file"))
        for name in key.get("published_defaults", []):
            parts.append(failed(f"{name} is Superset's published default: anyone can sign tokens with it"))
    return combine(parts)


def parse_hsts(value: str | None) -> tuple[int, bool]:
    """(max-age, includeSubDomains) of a Strict-Transport-Security header."""
    if not value:
        return 0, False
    match = re.search(r"max-age=(\d+)", value, re.I)
    return (int(match.group(1)) if match else 0), "includesubdomains" in value.lower()


def probe_https(ev: Evidence) -> Finding:
    if not ev.target.is_https:
        return failed(f"{ev.target.url} is served over plain HTTP")
    response = ev.get("/health")
    if response is None:
        return unverified("the HTTPS site could not be reached")
    parts = []
    plain = ev.plain_http
    location = plain.headers.get("location", "") if plain is not None else ""
    if plain is not None and plain.status_code in (301, 302, 307, 308) and location.startswith("https://"):
        parts.append(passed(f"plain HTTP answers {plain.status_code} to {location}"))
    elif plain is None:
        parts.append(unverified(f"{ev.target.plain_http_url} did not answer"))
    else:
        parts.append(failed(f"plain HTTP answers {plain.status_code} without redirecting to HTTPS"))
    max_age, subdomains = parse_hsts(response.headers.get("strict-transport-security"))
    if max_age >= ONE_YEAR_S and subdomains:
        parts.append(passed(f"HSTS max-age={max_age} with includeSubDomains"))
    else:
        parts.append(failed(f"HSTS is {response.headers.get('strict-transport-security') or 'absent'}"))
    legacy = ev.legacy_tls_accepted
    if legacy:
        parts.append(failed("a TLS 1.1 handshake was accepted"))
    else:
        parts.append(passed("TLS 1.0 and 1.1 handshakes are refused"))
    return combine(parts)


def probe_default_admin(ev: Evidence) -> Finding:
    refused = ev.admin_admin_refused
    if refused is False:
        return failed("admin/admin logs in")
    parts = [passed("admin/admin is refused (one attempt)") if refused else unverified("the login API did not answer")]
    meta = ev.metadata
    if meta is None:
        parts.append(unverified("other local accounts unknown: give --metadata-uri"))
        return combine(parts)
    if meta["trivial_password_users"]:
        parts.append(failed(f"accounts with a trivial password: {', '.join(meta['trivial_password_users'])}"))
    else:
        parts.append(passed(f"none of {meta['active_local_users']} active local accounts has a trivial password"))
    auth = ev.config_section("auth")
    if auth and auth["auth_type"] in (AUTH_OAUTH, AUTH_REMOTE_USER) and meta["active_local_users"]:
        guarded = auth.get("password_accounts")
        if guarded is None:
            parts.append(failed(f"SSO is on but {meta['active_local_users']} local accounts can still log in"))
        else:
            others = [u for u in meta.get("local_users", [])
                      if u not in guarded["users"] and not re.match(guarded["pattern"], u)]
            parts.append(passed("SSO is on; only the instance's admin and emergency admins may log in with a password"
                                + (f" (it refuses the passwords of {len(others)} other accounts)" if others else "")))
    return combine(parts)


def probe_sso(ev: Evidence) -> Finding:
    auth = ev.config_section("auth")
    seen = ""
    if auth is None:
        auth, seen = ev.login_settings, " (as the login page tells visitors)"
    if auth is None:
        page = ev.login_page
        if page is not None and re.search(r"/login/[a-z0-9_-]+\b|oauth", page.text, re.I) and "password" not in page.text.lower():
            return unverified("the login page offers a provider; its configuration is unknown: give --config")
        return unverified("the authentication type is unknown: give --config")
    if auth["auth_type"] == "saml":
        return passed(f"users log in through a SAML provider{seen}")
    if auth["auth_type"] == AUTH_OAUTH and auth["oauth_providers"]:
        return passed(f"users log in through OAuth/OIDC ({', '.join(map(str, auth['oauth_providers']))}){seen}"
                      + ("; password logins only for the admin and emergency admins" if auth.get("password_accounts") else ""))
    if auth["auth_type"] == AUTH_REMOTE_USER:
        return passed(f"users log in through the proxy's identity (AUTH_REMOTE_USER){seen}")
    kind = AUTH_NAMES.get(auth["auth_type"], "unknown")
    return failed(f"AUTH_TYPE is {auth['auth_type']} ({kind} logins){seen}; no OIDC or SAML provider")


def probe_cookies_csrf(ev: Evidence) -> Finding:
    page = ev.login_page
    parts = []
    if page is None:
        parts.append(unverified("no session cookie seen: the site did not answer"))
    else:
        cookie = next((c for c in page.headers.get_list("set-cookie") if c.startswith("session=")), None)
        if cookie is None:
            parts.append(unverified("the login page set no session cookie"))
        else:
            flags = {f.strip().lower() for f in cookie.split(";")[1:]}
            missing = [f for f in ("httponly", "secure") if f not in flags]
            samesite = next((f.split("=", 1)[1] for f in flags if f.startswith("samesite=")), None)
            if missing or samesite not in ("lax", "strict"):
                parts.append(failed(f"session cookie lacks {', '.join(missing) or 'SameSite=Lax'}"))
            else:
                parts.append(passed(f"session cookie is HttpOnly, Secure, SameSite={samesite.title()}"))
    refused = ev.tokenless_post_refused
    if refused is None:
        parts.append(unverified("the CSRF probe could not reach the site"))
    elif refused:
        parts.append(passed("a POST without CSRF token is refused (400)"))
    else:
        parts.append(failed("a POST without CSRF token was not refused for its missing token"))
    cookies = ev.config_section("cookies")
    if cookies is None:
        parts.append(unverified("CSRF time limit unknown: give --config"))
    elif cookies["csrf_time_limit"] is not None:
        parts.append(failed(f"WTF_CSRF_TIME_LIMIT is {cookies['csrf_time_limit']} s (None wanted)"))
    else:
        parts.append(passed("no CSRF time limit"))
    return combine(parts)


def probe_csp(ev: Evidence) -> Finding:
    page = ev.login_page
    if page is None:
        return unverified("the site did not answer")
    csp = page.headers.get("content-security-policy")
    if not csp:
        return failed("no Content-Security-Policy header")
    directives = {d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";") if d.strip()}
    script = directives.get("script-src") or directives.get("default-src") or ""
    if "'unsafe-eval'" in script:
        return failed(f"script-src allows 'unsafe-eval': {script}")
    return passed(f"CSP sent; {script or 'no script-src'}")


def probe_rls(ev: Evidence) -> Finding:
    meta = ev.metadata
    if meta is None:
        return unverified("datasets and RLS rules unknown: give --metadata-uri")
    coverage = meta.get("rls_coverage")
    if coverage is None:
        return unverified(f"{meta['rls_rules']} RLS rules over {meta['datasets']} datasets; which datasets are "
                          "multi-tenant is not known")
    if not coverage:
        return failed("the spec declares no multi-tenant dataset (row_level_security)")
    parts = []
    for dataset in coverage:
        if "problem" in dataset:
            parts.append(failed(f"{dataset['dataset']}: {dataset['problem']}"))
        elif dataset["unfiltered"]:
            parts.append(failed(f"{dataset['dataset']} is read unfiltered by {', '.join(dataset['unfiltered'])}"))
        else:
            unfiltered = [r for r in dataset["readers"] if r in dataset["all_rows"] and r != "Admin"]
            parts.append(passed(f"{dataset['dataset']}: each of its {len(dataset['readers'])} reading roles is filtered"
                                + (f", but Admin and {', '.join(unfiltered)}, which the spec lets read every row (all_rows)"
                                   if unfiltered else ", but Admin")))
    return combine(parts)


def probe_roles(ev: Evidence) -> Finding:
    parts = []
    status = ev.anonymous_api_status
    if status is None:
        parts.append(unverified("anonymous API probe could not reach the site"))
    elif status in (401, 403):
        parts.append(passed(f"anonymous API calls are refused ({status})"))
    else:
        parts.append(failed(f"an anonymous API call answered {status}"))
    meta = ev.metadata
    if meta is None:
        parts.append(unverified("Public and Gamma permissions unknown: give --metadata-uri"))
        return combine(parts)
    if meta["public_permissions"]:
        parts.append(failed(f"the Public role has {meta['public_permissions']} permissions"))
    else:
        parts.append(passed("the Public role has no permissions"))
    if meta["gamma_sql_lab"]:
        parts.append(failed(f"Gamma is granted SQL Lab ({meta['gamma_sql_lab'][0]})"))
    else:
        parts.append(passed("Gamma has no SQL Lab access"))
    for role in meta.get("role_drift", []):
        if not role["exists"]:
            parts.append(failed(f"the role {role['role']} does not exist"))
            continue
        changed = [f"{len(role[k])} {k} ({', '.join(role[k][:3])}{', ...' if len(role[k]) > 3 else ''})"
                   for k in ("added", "missing") if role[k]]
        if changed:
            parts.append(failed(f"the role {role['role']} drifted from the spec: " + "; ".join(changed) + " permissions"))
        if role.get("users_without_it"):
            parts.append(failed(f"the role {role['role']} is not held by {', '.join(role['users_without_it'])}, "
                                "whom the spec names"))
    if meta.get("other_sql_lab_roles"):
        parts.append(failed(f"roles the spec does not allow SQL Lab open it: {', '.join(meta['other_sql_lab_roles'])}"))
    if strangers := access.undeclared_admins(meta):
        parts.append(failed(f"users holding Admin whom the spec's admins do not name: {', '.join(strangers)}"))
    for role, held in (meta.get("withheld_held") or {}).items():
        parts.append(failed(f"the role {role} holds what only admins may ({', '.join(held)})"))
    if ev.target.managed is not None:
        missing = sorted(set(OWNERSHIP_GUARDS) - set(meta.get("ownership_guards") or []))
        parts.append(failed(f"ownership guards missing: {', '.join(missing)}") if missing else
                     passed(f"{len(OWNERSHIP_GUARDS)} ownership guards (themes, tags, queries, dashboard layouts, URLs)"))
    version = ev.version_told_to_anonymous
    if version:
        parts.append(failed(f"anonymous visitors are told the version ({version})"))
    extra = access.audit(meta)["not_declared"]
    if extra and ev.target.managed is not None:
        parts.append(failed(f"roles not in the spec: {', '.join(extra)}"))
    else:
        parts.append(passed(f"roles: {', '.join(meta['roles'])}"))
    return combine(parts)
