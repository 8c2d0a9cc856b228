# Superset configuration of instance "demo", rendered by Setpoint from its spec.
# Do not edit: `setpoint up demo` rewrites it. Secrets are read at start-up from
# superset-secrets.json (readable by this instance's Superset account only) and never written here.
import importlib.util
import json
import os
from datetime import timedelta
from urllib.parse import quote

import redis
from cachelib.redis import RedisCache
from flask_appbuilder.security.manager import AUTH_DB


def _setpoint_module(name: str):
    """One of Setpoint's modules, copied beside this file by `setpoint up`."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(os.path.dirname(__file__), f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


with open('/srv/setpoint/instances/demo/config/superset-secrets.json') as _secrets_file:
    _SECRETS = json.load(_secrets_file)

# --- Security (checklist points 1, 5, 6, 8) ---
SECRET_KEY = _SECRETS["secret_key"]
AUTH_TYPE = AUTH_DB
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_SAMESITE = "Lax"
WTF_CSRF_ENABLED = True
WTF_CSRF_TIME_LIMIT = None
PUBLIC_ROLE_LIKE = None
# Caddy terminates TLS in front of gunicorn and sends X-Forwarded-*, which count only on a request
# that carries the instance's proxy secret: one straight to gunicorn loses them (setpoint_proxy.py).
ENABLE_PROXY_FIX = True
ADDITIONAL_MIDDLEWARE = [_setpoint_module("setpoint_proxy").only_from_caddy(_SECRETS["proxy_secret"])]
# Permissions are synchronised once per converge by `superset init`, not by every process.
FAB_UPDATE_PERMS = os.environ.get("SETPOINT_UPDATE_PERMS") == "1"
TALISMAN_ENABLED = True
CONTENT_SECURITY_POLICY_WARNING = True
TALISMAN_CONFIG = {
    "content_security_policy": {
        "base-uri": ["'self'"],
        "default-src": ["'self'"],
        # No third-party hosts: no telemetry pixel, no map tiles.
        "img-src": ["'self'", "blob:", "data:"],
        "worker-src": ["'self'", "blob:"],
        "connect-src": ["'self'"],
        "object-src": "'none'",
        "style-src": ["'self'", "'unsafe-inline'"],
        "font-src": ["'self'", "data:"],
        "script-src": ["'self'", "'strict-dynamic'"],
        "frame-ancestors": ["'self'"],
        "form-action": ["'self'"],
    },
    "content_security_policy_nonce_in": ["script-src"],
    "force_https": False,  # Caddy redirects HTTP to HTTPS
    "session_cookie_secure": True,
    "strict_transport_security": False,  # Caddy sends HSTS, once
}
# Roles and row-level security made and kept by `setpoint up` (setpoint_apply_access), from the
# spec's roles: and row_level_security:; the scorecard checks every multi-tenant dataset (point 7).
SETPOINT_ACCESS = {'roles': {'sales_europe': {'base': 'Gamma', 'datasets': ['sales'], 'databases': [], 'users': [], 'sql_lab': False}, 'sales_north_america': {'base': 'Gamma', 'datasets': ['sales'], 'databases': [], 'users': [], 'sql_lab': False}}, 'row_level_security': [{'dataset': 'sales', 'tenant_column': 'region', 'filters': {'sales_europe': "region = 'Europe'", 'sales_north_america': "region = 'North America'"}, 'all_rows': ['Alpha']}], 'withheld': [['can_add', 'UserRegistrationsRestAPI'], ['can_delete', 'UserRegistrationsRestAPI'], ['can_edit', 'UserRegistrationsRestAPI'], ['can_list', 'UserRegistrationsRestAPI'], ['can_show', 'UserRegistrationsRestAPI']], 'admins': {'users': ['admin'], 'pattern': '^emergency-[0-9]{8}-[0-9]{6}$', 'by_group': False}}
RATELIMIT_ENABLED = True
RATELIMIT_APPLICATION = "200 per second"
RATELIMIT_HEADERS_ENABLED = True  # a 429 says when to retry (Retry-After)

# --- Logins, sessions and local passwords (setpoint_identity_guard.py beside this file) ---
_identity_guard = _setpoint_module("setpoint_identity_guard")
AUTH_RATE_LIMITED = True
AUTH_RATE_LIMIT = "20 per minute"
# Sessions live in Redis (SESSION_REDIS, below): logging out ends one for good. They end when idle
# (each request extends the cookie and the record) and at the end of their lifetime, as API
# refresh tokens do.
SESSION_SERVER_SIDE = True
SESSION_TYPE = "redis"
SESSION_KEY_PREFIX = "session:"
SESSION_PERMANENT = True
SESSION_REFRESH_EACH_REQUEST = True
PERMANENT_SESSION_LIFETIME = timedelta(minutes=480)
JWT_REFRESH_TOKEN_EXPIRES = timedelta(hours=24)
# Local passwords: long enough, and not among the most common ones.
FAB_PASSWORD_COMPLEXITY_ENABLED = True
FAB_PASSWORD_COMPLEXITY_VALIDATOR = _identity_guard.check_password
# Pages name the version to signed-in users only (the login page's menu data carries it).
COMMON_BOOTSTRAP_OVERRIDES_FUNC = _identity_guard.hide_version_in_pages
# Who may change what where Superset's permissions cannot say it (setpoint_ownership_guard.py).
_ownership_guard = _setpoint_module("setpoint_ownership_guard")
SETPOINT_OWNERSHIP_GUARDS = _ownership_guard.GUARDS


def FLASK_APP_MUTATOR(app) -> None:
    # Every password login (form and API) is limited per client address across gunicorn's workers
    # (Superset 6.1 limits neither); sessions end at their lifetime and when their user's
    # credentials change; only a POST logs out; a cross-site request gets no session; the users API
    # echoes no password; only admins see users' e-mails in the owner pickers; anonymous visitors
    # are not told the version; an unknown /lang/XX is a 404, not a 500; users change only what
    # they own or made; logins, logouts and changes of access go into the audit trail.
    _identity_guard.limit_logins(app, AUTH_RATE_LIMIT)
    _identity_guard.end_sessions_after(app, 86400)
    _identity_guard.end_sessions_on_credential_change(app, SESSION_REDIS)
    _identity_guard.logout_by_post(app)
    _identity_guard.no_sessions_for_cross_site(app)
    _identity_guard.hide_passwords(app)
    _identity_guard.hide_emails(app)
    _identity_guard.hide_version(app)
    _identity_guard.answer_unknown_locales(app)
    _ownership_guard.install(app)
    # While the Public role may do nothing (point 3), API calls stop asking (setpoint_public_role.py).
    _setpoint_module("setpoint_public_role").remember_when_empty(app)
    # Permission checks answered from memory until the permissions change (setpoint_permission_cache.py).
    _setpoint_module("setpoint_permission_cache").install(app)
    # The caller with their roles in one query, and a dataset read once per request (setpoint_metadata_reads.py).
    _setpoint_module("setpoint_metadata_reads").install(app)
    _LOG_HYGIENE.no_sql_in_answers(app)
    _AUDIT.record_access(app)
    # Every answer's status class, even one Superset's API never counted (a failure before it);
    # every image the worker's browser renders, failed or not.
    _metrics.count_responses(app)
    _metrics.count_screenshots()
    _reports.one_browser_at_a_time(_redis_url(2), 158)
    # Each migration's time, when Setpoint runs `superset db upgrade` (setpoint_migration_times.py).
    _setpoint_module("setpoint_migration_times").record(app)
    _reports.refuse_email_without_server(
        app, "name a mail server in the spec's smtp: section and run setpoint up demo --spec FILE")


# Every database connection goes through Setpoint's guard (setpoint_database_guard.py beside this
# file): only the spec's drivers, never this host, its private networks or another instance.
_guard = _setpoint_module("setpoint_database_guard")
DB_SQLA_URI_VALIDATOR = _guard.install(_guard.Guard(['postgresql'], [{'host': '127.0.0.1', 'port': 20002, 'user': 'superset'}, {'host': '127.0.0.1', 'port': 20002, 'user': 'examples_reader'}]))
PREVENT_UNSAFE_DB_CONNECTIONS = True

# --- Metrics (point 19): Superset's events for the host's Prometheus (setpoint_metrics.py) ---
_metrics = _setpoint_module("setpoint_metrics")
STATS_LOGGER = _metrics.PrometheusStatsLogger()
# The synthetic check of one chart's data for the probe points (setpoint_probe.py), and the facts
# of `setpoint check` (setpoint_facts.py).
_reports = _setpoint_module("setpoint_reports")
BLUEPRINTS = [_metrics.blueprint(_reports.is_direct_local_request, '5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8'),
              _setpoint_module("setpoint_probe").blueprint('Top countries', 'admin'),
              _setpoint_module("setpoint_facts").blueprint(_reports.is_direct_local_request, {'celery_worker': 'demo-worker@localhost', 'facts_cache': '/srv/setpoint/instances/demo/data/superset/facts-cache.json'})]
_metrics.count_celery_tasks()

# --- Audit trail (point 22): events, logins and access changes go to the host's log store
# (setpoint_audit.py), not into the metadata database (one INSERT per request on the hot path).
_AUDIT = _setpoint_module("setpoint_audit").AuditTrail('/srv/setpoint/instances/demo/audit/audit.log')
EVENT_LOGGER = _AUDIT.event_logger()
# A client's mistake (4xx) is one WARNING line, not a traceback (setpoint_log_hygiene.py).
# An API error answer carries no SQL of the metadata database (it goes to the log instead).
# A process started while its database is down names it without its password.
_LOG_HYGIENE = _setpoint_module("setpoint_log_hygiene")
_LOG_HYGIENE.install()
APP_INITIALIZER = _LOG_HYGIENE.initializer

# --- Metadata database (points 11, 12) ---
SQLALCHEMY_DATABASE_URI = f"postgresql+psycopg2://superset:{quote(_SECRETS['metadata_db_password'])}@127.0.0.1:20002/superset"
SQLALCHEMY_ENGINE_OPTIONS = {
    "pool_size": 10,
    "max_overflow": 10,
    "pool_recycle": 3600,
    # No pool_pre_ping: Superset itself runs SELECT 1 on every checkout and reconnects a connection
    # the server dropped (utils.core.pessimistic_connection_handling); a second ping was one more
    # round trip per request.
}
SQLALCHEMY_TRACK_MODIFICATIONS = False

# --- Redis: every cache, Celery, results, rate limits, async queries (points 9, 10, 13) ---
_REDIS_URL = f"redis://:{quote(_SECRETS['redis_password'])}@127.0.0.1:20003"


def _redis_url(db: int) -> str:
    return f"{_REDIS_URL}/{db}"


def _redis_cache(prefix: str, timeout: int) -> dict:
    return {
        "CACHE_TYPE": "RedisCache",
        "CACHE_DEFAULT_TIMEOUT": timeout,
        "CACHE_KEY_PREFIX": f"superset_{prefix}_",
        "CACHE_REDIS_URL": _redis_url(2),
    }


CACHE_DEFAULT_TIMEOUT = 86400
CACHE_CONFIG = _redis_cache("metadata", 86400)
DATA_CACHE_CONFIG = _redis_cache("data", 3600)
FILTER_STATE_CACHE_CONFIG = _redis_cache("filter_state", 7776000)
EXPLORE_FORM_DATA_CACHE_CONFIG = _redis_cache("explore", 604800)
THUMBNAIL_CACHE_CONFIG = _redis_cache("thumbnail", 604800)
RESULTS_BACKEND = RedisCache(host=redis.Redis.from_url(_redis_url(3)), key_prefix="superset_results_")
RATELIMIT_STORAGE_URI = _redis_url(4)
SESSION_REDIS = redis.Redis.from_url(_redis_url(6))


# --- Work in flight: no task lost, no query left running ---
# setpoint_task_safety.py (beside this file): each task runs at most twice, the tasks of a killed
# worker go back to the queue when it restarts, and a reaper fails queries left running.
_TASKS = _setpoint_module("setpoint_task_safety").TaskSafety(
    _redis_url(0), SQLALCHEMY_DATABASE_URI, time_limit_s=600,
    grace_s=60, scheduled_tasks=('reports.scheduler', 'reports.prune_log'),
    ready_file='/srv/setpoint/instances/demo/data/superset/worker.ready')
_QUERY_LIMITS = {"soft_time_limit": 600, "time_limit": 660}


class CeleryConfig:
    broker_url = _redis_url(0)
    result_backend = _redis_url(1)
    broker_connection_retry_on_startup = True
    imports = (
        "superset.sql_lab",
        "superset.tasks.scheduler",
        "superset.tasks.thumbnails",
        "superset.tasks.cache",
    )
    # A task is acknowledged once it ran, and goes back to the queue when its process dies (kill
    # -9, out of memory): queries, charts, thumbnails and cache warm-ups are safe to run twice.
    task_acks_late = True
    task_reject_on_worker_lost = True
    worker_prefetch_multiplier = 1
    # When Redis restarts, a running task finishes and is acknowledged once Redis is back.
    # (Cancelling it instead loses it: Celery acknowledges the cancelled task on reconnection.)
    worker_cancel_long_running_tasks_on_connection_loss = False
    # The broker hands an unacknowledged task to another worker only after the longest one.
    broker_transport_options = {"visibility_timeout": _TASKS.visibility_timeout_s}
    task_annotations = {
        "*": _TASKS.install(),
        "sql_lab.get_sql_results": {"rate_limit": "100/s", **_QUERY_LIMITS},
        "load_chart_data_into_cache": _QUERY_LIMITS,
        "load_explore_json_into_cache": _QUERY_LIMITS,
        # A hung page gives the worker back: past the page's load timeout, the browser is quit.
        **{task: {"soft_time_limit": 128, "time_limit": 158}
           for task in ("cache_dashboard_thumbnail", "cache_chart_thumbnail", "cache_dashboard_screenshot")},
        # Not safe to run twice: a report or alert is e-mailed at most once (acknowledged when it
        # starts; Superset's execution log refuses a second run of the same schedule).
        "reports.scheduler": {"acks_late": False},
        "reports.execute": {"acks_late": False},
        "tasks.execute": {"acks_late": False},
    }
    # Beat runs without Superset (setpoint_beat.py, its schedule in beat.json); a send it could not
    # record (killed in between) is run once all the same: task safety runs a scheduled task once
    # per minute it was due.


CELERY_CONFIG = CeleryConfig
SUPERSET_WEBSERVER_TIMEOUT = 300
SQLLAB_ASYNC_TIME_LIMIT_SEC = 600
SQLLAB_TIMEOUT = 30
# Analytics connections to PostgreSQL cancel a statement past the time limit: an orphaned query
# stops in the database too.
DB_CONNECTION_MUTATOR = _TASKS.connection_mutator

# --- Screenshots (reports' images, thumbnails): the worker's headless Chromium, through Debian's
# ChromeDriver, loads the instance's own gunicorn as the user the image is for ---
from superset.tasks.types import ExecutorType  # noqa: E402 - loaded by Superset's config already

WEBDRIVER_TYPE = "chrome"
WEBDRIVER_BASEURL = "http://127.0.0.1:20001/"
WEBDRIVER_BASEURL_USER_FRIENDLY = 'https://demo.localhost/'
WEBDRIVER_OPTION_ARGS = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--hide-scrollbars', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-default-apps', '--disable-extensions', '--disable-quic', '--mute-audio']
WEBDRIVER_CONFIGURATION = {
    "options": {"capabilities": {}, "preferences": {}},
    "service": {"executable_path": '/usr/bin/chromedriver', "log_output": "/dev/null", "service_args": [], "port": 0, "env": {}},
}
SCREENSHOT_LOCATE_WAIT = 30
SCREENSHOT_LOAD_WAIT = 60
# A thumbnail that failed is tried again after 10 minutes, not a day (Superset's default).
THUMBNAIL_ERROR_CACHE_TTL = 600
# A thumbnail is rendered as the user who looks at it: it shows what that user may see, never what
# an admin sees (per-user digests; another user's thumbnail address redirects to one's own).
THUMBNAIL_EXECUTORS = [ExecutorType.CURRENT_USER]
# Alerts and reports run as their owner (never a fixed admin: each sees what its owner may).
ALERT_REPORTS_EXECUTORS = [ExecutorType.OWNER]
# No mail server in the spec: no e-mail report can be saved (setpoint_reports.py), and Superset's
# published default password is not left in place.
SMTP_PASSWORD = ""

# Asynchronous queries over Redis streams, with a JWT secret of their own; the worker's renderer
# runs its pages' queries in the web process, or it would wait for itself (setpoint_reports.py).
FEATURE_FLAGS = {'GLOBAL_ASYNC_QUERIES': True, 'ALERT_REPORTS': True, 'THUMBNAILS': True}
IS_FEATURE_ENABLED_FUNC = _reports.feature_enabled
GLOBAL_ASYNC_QUERIES_TRANSPORT = "polling"
GLOBAL_ASYNC_QUERIES_JWT_SECRET = _SECRETS["async_jwt_secret"]
# Embedded dashboards' guest tokens: Superset's default secret is public, so anyone could mint one.
GUEST_TOKEN_JWT_SECRET = _SECRETS["guest_token_jwt_secret"]
GLOBAL_ASYNC_QUERIES_JWT_COOKIE_SECURE = True
GLOBAL_ASYNC_QUERIES_JWT_COOKIE_SAMESITE = "Lax"
_REDIS = redis.Redis.from_url(_redis_url(5)).connection_pool.connection_kwargs
GLOBAL_ASYNC_QUERIES_CACHE_BACKEND = {
    "CACHE_TYPE": "RedisCache",
    "CACHE_REDIS_HOST": _REDIS.get("host", "127.0.0.1"),
    "CACHE_REDIS_PORT": _REDIS.get("port", 6379),
    "CACHE_REDIS_USER": _REDIS.get("username") or "",
    "CACHE_REDIS_PASSWORD": _REDIS.get("password") or "",
    "CACHE_REDIS_DB": 5,
    "CACHE_DEFAULT_TIMEOUT": 300,
    "CACHE_REDIS_SSL": _REDIS_URL.startswith("rediss://"),
}
