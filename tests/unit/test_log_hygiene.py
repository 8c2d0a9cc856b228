"""Client errors in Superset's logs: one WARNING line each; server errors keep their traceback."""

import logging
import sys

import pytest

from setpoint.runtime.local.superset_side.log_hygiene import ClientErrorsInOneLine


class HTTPError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def record(level: int, message: str, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = None
    if exc is not None:
        try:
            raise exc
        except Exception:
            exc_info = sys.exc_info()
    return logging.LogRecord("superset.views.error_handling", level, __file__, 1, message, (), exc_info)


def formatted(entry: logging.LogRecord) -> str:
    assert ClientErrorsInOneLine().filter(entry)
    return logging.Formatter("%(levelname)s:%(message)s").format(entry)


def test_a_missing_csrf_token_is_one_warning_line():
    text = formatted(record(logging.WARNING, "HTTPException", HTTPError("400 Bad Request: The CSRF token is missing.", 400)))
    assert text == "WARNING:HTTPException: HTTPError: 400 Bad Request: The CSRF token is missing."


@pytest.mark.parametrize("level", [logging.WARNING, logging.ERROR])
def test_a_server_error_keeps_its_traceback_and_level(level):
    entry = record(level, "boom", HTTPError("500 Internal Server Error", 500))
    text = formatted(entry)
    assert "Traceback (most recent call last)" in text and entry.levelno == level


def test_an_exception_without_a_status_keeps_its_traceback():
    assert "Traceback" in formatted(record(logging.ERROR, "Exception", ValueError("no status")))


def test_flask_appbuilders_404_at_error_becomes_a_warning():
    entry = record(logging.ERROR, "404 Not Found: Locale not supported.")
    assert formatted(entry) == "WARNING:404 Not Found: Locale not supported."
    assert formatted(record(logging.ERROR, "500 Internal Server Error: x")).startswith("ERROR:")
