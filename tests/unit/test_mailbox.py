"""The host's mailbox, a real SMTP server on loopback: it keeps Alertmanager's mail and refuses
anyone without the monitoring password, as a local account would try."""

import smtplib
from email.message import EmailMessage

import pytest

from tests.s3_server import free_port
from setpoint.observability import mailbox


@pytest.fixture
def box(tmp_path):
    password = tmp_path / "password"
    password.write_text("s3cret-monitoring-password")
    port = free_port()
    (tmp_path / "mailbox").mkdir(mode=0o700)  # as `up` makes it
    server = mailbox.start(tmp_path / "mailbox", port, password)
    yield tmp_path / "mailbox", port
    server.stop()


def _mail(to: str, subject: str, body: str = "CPU at 99% for 5 min") -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = mailbox.SENDER, to, subject
    message.set_content(body)
    return message


def test_keeps_alertmanagers_mail_for_each_instance(box):
    directory, port = box
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.login(mailbox.LOGIN, "s3cret-monitoring-password")
        client.send_message(_mail(mailbox.address("demo"), "[FIRING:1] HostCpuSaturated"))
        client.send_message(_mail(mailbox.address("bars"), "[FIRING:1] BackupFailed (bars)"))
    assert [m.subject for m in mailbox.messages(directory, "demo")] == ["[FIRING:1] HostCpuSaturated"]
    assert [m.subject for m in mailbox.messages(directory, "bars")] == ["[FIRING:1] BackupFailed (bars)"]
    assert mailbox.messages(directory, "other") == []


@pytest.mark.parametrize("login", [None, (mailbox.LOGIN, "guessed"), ("root", "s3cret-monitoring-password")])
def test_refuses_a_local_account_without_the_password(box, login):
    """Anyone on the host reaches the port: a forged alert must not land in the mailbox."""
    directory, port = box
    with smtplib.SMTP("127.0.0.1", port) as client:
        if login:
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.login(*login)
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.send_message(_mail(mailbox.address("demo"), "[FIRING:1] forged"))
    assert refused.value.smtp_code == 530
    assert mailbox.messages(directory, "demo") == []


def test_keeps_only_the_newest_and_refuses_a_huge_message(box, monkeypatch):
    directory, port = box
    monkeypatch.setattr(mailbox, "KEEP", 3)
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.login(mailbox.LOGIN, "s3cret-monitoring-password")
        for n in range(5):
            client.send_message(_mail(mailbox.address("demo"), f"alert {n}"))
        with pytest.raises(smtplib.SMTPException):
            client.send_message(_mail(mailbox.address("demo"), "huge", "x" * (mailbox.MAX_BYTES + 10)))
    assert sorted(m.subject for m in mailbox.messages(directory, "demo")) == ["alert 2", "alert 3", "alert 4"]
