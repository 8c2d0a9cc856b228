"""The audit trail of one Superset instance, written into the host's central log store instead of
Superset's own metadata database. Runs inside Superset.

Copied beside superset_config.py, which makes an `AuditTrail` with the instance's audit file, sets
`EVENT_LOGGER` to its `event_logger()` and calls its `record_access(app)` from FLASK_APP_MUTATOR.

Every record is one JSON line appended to the instance's own audit file (data/superset/audit/,
the Superset account's alone): the host's log store (rsyslog, observability/logstore.py) reads it
as it grows, files it into the instance's audit stream with its own retention, and forwards it off
the host with the rest. The file holds nothing but records, so no text a user gets into a log line
(an error quoting a query, say) can pass for one; the instance's account cannot rewrite a record
once the store has read it, nor write into another instance's trail.

Recorded:
- Superset's events (what its DBEventLogger would INSERT into `logs` on every request): chart data
  and SQL Lab queries with their user, database and duration, dashboard and chart views, exports;
  not the browser's own telemetry (POST /superset/log/);
- logins (form and OAuth through Flask-Login's signal, API logins from their answer), failed
  logins with the name tried, logouts;
- every change of users, roles, permissions and row-level security, with its answer's status.

Each record is one write() under 4,096 bytes on a file opened for appending, so the records of
gunicorn's workers and Celery's processes never interleave. The directory is root's and the file
the host's log store's (which reads it, and would follow a link): these processes append to it
through their group and neither create, rename nor replace it; root's scheduler rotates it (logstore.rotate_audit_trail).
Stdlib only at import.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime, timezone

MAX_LINE = 4000
MAX_VALUE = 300
# Changes to who may do what: users, roles, permissions, row-level security.
ACCESS_CHANGE = re.compile(
    r"^/(api/v1/security/(?!login|refresh|csrf_token|guest_token)|api/v1/rowlevelsecurity|"
    r"roles|users|rowlevelsecurity|registeruser|permissions|permissionviews|viewmenus)")
LOGIN_PATHS = {"/login/": "form", "/break-glass/": "form", "/api/v1/security/login": "api"}
UNAUDITED_EVENTS = {"log"}  # the browser's own telemetry, in bulk
OPEN_ATTEMPTS = 20  # 10 ms apart


class AuditTrail:
    """The audit records of one instance, appended to its audit file."""

    def __init__(self, path: str) -> None:
        self.path = path

    @staticmethod
    def record(event: str, **fields) -> bytes:
        """One audit record, as the line written (fields that are None are left out)."""
        record = {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "event": event}
        record.update({key: _short(value) for key, value in fields.items() if value is not None})
        line = json.dumps(record, default=str, separators=(",", ":"))
        if len(line) > MAX_LINE:
            line = json.dumps({key: record[key] for key in ("time", "event", "user") if key in record}
                              | {"truncated": True}, separators=(",", ":"))
        return (line + "\n").encode()

    def emit(self, event: str, **fields) -> None:
        """Write one audit record (fields that are None are left out)."""
        try:
            self._append(self.record(event, **fields))
        except OSError as exc:  # a full disk must not fail the user's request; say it where the operator looks
            os.write(2, f"setpoint audit: could not write a {event} record to {self.path}: {exc}\n".encode())

    def _append(self, data: bytes) -> None:
        for attempt in range(OPEN_ATTEMPTS):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
                break
            except FileNotFoundError:  # between the two renames of root's rotation
                if attempt == OPEN_ATTEMPTS - 1:
                    raise
                time.sleep(0.01)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def event_logger(self):
        """Superset's EVENT_LOGGER: each event as an audit record, none in the metadata database."""
        from superset.utils.log import AbstractEventLogger

        emit = self.emit

        class AuditEventLogger(AbstractEventLogger):
            def log(self, user_id, action, dashboard_id, duration_ms, slice_id, referrer,
                    curated_payload, curated_form_data, *args, **kwargs) -> None:
                if action in UNAUDITED_EVENTS:
                    return
                records = kwargs.get("records") or [{}]
                first = records[0] if isinstance(records[0], dict) else {}
                emit(action, user=_username(), user_id=user_id, **_request_fields(),
                     dashboard_id=dashboard_id, chart_id=slice_id,
                     database_id=kwargs.get("database_id") or first.get("database_id"),
                     engine=kwargs.get("engine"), duration_ms=duration_ms,
                     records=len(records) if len(records) > 1 else None)

        return AuditEventLogger()

    def record_access(self, app) -> None:
        """Logins, failed logins, logouts and changes of access, as audit records."""
        from flask import request
        from flask_login import user_logged_in, user_logged_out

        def _logged_in(sender, user, **extra):
            self.emit("login", user=getattr(user, "username", None), **_request_fields())

        def _logged_out(sender, user, **extra):
            self.emit("logout", user=getattr(user, "username", None), **_request_fields())

        user_logged_in.connect(_logged_in, app, weak=False)
        user_logged_out.connect(_logged_out, app, weak=False)

        @app.after_request
        def _audit_access(response):
            if request.method in ("GET", "HEAD", "OPTIONS"):
                return response
            kind = LOGIN_PATHS.get(request.path)
            if kind is not None:
                self._login(kind, response)
            elif ACCESS_CHANGE.match(request.path):
                self.emit("access_change", user=_username(), status=response.status_code, **_request_fields())
            return response

    def _login(self, kind: str, response) -> None:
        """A password login's outcome: the form's success is Flask-Login's signal; the API's is its 200."""
        from flask_login import current_user

        if kind == "form" and current_user.is_authenticated:
            return  # user_logged_in said it
        if kind == "api" and response.status_code == 200:
            self.emit("login", user=_tried_username(), via="api", **_request_fields())
            return
        reason = "rate limited" if response.status_code == 429 else "refused"
        self.emit("login_failed", user=_tried_username(), via=kind, reason=reason, status=response.status_code,
                  **_request_fields())


def _short(value):
    if isinstance(value, str) and len(value) > MAX_VALUE:
        return value[:MAX_VALUE] + "..."
    return value


def _request_fields() -> dict:
    from flask import has_request_context, request

    if not has_request_context():
        return {}
    return {"ip": request.remote_addr, "method": request.method, "path": request.path}


def _username() -> str | None:
    from flask import g, has_request_context

    user = g.get("user") if has_request_context() else None
    return getattr(user, "username", None)


def _tried_username() -> str | None:
    from flask import request

    body = request.get_json(silent=True) if request.is_json else None
    name = (body or {}).get("username") if isinstance(body, dict) else request.form.get("username")
    return name if isinstance(name, str) else None
