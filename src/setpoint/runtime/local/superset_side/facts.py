"""Facts about a Superset's effective configuration and metadata database, for `setpoint check`.

Two ways in, the same facts:
- inside a managed instance's web process, `GET /setpoint/facts` (copied beside
  superset_config.py as setpoint_facts.py, whose BLUEPRINTS serve it): the configuration the
  instance runs with, in a fraction of a second. It answers only a request made straight to
  gunicorn on loopback (Caddy answers 404 for the path, and a request through Caddy gets 404 here
  too) that carries the token derived from the instance's SECRET_KEY (`token`), which only the
  instance's accounts and root can read;
- as a script run in a Superset virtualenv (`python facts.py`, JSON on stdout): for a Superset
  Setpoint did not create, and for a managed one whose web process does not answer. It loads
  Superset's own `superset.config` (which applies SUPERSET_CONFIG_PATH), so the facts are what
  Superset itself would run with.

It never gives a secret: only lengths, hashes of known public defaults, booleans and counts. Every
section is gathered on its own; a failure is reported in that section as {"error": "..."} and the
others still run.
"""

import hashlib
import hmac
import json
import os
import traceback

PATH = "/setpoint/facts"
SECTIONS = []
# The permissions that open SQL Lab (the sql_lab role's own); exporting a chart's CSV is not one.
SQL_LAB_ACCESS = {"menu_access on SQL Lab", "can_sqllab on Superset", "can_execute_sql_query on SQLLab", "can_read on SQLLab"}
TRIVIAL_PASSWORDS = ["admin", "password", "123456", "12345678", "superset", "changeme", "admin123", "test", "root", "general"]


def section(name):
    """Register a section: a function of Superset's config module and the options (see `gather`)."""
    def register(func):
        SECTIONS.append((name, func))
        return func

    return register


def gather(options):
    """Every section's facts. `options`: `celery_worker` (the worker to ask, by name), `facts_cache`
    (where the digests of password hashes found sound are kept), `metadata_uri` (the metadata
    database, when not the configuration's)."""
    try:
        from superset import config as C  # noqa: N812
    except BaseException as exc:  # noqa: BLE001 - a config that does not import is a finding
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return {"config_error": last[:500]}
    facts = {}
    for name, func in SECTIONS:
        try:
            facts[name] = func(C, options)
        except Exception as exc:  # noqa: BLE001 - report, never raise
            facts[name] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    return facts


def token(secret_key):
    """The bearer token of `GET /setpoint/facts`: derived from the instance's SECRET_KEY, so that it
    needs no secret of its own and changes when the key is rotated."""
    return hmac.new(secret_key.encode(), b"setpoint facts", hashlib.sha256).hexdigest()


def blueprint(is_direct_local_request, options):
    """The Flask blueprint serving the facts (superset_config.BLUEPRINTS) to the requests
    `is_direct_local_request` says came straight from this host and that carry the token; any other
    gets 404, as if there were no such path."""
    from flask import Blueprint, Response, abort, current_app, request

    facts = Blueprint("setpoint_facts", __name__)

    @facts.route(PATH)
    def serve():
        expected = f"Bearer {token(current_app.config['SECRET_KEY'])}"
        if not (is_direct_local_request() and hmac.compare_digest(request.headers.get("Authorization", ""), expected)):
            abort(404)
        return Response(json.dumps(gather(options), default=str), mimetype="application/json",
                        headers={"Cache-Control": "no-store"})

    return facts


def sha(value):
    return hashlib.sha256(value.encode() if isinstance(value, str) else bytes(value)).hexdigest()


@section("superset")
def _version(C, options):
    from importlib.metadata import version

    return {"version": version("apache-superset")}


# Secrets whose default value Superset ships in its config.py: anyone can sign with them.
PUBLISHED_DEFAULT_SECRETS = {
    "GUEST_TOKEN_JWT_SECRET": "test-guest-secret-change-me",
    "GLOBAL_ASYNC_QUERIES_JWT_SECRET": "test-secret-change-me",
}


@section("secret_key")
def _secret_key(C, options):
    key = C.SECRET_KEY
    path = os.environ.get("SUPERSET_CONFIG_PATH")
    text = open(path).read() if path and os.path.exists(path) else ""
    return {
        "length": len(key),
        "sha256": sha(key),
        "in_config_file": bool(key) and key in text,
        "config_file": path,
        "published_defaults": sorted(name for name, default in PUBLISHED_DEFAULT_SECRETS.items()
                                     if getattr(C, name, None) == default),
    }


