"""Alerts and reports by e-mail: what Setpoint adds. Runs inside Superset.

Copied beside superset_config.py, which installs it when the spec names no mail server (smtp:).
Superset would then accept an e-mail report and fail each time it runs (its default server is
localhost:25, with the published password "superset"): an alert or report with an e-mail
recipient is refused when it is saved, with what to configure. Slack recipients stay possible.
Stdlib only at import.
"""

from __future__ import annotations

REPORTS_API = "/api/v1/report"


def wants_email(body: dict) -> bool:
    """Whether an alert or report, as the API receives it, sends e-mail."""
    return any(isinstance(r, dict) and r.get("type") == "Email" for r in body.get("recipients") or [])


def refuse_email_without_server(app, remedy: str) -> None:
    from flask import jsonify, request

    @app.before_request
    def _refuse():
        if request.method in ("POST", "PUT") and request.path.startswith(REPORTS_API):
            body = request.get_json(silent=True)
            if isinstance(body, dict) and wants_email(body):
                return jsonify({"message": f"This instance sends no e-mail: {remedy}"}), 422
        return None
