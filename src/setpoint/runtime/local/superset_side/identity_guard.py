"""Logins, sessions, local passwords and what anonymous visitors learn, for one Superset instance.
Runs inside Superset.

Copied beside superset_config.py, which installs `check_password` as Flask-AppBuilder's password
validator and calls `limit_logins`, `end_sessions_after`, `hide_passwords` and `hide_version`
from its FLASK_APP_MUTATOR.

Superset 6.1 puts AUTH_RATE_LIMIT on its own login page's blueprint (SupersetAuthView), which
only serves GET, and switches Flask-AppBuilder's limit off, so the requests that check a password
were never limited: the form login (FAB's AuthDBView, POST /login/) and the API login (FAB's SecurityApi,
POST /api/v1/security/login and /refresh). This module limits those blueprints' POSTs.

The limiter keys on the client address Caddy saw (ProxyFix trusts one X-Forwarded-For hop, which
Caddy sets, replacing the client's own; a request straight to gunicorn, without Caddy's proxy
secret, loses it: setpoint_proxy.py), and counts in Redis, shared by every gunicorn worker.
Over the limit: 429 with Retry-After.

Sessions are server-side (Flask-Session in Redis) and end when idle (PERMANENT_SESSION_LIFETIME,
renewed by each request); `end_sessions_after` also ends them a fixed time after their login,
however busy.

A local password must have MIN_PASSWORD_LENGTH characters, and neither be one of the most common
passwords nor be made only of them (digits and symbols aside); and the users API no longer echoes a
password it was sent (Flask-AppBuilder 5.3 returns it in the answer to PUT /users/ID).

The owner pickers' lists of users no longer carry their e-mails for non-admins (`hide_emails`),
and pages do not tell anonymous visitors the version (`hide_version_in_pages`).

Sessions end when they should (`end_sessions_on_credential_change`): every browser session and
API token carries a stamp of its user's credentials (their password hash, and a counter in Redis
that `setpoint end-sessions` raises), so a password change or "log out everywhere" voids every
earlier session, access token and refresh token; a deactivated user is refused by
Flask-AppBuilder itself. (apache/superset#40695 and #42934, after 6.1.0, end browser sessions on
a password change; remove this once every supported version also refuses the tokens.) Content
cannot log a viewer out (`logout_by_post`, fixed nowhere upstream): GET /logout/ asks, and only a
POST with the page's CSRF token logs out. A cross-site request never gets a cookie
(`no_sessions_for_cross_site`), so a cross-site form cannot replace a signed-in user's session.
The version leaves the pages' data for anonymous visitors (apache/superset#41301, after 6.1.0,
hides only the build's details).

Under single sign-on (superset_side/sso.py), `passwords_only_for` refuses every password login
but the instance's admin's and emergency admins', and gives them a break-glass form. Stdlib only
at import.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from urllib.parse import urlsplit

# The blueprints whose POST routes take a password or a refresh token.
LOGIN_BLUEPRINTS = ("AuthDBView", "SecurityApi", "setpoint_break_glass")

logger = logging.getLogger("setpoint.login")


def limit_logins(app, limit: str) -> list[str]:
    """Apply `limit` (e.g. "20 per minute") to the POSTs of every login blueprint the app has
    (the form login under database logins, the break-glass form under single sign-on, the API)."""
    limiter = app.appbuilder.sm.limiter
    limited = []
    for name in LOGIN_BLUEPRINTS:
        blueprint = app.blueprints.get(name)
        if blueprint is not None:
            limiter.limit(limit, methods=["POST"])(blueprint)
            limited.append(name)
    if "SecurityApi" not in limited:
        logger.warning("login rate limit: the API login (SecurityApi) was not found, not limited")
    return limited


SESSION_STARTED = "_setpoint_session_started"


def end_sessions_after(app, lifetime_s: int) -> None:
    """Log out any browser session older than `lifetime_s` since its login."""
    from flask import session
    from flask_login import current_user, logout_user

    @app.before_request
    def _end_old_sessions():
        if not current_user.is_authenticated or "_user_id" not in session:
            return  # anonymous, or a bearer token (its own expiry applies)
        started = session.setdefault(SESSION_STARTED, time.time())
        if time.time() - started > lifetime_s:
            logout_user()
            session.clear()


STAMP = "_setpoint_credentials"
STAMP_CLAIM = "setpoint_credentials"
EPOCH_KEY = "setpoint:sessions-epoch:{username}"  # raised by `setpoint end-sessions NAME --user U`


def end_sessions_on_credential_change(app, redis_client) -> None:
    """Stamp every session and token at login with the user's credentials (a hash of their password
    hash and their epoch in Redis); refuse any whose stamp is no longer the user's."""
    from flask import g, jsonify, redirect, request, session
    from flask_login import current_user, logout_user, user_logged_in

    sm = app.appbuilder.sm
    jwt = app.extensions["flask-jwt-extended"]

    def stamp(user) -> str:
        epoch = redis_client.get(EPOCH_KEY.format(username=user.username)) or b"0"
        return hashlib.sha256(f"{user.password or ''}|{epoch.decode()}".encode()).hexdigest()[:24]

    @user_logged_in.connect_via(app)
    def _stamp_session(sender, user, **extra):  # noqa: ARG001 - blinker's signature
        session[STAMP] = stamp(user)

    @jwt.additional_claims_loader
    def _stamp_token(identity):
        user = sm.get_user_by_id(int(identity))
        return {STAMP_CLAIM: stamp(user)} if user is not None else {}

    @jwt.token_in_blocklist_loader
    def _token_voided(jwt_header, payload) -> bool:  # noqa: ARG001 - Flask-JWT-Extended's signature
        user = sm.get_user_by_id(int(payload["sub"])) if str(payload.get("sub", "")).isdigit() else None
        # Held for the request: the session keeps only weak references to what it loaded, so
        # Flask-AppBuilder's own lookup of the token's user, next, would query it again.
        g.setpoint_token_user = user
        return user is None or payload.get(STAMP_CLAIM) != stamp(user)

    @app.before_request
    def _end_voided_sessions():
        if not current_user.is_authenticated or "_user_id" not in session:
            return None  # anonymous, or a bearer token (checked above)
        current = stamp(current_user)
        if session.setdefault(STAMP, current) == current:
            return None
        logger.warning("ended a session of %s: its credentials changed", current_user.username)
        logout_user()
        session.clear()
        return (jsonify(message="Your session ended: sign in again."), 401) if request.path.startswith("/api/") \
            else redirect("/login/")


