"""The host's mailbox: where an instance's alerts are delivered when its spec names no receiver,
so that every instance's alerts reach a place an operator reads from its first minute
(checklist point 20), as a Unix host's own alerts reach root's mailbox.

A small SMTP server (aiosmtpd) on a loopback port, run by the host's supervisord as the
monitoring account. It takes mail only from a client that logs in with the monitoring password
(the host's Alertmanager: no instance account reads that password), keeps each message of at
most 1 MiB in the Maildir monitoring/mailbox/, and only the newest 1,000. `setpoint alerts NAME
--mailbox` reads it.
"""

from __future__ import annotations

import hmac
import logging
import mailbox
import signal
import sys
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from email.header import decode_header, make_header
from pathlib import Path

DOMAIN = "mailbox.localhost"
SENDER = f"alertmanager@{DOMAIN}"
LOGIN = "alertmanager"
KEEP = 1000  # messages; the oldest go first
MAX_BYTES = 1 << 20


def address(name: str) -> str:
    """The address of instance `name`'s alerts in the host's mailbox."""
    return f"{name}@{DOMAIN}"


def is_mailbox_address(to: str) -> bool:
    return to.endswith(f"@{DOMAIN}")


@dataclass(frozen=True)
class Message:
    received: datetime
    subject: str


def messages(directory: Path, name: str) -> list[Message]:
    """The messages for instance `name` in the mailbox at `directory`, oldest first."""
    if not (directory / "cur").is_dir():
        return []
    found = []
    for message in mailbox.Maildir(directory, create=False):
        recipients = str(message.get("To", ""))
        if address(name) not in recipients:
            continue
        subject = str(make_header(decode_header(str(message.get("Subject", "")))))
        found.append(Message(datetime.fromtimestamp(message.get_date(), timezone.utc), subject))
    return sorted(found, key=lambda m: m.received)


class _Keeper:
    """aiosmtpd's handler: keeps each message of a logged-in client, and only the newest KEEP."""

    def __init__(self, directory: Path) -> None:
        # Maildir makes its tmp/, new/ and cur/ only when it makes the directory itself, and `up`
        # makes the directory (the monitoring account's, 0700).
        for part in ("tmp", "new", "cur"):
            (directory / part).mkdir(mode=0o700, parents=True, exist_ok=True)
        self.box = mailbox.Maildir(directory, create=False)

    async def handle_DATA(self, server, session, envelope) -> str:
        self.box.add(envelope.original_content or envelope.content)
        keys = self.box.keys()
        if len(keys) > KEEP:
            for key in sorted(keys, key=lambda key: self.box.get_message(key).get_date())[:-KEEP]:
                self.box.discard(key)
        return "250 OK kept"


def _authenticator(password_file: Path):
    """Accept the login `alertmanager` with the monitoring password, read on each login."""
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def check(server, session, envelope, mechanism, auth_data) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        password = password_file.read_bytes().strip()
        ok = auth_data.login == LOGIN.encode() and hmac.compare_digest(auth_data.password, password)
        return AuthResult(success=ok, handled=False)

    return check


def start(directory: Path, port: int, password_file: Path):
    """The mailbox, listening on 127.0.0.1:`port` in a thread of its own (stop() ends it)."""
    from aiosmtpd.controller import Controller

    # On every connection aiosmtpd warns of a login over plain SMTP (here it never leaves loopback)
    # and logs its own use of a deprecated attribute: neither is news, both would flood the log.
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    controller = Controller(_Keeper(directory), hostname="127.0.0.1", port=port, server_hostname=DOMAIN,
                            authenticator=_authenticator(password_file), auth_required=True,
                            auth_require_tls=False,  # loopback only: nothing crosses a network
                            # Alertmanager's LOGIN expects the challenge "Username:", aiosmtpd sends
                            # "User Name": PLAIN alone works with both.
                            auth_exclude_mechanism=["LOGIN"],
                            data_size_limit=MAX_BYTES)
    controller.start()
    return controller


def serve(directory: Path, port: int, password_file: Path) -> None:
    """Run the mailbox until SIGTERM."""
    controller = start(directory, port, password_file)
    print(f"the host's mailbox listens on 127.0.0.1:{port}, keeping mail in {directory}", flush=True)
    try:
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
    finally:
        controller.stop()


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    serve(Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