@section("auth")
def _auth(C, options):
    providers = [p.get("name") for p in (getattr(C, "OAUTH_PROVIDERS", None) or [])]
    return {"auth_type": C.AUTH_TYPE, "oauth_providers": providers,
            "password_accounts": getattr(C, "SETPOINT_PASSWORD_ACCOUNTS", None)}


@section("cookies")
def _cookies(C, options):
    return {
        "httponly": C.SESSION_COOKIE_HTTPONLY,
        "secure": C.SESSION_COOKIE_SECURE,
        "samesite": C.SESSION_COOKIE_SAMESITE,
        "csrf_enabled": C.WTF_CSRF_ENABLED,
        "csrf_time_limit": C.WTF_CSRF_TIME_LIMIT,
    }


def _cache_facts(cfg):
    kind = (cfg or {}).get("CACHE_TYPE", "NullCache")
    facts = {"type": kind}
    if "Redis" in str(kind):
        import redis

        url = cfg.get("CACHE_REDIS_URL")
        client = (
            redis.Redis.from_url(url)
            if url
            else redis.Redis(
                host=cfg.get("CACHE_REDIS_HOST", "localhost"),
                port=cfg.get("CACHE_REDIS_PORT", 6379),
                password=cfg.get("CACHE_REDIS_PASSWORD"),
                db=cfg.get("CACHE_REDIS_DB", 0),
            )
        )
        try:
            facts["reachable"] = bool(client.ping())
        except Exception as exc:  # noqa: BLE001
            facts["reachable"] = False
            facts["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    return facts


@section("caches")
def _caches(C, options):
    names = ["CACHE_CONFIG", "DATA_CACHE_CONFIG", "FILTER_STATE_CACHE_CONFIG", "EXPLORE_FORM_DATA_CACHE_CONFIG"]
    facts = {name: _cache_facts(getattr(C, name, None)) for name in names}
    facts["RESULTS_BACKEND"] = {"type": type(C.RESULTS_BACKEND).__name__ if C.RESULTS_BACKEND else None}
    return facts


@section("celery")
def _celery(C, options):
    from celery import Celery

    cfg = C.CELERY_CONFIG
    if cfg is None:
        return {"configured": False}
    # Not the current app: in the web process, Superset's own stays current.
    app = Celery(set_as_current=False)
    app.config_from_object(cfg)
    broker = str(app.conf.broker_url or "")
    # A managed instance has one worker, named: the answer comes as soon as it replies, instead of
    # after the whole timeout (which waits for workers nobody knows of).
    worker = options.get("celery_worker")
    inspect = app.control.inspect(timeout=3, destination=[worker], limit=1) if worker else app.control.inspect(timeout=3)
    try:
        stats = inspect.stats() or {}
    finally:
        app.close()  # its broker connections: the web process lives on
    workers = {name: s.get("pool", {}).get("max-concurrency", 0) for name, s in stats.items()}
    return {"configured": True, "broker_scheme": broker.split(":", 1)[0], "workers": workers}


@section("webserver")
def _webserver(C, options):
    return {"timeout": C.SUPERSET_WEBSERVER_TIMEOUT}


READERS_SQL = """
SELECT DISTINCT r.name FROM ab_role r
JOIN ab_permission_view_role pvr ON pvr.role_id = r.id JOIN ab_permission_view pv ON pv.id = pvr.permission_view_id
JOIN ab_permission p ON p.id = pv.permission_id JOIN ab_view_menu v ON v.id = pv.view_menu_id
WHERE (p.name = 'datasource_access' AND v.name = :perm) OR (p.name = 'schema_access' AND v.name = :schema_perm)
   OR (p.name = 'catalog_access' AND v.name = :catalog_perm) OR (p.name = 'database_access' AND v.name = :db_perm)
   OR (p.name IN ('all_datasource_access', 'all_database_access') AND v.name = p.name)
ORDER BY r.name"""
RULES_SQL = """
SELECT f.filter_type, array_agg(r.name) FILTER (WHERE r.name IS NOT NULL)
FROM row_level_security_filters f JOIN rls_filter_tables ft ON ft.rls_filter_id = f.id
LEFT JOIN rls_filter_roles fr ON fr.rls_filter_id = f.id LEFT JOIN ab_role r ON r.id = fr.role_id
WHERE ft.table_id = :table_id GROUP BY f.id, f.filter_type"""


def _rls_coverage(conn, sa, declared):
    """For each multi-tenant dataset the configuration declares: the roles that can read it, and
    those among them that no row-level security rule filters (besides Admin and the roles the
    declaration lets read every row)."""
    coverage = []
    for rule in declared:
        name, all_rows = rule["dataset"], ["Admin", *rule["all_rows"]]
        tables = conn.execute(sa.text(
            "SELECT t.id, t.perm, t.schema_perm, t.catalog_perm, '[' || d.database_name || '].(id:' || d.id || ')' "
            "FROM tables t JOIN dbs d ON d.id = t.database_id "
            "WHERE t.table_name = :name"), {"name": name}).fetchall()
        if len(tables) != 1:
            coverage.append({"dataset": name, "problem": f"{len(tables) or 'no'} datasets are named {name}"})
            continue
        table_id, perm, schema_perm, catalog_perm, db_perm = tables[0]
        readers = [r for (r,) in conn.execute(sa.text(READERS_SQL), {
            "perm": perm, "schema_perm": schema_perm, "catalog_perm": catalog_perm, "db_perm": db_perm})]
        rules = [(kind, set(roles or [])) for kind, roles in conn.execute(sa.text(RULES_SQL), {"table_id": table_id})]

        def filtered(role):
            return any((kind == "Regular" and role in roles) or (kind == "Base" and role not in roles) for kind, roles in rules)

        coverage.append({"dataset": name, "readers": readers, "all_rows": all_rows,
                         "unfiltered": [r for r in readers if r not in all_rows and not filtered(r)]})
    return coverage


def _digest(password_hash):
    return hashlib.sha256(password_hash.encode()).hexdigest()


def _sound_hashes(path):
    """A managed instance's cache of password hashes found sound (SHA-256 of each salted hash: it
    says nothing of the password), in its Superset account's own directory."""
    try:
        with open(path) as handle:
            return set(json.load(handle))
    except (TypeError, OSError, ValueError):
        return set()


def _remember_sound(path, digests):
    if path:
        try:
            with open(path, "w") as handle:
                json.dump(sorted(digests), handle)
        except OSError:
            pass  # a cache: the next check is only slower


def _metadata_contents(C, conn, sa, cache):
    """Users, roles and rules, as counts and names; password hashes are checked here, never sent."""
    from werkzeug.security import check_password_hash

    rows = conn.execute(sa.text("SELECT username, password FROM ab_user WHERE active ORDER BY id")).fetchall()
    # Hash checks are slow by design: the first 25 accounts keep the scorecard within seconds, and
    # a hash found sound before (its digest in the instance's cache) is not checked again.
    sound = _sound_hashes(cache)
    trivial = [u for u, h in rows[:25] if h and _digest(h) not in sound
               and any(check_password_hash(h, p) for p in TRIVIAL_PASSWORDS + [u])]
    _remember_sound(cache, {_digest(h) for u, h in rows[:25] if h and u not in trivial})
    local = [u for u, h in rows if h]
    roles = [r for (r,) in conn.execute(sa.text("SELECT name FROM ab_role ORDER BY name"))]

    def permissions(role):
        return [
            f"{p} on {v}"
            for p, v in conn.execute(
                sa.text(
                    "SELECT p.name, v.name FROM ab_role r JOIN ab_permission_view_role pvr ON pvr.role_id = r.id "
                    "JOIN ab_permission_view pv ON pv.id = pvr.permission_view_id "
                    "JOIN ab_permission p ON p.id = pv.permission_id JOIN ab_view_menu v ON v.id = pv.view_menu_id "
                    "WHERE r.name = :role"
                ),
                {"role": role},
            )
        ]

    gamma = permissions("Gamma") if "Gamma" in roles else []
    declared = getattr(C, "SETPOINT_ACCESS", None)

    def drift(name, role):
        """What a declared role holds beyond, or lacks of, its base role, SQL Lab when declared,
        and read access to its datasets and databases; and its declared users who do not hold it."""
        wanted = set(permissions(role["base"])) | (set(permissions("sql_lab")) if role["sql_lab"] else set())
        for dataset in role["datasets"]:
            wanted.update(f"datasource_access on {perm}" for (perm,) in conn.execute(
                sa.text("SELECT perm FROM tables WHERE table_name = :name"), {"name": dataset}))
        for database in role.get("databases", []):
            # Superset computes a database's permission name and never stores it (Database.perm).
            wanted.update(f"database_access on [{database}].(id:{id_})" for (id_,) in conn.execute(
                sa.text("SELECT id FROM dbs WHERE database_name = :name"), {"name": database}))
        held = set(permissions(name)) if name in roles else set()
        holders = {u for (u,) in conn.execute(sa.text(
            "SELECT u.username FROM ab_user u JOIN ab_user_role ur ON ur.user_id = u.id JOIN ab_role r ON r.id = ur.role_id "
            "WHERE r.name = :role"), {"role": name})}
        return {"role": name, "exists": name in roles, "added": sorted(held - wanted), "missing": sorted(wanted - held),
                "users_without_it": sorted(set(role.get("users", [])) - holders)}

    declared_roles = (declared or {}).get("roles", {})
    sql_lab_allowed = {"Admin", "Alpha", "sql_lab", *(n for n, r in declared_roles.items() if r["sql_lab"])}
    public = getattr(C, "AUTH_ROLE_PUBLIC", "Public")  # a Flask-AppBuilder default
    return {
        "active_users": len(rows),
        "active_local_users": len(local),
        "local_users": local[:200],
        "trivial_password_users": trivial,
        "roles": roles,
        "public_permissions": len(permissions(public)) if public in roles else 0,
        "gamma_sql_lab": [p for p in gamma if p in SQL_LAB_ACCESS],
        "rls_rules": conn.execute(sa.text("SELECT count(*) FROM row_level_security_filters")).scalar(),
        "datasets": conn.execute(sa.text("SELECT count(*) FROM tables")).scalar(),
        "dashboards": conn.execute(sa.text("SELECT count(*) FROM dashboards")).scalar(),
        # Which datasets are multi-tenant is known only where Setpoint's configuration declares it.
        "rls_coverage": None if declared is None else _rls_coverage(conn, sa, declared["row_level_security"]),
        "declared_roles": sorted(declared_roles),
        "role_drift": [d for d in (drift(n, r) for n, r in declared_roles.items())
                       if d["added"] or d["missing"] or d["users_without_it"] or not d["exists"]],
        # Any other role that opens SQL Lab (which row-level security does not filter); Gamma's is above.
        "other_sql_lab_roles": [r for r in roles if r not in sql_lab_allowed | {"Gamma"}
                                and set(permissions(r)) & SQL_LAB_ACCESS],
        # Permissions Setpoint's configuration keeps from every role but Admin, where a role holds one.
        "withheld_held": {r: held for r in roles if r != "Admin" and (held := sorted(
            set(permissions(r)) & {f"{p} on {v}" for p, v in (declared or {}).get("withheld", [])}))},
        # Active users holding Admin, and who the configuration says may.
        "admin_users": [u for (u,) in conn.execute(sa.text(
            "SELECT u.username FROM ab_user u JOIN ab_user_role ur ON ur.user_id = u.id JOIN ab_role r ON r.id = ur.role_id "
            "WHERE r.name = 'Admin' AND u.active ORDER BY u.username LIMIT 200"))],
        "declared_admins": (declared or {}).get("admins"),
        # The guards Setpoint's configuration installs where permissions cannot express ownership.
        "ownership_guards": sorted(getattr(C, "SETPOINT_OWNERSHIP_GUARDS", {})),
    }


@section("metadata_db")
def _metadata_db(C, options):
    import sqlalchemy as sa

    engine = sa.create_engine(options.get("metadata_uri") or C.SQLALCHEMY_DATABASE_URI)
    facts = {"dialect": engine.dialect.name, "engine_options": {k: v for k, v in C.SQLALCHEMY_ENGINE_OPTIONS.items() if isinstance(v, (int, float, bool, str))}}
    try:
        with engine.connect() as conn:
            facts["reachable"] = True
            if engine.dialect.name == "postgresql":
                facts["server_version_num"] = int(conn.execute(sa.text("SHOW server_version_num")).scalar())
            facts.update(_metadata_contents(C, conn, sa, options.get("facts_cache")))
    finally:
        engine.dispose()
    return facts


@section("async_queries")
def _async_queries(C, options):
    flags = {**getattr(C, "DEFAULT_FEATURE_FLAGS", {}), **getattr(C, "FEATURE_FLAGS", {})}
    secret = C.GLOBAL_ASYNC_QUERIES_JWT_SECRET or ""
    return {
        "enabled": bool(flags.get("GLOBAL_ASYNC_QUERIES")),
        "jwt_secret_length": len(secret),
        "jwt_secret_is_default": secret == "test-secret-change-me",
        "jwt_secret_equals_secret_key": secret == C.SECRET_KEY,
    }


@section("talisman")
def _talisman(C, options):
    return {"enabled": bool(C.TALISMAN_ENABLED), "public_role_like": C.PUBLIC_ROLE_LIKE}


if __name__ == "__main__":
    print(json.dumps(gather({"celery_worker": os.environ.get("SETPOINT_CELERY_WORKER"),
                             "facts_cache": os.environ.get("SETPOINT_FACTS_CACHE"),
                             "metadata_uri": os.environ.get("SETPOINT_METADATA_URI")}), default=str))