LOGOUT_PATH = "/logout/"
LOGOUT_FORM = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign out</title></head>
<body style="font-family: sans-serif; max-width: 28em; margin: 4em auto">
<h1>Sign out?</h1>
<form method="post" action="{path}"><input type="hidden" name="csrf_token" value="{csrf}">
<p><button type="submit">Sign out</button> or <a href="/">go back</a></p></form></body></html>"""


def logout_by_post(app) -> None:
    """GET /logout/ logs nobody out (an image or a stylesheet in a dashboard could request it): it
    shows a button, whose POST with the page's CSRF token does."""
    from flask import redirect, request, session
    from flask_login import current_user, logout_user
    from flask_wtf.csrf import generate_csrf, validate_csrf
    from wtforms import ValidationError

    @app.before_request
    def _logout():
        if request.path != LOGOUT_PATH:
            return None
        if not current_user.is_authenticated:
            return redirect("/login/")
        if request.method != "POST":
            return LOGOUT_FORM.format(path=LOGOUT_PATH, csrf=generate_csrf()), 200
        try:
            validate_csrf(request.form.get("csrf_token", ""))
        except ValidationError:
            return LOGOUT_FORM.format(path=LOGOUT_PATH, csrf=generate_csrf()), 400
        logout_user()
        session.clear()
        return redirect("/login/")


def cross_site(headers, host: str) -> bool:
    """Whether a browser sent this request from another site (Fetch metadata, else Origin)."""
    if headers.get("Sec-Fetch-Site") == "cross-site":
        return True
    origin = headers.get("Origin")
    return bool(origin) and (origin == "null" or urlsplit(origin).netloc != host)


