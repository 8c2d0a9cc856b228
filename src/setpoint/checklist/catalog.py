"""The 25 points of the production checklist, each defined once: readable as the checklist itself.

`setpoint up` guarantees them (through the rendered configuration and services) and
`setpoint check` scores them with these probes.
"""

from __future__ import annotations

from setpoint.checklist import operations as ops
from setpoint.checklist import performance as perf
from setpoint.checklist import security as sec
from setpoint.checklist.model import Check, Section

S, P, B, M, C = Section.security, Section.performance, Section.backups, Section.monitoring, Section.compliance

CHECKS: list[Check] = [
    Check(1, "secret-key", S, "SECRET_KEY is strong, secret, and no known default key forges a session",
          sec.probe_secret_key,
          "setpoint up NAME keeps a generated 64-character key, and generated JWT secrets, in the 0600 secret store",
          "generate one with `openssl rand -base64 42`, load it from a secret store or the environment, never commit "
          "it; set GUEST_TOKEN_JWT_SECRET and GLOBAL_ASYNC_QUERIES_JWT_SECRET to generated values too"),
    Check(2, "https-hsts", S, "HTTPS only: HTTP redirects, HSTS for a year with subdomains, TLS 1.2+",
          sec.probe_https,
          "setpoint up NAME publishes the instance through Caddy with HSTS and the HTTP redirect",
          "terminate TLS 1.2+ in front of Superset, redirect HTTP, send Strict-Transport-Security: max-age=63072000; includeSubDomains; preload"),
    Check(3, "no-default-admin", S, "admin/admin is refused and no active local account has a trivial password",
          sec.probe_default_admin,
          "setpoint up NAME creates the admin with a generated password; reset weak accounts in Settings > List Users",
          "delete or re-password the admin account and every account with a trivial password"),
    Check(4, "sso", S, "users log in through an OIDC or SAML provider",
          sec.probe_sso,
          "add an sso: section naming the OpenID Connect provider and client to the spec, put the client secret in "
          "SETPOINT_SSO_CLIENT_SECRET and run: setpoint up NAME --spec FILE",
          "configure AUTH_TYPE = AUTH_OAUTH with OAUTH_PROVIDERS (Google, Entra ID, Keycloak)"),
    Check(5, "cookies-csrf", S, "session cookie HttpOnly, Secure, SameSite; CSRF on, without time limit",
          sec.probe_cookies_csrf,
          "setpoint up NAME renders these settings",
          "set SESSION_COOKIE_HTTPONLY/SECURE = True, SESSION_COOKIE_SAMESITE = 'Lax', WTF_CSRF_ENABLED = True, WTF_CSRF_TIME_LIMIT = None"),
    Check(6, "csp", S, "a Content-Security-Policy without unsafe-eval in script-src",
          sec.probe_csp,
          "setpoint up NAME enables Talisman with its CSP",
          "set TALISMAN_ENABLED = True with a TALISMAN_CONFIG content_security_policy"),
    Check(7, "row-level-security", S, "every multi-tenant dataset has RLS rules for every non-admin role that reads it",
          sec.probe_rls,
          "declare each multi-tenant dataset in the spec's row_level_security (tenant_column, a filter per tenant role) "
          "and run: setpoint up NAME --spec FILE",
          "add row-level security rules (Settings > Row Level Security) for every multi-tenant dataset"),
    Check(8, "roles", S, "Public has no permissions, anonymous API calls are refused, Gamma has no SQL Lab, roles match",
          sec.probe_roles,
          "run: setpoint roles NAME --repair (declared roles, rules and what only admins may are put back); "
          "delete in Superset the roles the spec does not name",
          "set PUBLIC_ROLE_LIKE = None, empty the Public role, keep SQL Lab in the sql_lab role only"),
    Check(9, "redis-cache", P, "Redis (or Memcached) is behind Superset's caches and reachable",
          perf.probe_redis_cache,
          "setpoint up NAME configures Redis for every cache; check the redis component with setpoint status NAME",
          "set CACHE_CONFIG, DATA_CACHE_CONFIG, FILTER_STATE_CACHE_CONFIG, EXPLORE_FORM_DATA_CACHE_CONFIG to RedisCache"),
    Check(10, "celery-sizing", P, "Celery workers run (1 per 50 users), exactly one beat, web timeout of 300 s or more",
          perf.probe_celery,
          "raise concurrent_users in the spec or restart workers: setpoint up NAME",
          "run celery workers (1 process per 50 users) and a single beat; SUPERSET_WEBSERVER_TIMEOUT = 300"),
    Check(11, "metadata-postgres", P, "the metadata database is PostgreSQL 14+ and reachable",
          perf.probe_metadata_postgres,
          "setpoint up NAME runs a managed PostgreSQL 15; see setpoint logs NAME postgres",
          "move SQLALCHEMY_DATABASE_URI to PostgreSQL 14 or newer"),
    Check(12, "connection-pool", P, "SQLAlchemy pool options are set (pool size, recycle)",
          perf.probe_pool,
          "setpoint up NAME renders SQLALCHEMY_ENGINE_OPTIONS",
          "set SQLALCHEMY_ENGINE_OPTIONS = {'pool_size': 10, 'pool_recycle': 3600}"),
    Check(13, "async-queries", P, "GLOBAL_ASYNC_QUERIES is on with its own JWT secret and a worker",
          perf.probe_async_queries,
          "setpoint up NAME turns it on with a generated JWT secret",
          "set FEATURE_FLAGS['GLOBAL_ASYNC_QUERIES'] = True and a random GLOBAL_ASYNC_QUERIES_JWT_SECRET; run a worker"),
    Check(14, "backups", B, "a full backup under 26 h, WAL archiving, 30-day retention, a restore test under 92 days",
          ops.probe_backups,
          "setpoint backup NAME takes a full backup; setpoint backup verify NAME runs a restore drill",
          "back up the metadata database with pgBackRest (daily full, WAL archiving, 30 days) and test restores quarterly"),
    Check(15, "offsite-backups", B, "a copy of the backups off-site, under 26 h old",
          ops.probe_offsite,
          "name an S3-compatible repository in the spec's backup.offsite (elsewhere than this host) and run setpoint up NAME",
          "copy backups to object storage in another location (B2, Wasabi, S3 cross-region)"),
    Check(16, "dr-plan", B, "a disaster-recovery plan names the backup, the secrets and the steps",
          ops.probe_dr_plan,
          "setpoint dr plan NAME renders it from the instance's configuration",
          "write the recovery procedure: which backup, how to rebuild, which secrets, who to call; RTO 4 h"),
    Check(17, "dashboards-as-code", B, "dashboards exported as YAML into git within 48 h, matching the instance",
          ops.probe_dashboard_export,
          "setpoint export NAME [--git DIR_OR_URL] exports every dashboard into git",
          "export dashboards daily (superset export-dashboards) into a git repository"),
    Check(18, "central-logs", M, "web, worker and database logs reach a central log store",
          ops.probe_central_logs,
          "the host's log store (rsyslog) collects every instance that is up: run setpoint up NAME (and setpoint doctor --install if rsyslog is missing); name a remote store in the spec's logs.remote",
          "ship Superset, Celery and PostgreSQL logs to Loki, ELK or Datadog"),
    Check(19, "prometheus", M, "Prometheus scrapes Superset and host metrics",
          ops.probe_metrics,
          "the host's Prometheus scrapes every instance that is up: run setpoint up NAME (and setpoint doctor --install if Prometheus is missing)",
          "expose STATS_LOGGER metrics and node metrics to Prometheus"),
    Check(20, "alerts", M, "alerts for CPU 99% for 5 min, 5xx above 5% and backup failure route to a receiver",
          ops.probe_alerts,
          "run setpoint up NAME --spec FILE: it routes the alerts (to the host's mailbox unless the spec's alerts name webhooks, "
          "emails with an smtp: section, slack or pagerduty) and sends them a test notification",
          "add alert rules for CPU, 5xx rate and backup failure routed to Slack or PagerDuty"),
    Check(21, "synthetic-checks", M, "an external check calls /health every 60 s from 3 points",
          ops.probe_synthetic,
          "run a prometheus-blackbox-exporter with the files of setpoint probe-config --output DIR on two more hosts, "
          "list them in the spec's probes.points, then run: setpoint up NAME --spec FILE",
          "monitor /health every 60 s from three locations (UptimeRobot, Better Stack)"),
    Check(22, "audit-trail", C, "logins, logouts and queries with their user reach a store outside the instance",
          ops.probe_audit,
          "Superset writes its audit trail into the host's log store: run setpoint up NAME, then read it with setpoint audit NAME",
          "send Superset's event log (logins, queries) to an external store"),
    Check(23, "gdpr", C, "a tested erasure procedure and a processing register exist",
          ops.probe_gdpr,
          "add a gdpr: section to the spec (controller, hosting_location) and run setpoint up NAME --spec FILE: it writes the "
          "processing register and runs an erasure drill; erase a person with setpoint gdpr erase NAME --user U --transfer-to OWNER",
          "keep a processing register and test a user-erasure procedure"),
    Check(24, "incident-runbook", C, "an incident runbook outside the instance: restart, clear cache, emergency user",
          ops.probe_runbook,
          "setpoint up NAME writes the runbook (setpoint runbook NAME) into every backup repository and the dashboards' git repository",
          "write the runbook (restart, clear cache, emergency user when SSO is down) outside the instance"),
    Check(25, "update-procedure", C, "a supported, recent release; upgrades through staging with a rollback path",
          ops.probe_updates,
          "upgrade through a staging copy with automatic rollback: setpoint upgrade NAME --to VERSION (see: setpoint versions NAME)",
          "upgrade quarterly through a staging instance, with a tested rollback"),
]

assert [c.id for c in CHECKS] == list(range(1, 26)), "the checklist has exactly 25 points, in order"
