"""Superset's logs say what went wrong on the server, not what a client got wrong. Runs inside
Superset.

Copied beside superset_config.py, which calls `install()`. Superset 6.1 logs every client error
with a full traceback: a request without its CSRF token, or a database the guard refuses, writes
30 lines at WARNING from `superset.views.error_handling`, and Flask-AppBuilder's API logs a 404 for
an unknown locale at ERROR. An alert on error logs would then fire on any visitor's mistake. Here
a client error (4xx) keeps one line at WARNING, with its reason; server errors (5xx) and anything
else keep their traceback and level.

`no_sql_in_answers` keeps the metadata database's SQL out of API answers: Superset 6.1 answers a
failed tag change or user deletion with the raw SQLAlchemy error (statement, tables, constraint
names; apache/superset#38629 for the users). Such an answer becomes one generic sentence, and the
detail goes to the log. Answers about users' own queries (SQL Lab, chart data, databases) keep
their database's message, which users need to fix their SQL.

`initializer` keeps the metadata database's password out of the start-up output: Superset 6.1
prints "Cannot connect to database URI" when a process starts while its database is down, and
that URI carries the password (`make_url_safe` keeps it, and SQLAlchemy 1.4's `str()` prints it).
Stdlib only at import.
"""

from __future__ import annotations

import json
import logging

CLIENT_ERROR_LOGGERS = ("superset.views.error_handling", "superset.views.base", "flask_appbuilder.api")


def status_of(exc: BaseException | None) -> int | None:
    """The HTTP status an exception answers with, where it says (werkzeug's `code`, Superset's `status`)."""
    for attribute in ("code", "status"):
        value = getattr(exc, attribute, None)
        if isinstance(value, int) and 100 <= value < 600:
            return value
    return None


class ClientErrorsInOneLine(logging.Filter):
    """A 4xx answer's record without its traceback, at WARNING at most."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        status = status_of(exc) if exc is not None else _status_in_message(record)
        if status is None or not 400 <= status < 500:
            return True
        if exc is not None:
            record.msg, record.args = f"{record.getMessage()}: {type(exc).__name__}: {exc}", ()
            record.exc_info = record.exc_text = None
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _status_in_message(record: logging.LogRecord) -> int | None:
    """Flask-AppBuilder's API logs its answers as "404 Not Found: ..."."""
    head = record.getMessage()[:3]
    return int(head) if head.isdigit() else None


def install() -> None:
    for name in CLIENT_ERROR_LOGGERS:
        logging.getLogger(name).addFilter(ClientErrorsInOneLine())


def initializer(app):
    """Superset's app initializer (`APP_INITIALIZER`), saying which database it cannot reach without
    its password. Superset is imported by then: superset_config itself cannot import it."""
    from sqlalchemy.engine.url import make_url
    from superset.initialization import SupersetAppInitializer

    class Initializer(SupersetAppInitializer):
        def check_and_warn_database_connection(self) -> None:
            from superset.extensions import db

            try:
                with self.superset_app.app_context():
                    db.engine.execute("SELECT 1")
            except Exception as exc:  # noqa: BLE001 - Superset's own check: a warning, never fatal
                uri = self.database_uri
                where = repr(make_url(uri)) if uri else "(not configured)"
                logging.getLogger("setpoint.startup").error(
                    "cannot connect to the metadata database %s: %s", where, type(exc).__name__
                )

    return Initializer(app)


# What a raw SQLAlchemy error carries: its statement, and a link to its documentation.
RAW_SQL_MARKERS = ("[SQL: ", "sqlalche.me/e/", "(psycopg2.errors.", "(sqlite3.")
OWN_QUERY_PATHS = ("/api/v1/sqllab/", "/api/v1/chart/data", "/api/v1/database/", "/superset/sql_json", "/api/v1/dataset/")
GENERIC_ERROR = "The request could not be completed: it conflicts with other objects. The details are in the instance's log."


def has_raw_sql(text: str) -> bool:
    return any(marker in text for marker in RAW_SQL_MARKERS)


def no_sql_in_answers(app) -> None:
    from flask import request

    logger = logging.getLogger("setpoint.errors")

    @app.after_request
    def _no_sql(response):
        if response.status_code < 400 or not response.is_json or request.path.startswith(OWN_QUERY_PATHS):
            return response
        text = response.get_data(as_text=True)
        if has_raw_sql(text):
            logger.warning("%s %s answered %s: %s", request.method, request.path, response.status_code, text[:2000])
            response.set_data(json.dumps({"message": GENERIC_ERROR}))
        return response