def no_sessions_for_cross_site(app) -> None:
    """A request another site sent carries no session cookie (SameSite=Lax); Superset would answer
    with a new session cookie, or a deleting one, and a new async-queries cookie, replacing the
    signed-in user's: such an answer sets no cookie, and its session is not saved."""
    from flask import request

    interface = app.session_interface
    save = interface.save_session
    cookie = app.config.get("SESSION_COOKIE_NAME", "session")

    def save_session(app_, session, response):
        if cookie not in request.cookies and cross_site(request.headers, request.host):
            response.headers.remove("Set-Cookie")  # after every after_request hook, Superset's included
            return None
        return save(app_, session, response)

    interface.save_session = save_session


def hide_version_in_pages(data: dict) -> dict:
    """COMMON_BOOTSTRAP_OVERRIDES_FUNC: the pages' menu data names the version (and its build) to
    anonymous visitors, the login page included; only signed-in users see it."""
    from superset.utils.core import get_user_id

    menu = data.get("menu_data")
    if get_user_id() is not None or not isinstance(menu, dict) or not isinstance(menu.get("navbar_right"), dict):
        return {}
    hidden = {key: "" for key in ("version_string", "version_sha", "build_number") if key in menu["navbar_right"]}
    return {"menu_data": {**menu, "navbar_right": {**menu["navbar_right"], **hidden}}}


MIN_PASSWORD_LENGTH = 12
# The most common passwords of public breach lists (lower-cased), and words they are built on.
COMMON_PASSWORDS = frozenset("""
123456 123456789 12345678 1234567890 12345 1234567 qwerty qwertyuiop password password1 iloveyou
111111 000000 123123 abc123 1q2w3e4r 1q2w3e4r5t qwerty123 qwe123 zaq12wsx asdfghjkl 1qaz2wsx
dragon monkey letmein football baseball welcome login admin administrator princess sunshine
master shadow superman batman trustno1 starwars passw0rd p@ssw0rd p@ssword changeme secret
superset apache default guest root test test123 user demo hello welcome1 freedom whatever
qazwsx michael jennifer charlie jordan hunter ranger buster soccer hockey killer pepper
""".split())


def is_common(password: str) -> bool:
    """Whether a password is a common one, made of common ones (digits and symbols aside), or of
    fewer than four different characters."""
    lowered = password.lower()
    words = re.findall(r"[a-z]+", lowered)
    return (lowered in COMMON_PASSWORDS or len(set(lowered)) < 4
            or (bool(words) and all(word in COMMON_PASSWORDS for word in words)))


def check_password(password: str) -> None:
    """FAB_PASSWORD_COMPLEXITY_VALIDATOR: refuse short and common passwords, saying why."""
    from flask_appbuilder.exceptions import PasswordComplexityValidationError

    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordComplexityValidationError(
            f"Use at least {MIN_PASSWORD_LENGTH} characters; a passphrase of a few words is easiest to remember.")
    if is_common(password):
        raise PasswordComplexityValidationError("This password is one of the most common ones; choose another.")


USERS_API = "/api/v1/security/users/"


def hide_passwords(app) -> None:
    """Drop `password` from the users API's answers."""

    @app.after_request
    def _hide(response):
        from flask import request

        if not request.path.startswith(USERS_API) or not response.is_json:
            return response
        body = response.get_json(silent=True)
        result = body.get("result") if isinstance(body, dict) else None
        if isinstance(result, dict) and "password" in result:
            result.pop("password")
            response.set_data(json.dumps(body))
        return response


RELATED_PEOPLE = re.compile(r"^/api/v1/[a-z_]+/related/[a-z_]+$")


def hide_emails(app) -> None:
    """The owner pickers (GET /api/v1/RESOURCE/related/owners, and created_by and the like) list
    every user with their e-mail, to anyone who may edit a chart or a dashboard, Gamma included:
    only admins get the e-mails now; everyone still gets the names to choose from."""
    from flask import request

    @app.after_request
    def _hide(response):
        if not RELATED_PEOPLE.match(request.path) or not response.is_json or app.appbuilder.sm.is_admin():
            return response
        body = response.get_json(silent=True)
        results = body.get("result") if isinstance(body, dict) else None
        if isinstance(results, list) and any(isinstance(r.get("extra"), dict) and "email" in r["extra"]
                                             for r in results if isinstance(r, dict)):
            for result in results:
                if isinstance(result, dict) and isinstance(result.get("extra"), dict):
                    result["extra"].pop("email", None)
            response.set_data(json.dumps(body))
        return response


