"""Without a mail server, an alert or report that e-mails is refused when saved: which bodies ask for e-mail."""

from setpoint.runtime.local.superset_side.reports import wants_email


def test_only_an_email_recipient_needs_the_mail_server():
    assert wants_email({"recipients": [{"type": "Email", "recipient_config_json": {"target": "a@example.com"}}]})
    assert wants_email({"recipients": [{"type": "Slack", "recipient_config_json": {"target": "#x"}},
                                       {"type": "Email", "recipient_config_json": {"target": "a@example.com"}}]})
    assert not wants_email({"recipients": [{"type": "Slack", "recipient_config_json": {"target": "#x"}}]})
    assert not wants_email({"name": "renamed only"})  # a PUT that leaves the recipients alone
    assert not wants_email({"recipients": None}) and not wants_email({"recipients": ["Email"]})
