"""Superset's logs say what went wrong on the server, not what a client got wrong. Runs inside
Superset.

Copied beside superset_config.py, which calls `install()`. Superset 6.1 logs every client error
with a full traceback: a request without its CSRF token, or a database the guard refuses, writes
30 lines at WARNING from `superset.views.error_handling`, and Flask-AppBuilder's API logs a 404 for
an unknown locale at ERROR. An alert on error logs would then fire on any visitor's mistake. Here
a client error (4xx) keeps one line at WARNING, with its reason; server errors (5xx) and anything
else keep their traceback and level. Stdlib only.
"""

from __future__ import annotations

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