LOCALE_PATH = "/lang/"
VERSION_PATH = "/version"


def hide_version(app) -> None:
    """/version tells anonymous visitors which Superset runs, and so which advisories apply to it:
    only signed-in users get an answer (404 otherwise)."""
    from flask import abort, request
    from flask_jwt_extended import verify_jwt_in_request
    from flask_login import current_user

    def signed_in() -> bool:
        if current_user.is_authenticated:  # a browser session
            return True
        try:
            return verify_jwt_in_request(optional=True) is not None  # an API client's bearer token
        except Exception:  # noqa: BLE001 - an expired or forged token is not signed in
            return False

    @app.before_request
    def _hide():
        if request.path == VERSION_PATH and not signed_in():
            abort(404)


def answer_unknown_locales(app) -> None:
    """GET /lang/XX for a language the instance does not offer answers 500 in Superset 6.1, to
    anyone: its view (SupersetIndexView.patch_flask_locale, apache/superset#31692) aborts with
    404 inside FAB's @safe, which then calls a response_500 the view does not have. Answer the
    404 before it. Remove when Superset's view answers 404 itself."""
    from flask import abort, request

    @app.before_request
    def _unknown_locale():
        if request.path.startswith(LOCALE_PATH):
            locale = request.path[len(LOCALE_PATH):]
            if locale not in app.appbuilder.bm.languages:
                abort(404)



API_LOGIN = "/api/v1/security/login"
BREAK_GLASS_PATH = "/break-glass/"
PASSWORDS_OFF = ("Password logins are off on this instance: sign in through single sign-on. Only the instance's "
                 "admin and emergency admins (setpoint emergency-access) may use a password.")
BREAK_GLASS_FORM = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Emergency sign-in</title></head>
<body style="font-family: sans-serif; max-width: 28em; margin: 4em auto">
<h1>Emergency sign-in</h1>
<p>For the instance's admin and emergency admins only, when single sign-on cannot be used.
Everyone else: <a href="/login/">sign in through single sign-on</a>.</p>
<p style="color: #b00">{message}</p>
<form method="post" action="{path}">
<input type="hidden" name="csrf_token" value="{csrf}">
<p><label>Username <input name="username" autocomplete="username" required></label></p>
<p><label>Password <input name="password" type="password" autocomplete="current-password" required></label></p>
<p><button type="submit">Sign in</button></p>
</form></body></html>"""


def passwords_only_for(app, accounts: dict) -> None:
    """Under single sign-on, refuse every password login but those of the accounts whose password
    only the host holds (`accounts`: {"users": [the instance's admin], "pattern": emergency
    admins' names}). They sign in through the API or the break-glass form at BREAK_GLASS_PATH
    (rate-limited with the other logins)."""
    from flask import Blueprint, jsonify, redirect, request
    from flask_login import login_user
    from flask_wtf.csrf import generate_csrf
    from markupsafe import escape

    def may_use_a_password(username) -> bool:
        return isinstance(username, str) and (username in accounts["users"] or bool(re.match(accounts["pattern"], username)))

    @app.before_request
    def _refuse_other_password_logins():
        if request.method == "POST" and request.path == API_LOGIN:
            body = request.get_json(silent=True)
            if not may_use_a_password(body.get("username") if isinstance(body, dict) else None):
                return jsonify(message=PASSWORDS_OFF), 401
        return None

    blueprint = Blueprint("setpoint_break_glass", __name__)

    def form(message: str = "", status: int = 200):
        return BREAK_GLASS_FORM.format(message=escape(message), path=BREAK_GLASS_PATH, csrf=generate_csrf()), status

    @blueprint.route(BREAK_GLASS_PATH, methods=["GET"])
    def break_glass_form():
        return form()

    @blueprint.route(BREAK_GLASS_PATH, methods=["POST"])
    def break_glass_login():
        username, password = request.form.get("username", ""), request.form.get("password", "")
        user = app.appbuilder.sm.auth_user_db(username, password) if may_use_a_password(username) else None
        if user is None:
            logger.warning("break-glass sign-in refused for %r", username[:64])
            return form("Wrong username or password, or this account may not use a password here.", 401)
        login_user(user, remember=False)
        logger.warning("break-glass sign-in of %s", username)
        return redirect("/")

    app.register_blueprint(blueprint)
