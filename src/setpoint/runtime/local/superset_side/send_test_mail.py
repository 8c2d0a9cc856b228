"""Runs inside an instance's Superset virtualenv: send one e-mail to SETPOINT_MAIL_TO through
Superset's own mail settings, the ones its alerts and reports use (`setpoint report-test`)."""

import os

from superset.app import create_app

app = create_app()
with app.app_context():
    from superset.utils.core import send_email_smtp

    name = os.environ["SETPOINT_INSTANCE"]
    send_email_smtp(
        os.environ["SETPOINT_MAIL_TO"],
        f"[{name}] Setpoint: this instance's alerts and reports reach you",
        f"<p>Superset <b>{name}</b> sent this e-mail through its mail server, as its alerts and reports do.</p>",
        app.config,
    )
    print("sent")
