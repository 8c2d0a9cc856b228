"""The mail server an instance's spec names (smtp:): its password, and whether it answers."""

from __future__ import annotations

import smtplib
import ssl

from setpoint.errors import SetpointError
from setpoint.secret import given_or_stored
from setpoint.spec.model import Smtp

PASSWORD_KEY = "smtp_password"  # in the instance's secret store


def credentials(smtp: Smtp, stored: dict[str, str]) -> dict[str, str]:
    """The password of the spec's mail server: given in the environment variable it names (it
    then moves into the secret store), else the one `stored` by an earlier converge; none when the
    server asks for no login."""
    if not smtp.username:
        return {}
    return {PASSWORD_KEY: given_or_stored(PASSWORD_KEY, smtp.password_env, stored,
                                          f"the mail server {smtp.host} needs the password of {smtp.username}")}


def check(smtp: Smtp, password: str = "", timeout: float = 15) -> None:
    """Fail, naming the cause, unless the server greets, secures the line as the spec says, and
    accepts the login."""
    try:
        if smtp.security == "tls":
            client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=timeout, context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=timeout)
        with client:
            client.ehlo()
            if smtp.security == "starttls":
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if smtp.username:
                client.login(smtp.username, password)
            client.noop()
    except (OSError, smtplib.SMTPException) as exc:
        raise SetpointError(
            f"the mail server {smtp.host}:{smtp.port} does not accept Setpoint ({type(exc).__name__}: {str(exc)[:160]})",
            "check host, port, security, username and the password in the spec's smtp: section, then run the command again",
        ) from None
