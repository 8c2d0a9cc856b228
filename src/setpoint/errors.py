"""The one error type users see: what went wrong, and how to fix it."""

from __future__ import annotations


class SetpointError(Exception):
    """A failure the user can act on; the CLI prints it without a traceback."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class InputError(SetpointError):
    """Bad input from the user (a spec, an option, a name): exit code 2."""

    exit_code = 2

