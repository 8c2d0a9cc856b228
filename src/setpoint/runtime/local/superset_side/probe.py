"""The synthetic check of one chart's data, `GET /setpoint/probe/chart`. Runs inside Superset.

Rendered verbatim beside superset_config.py, whose BLUEPRINTS serve it. The probe points (blackbox
exporters, here and on other hosts) ask it over HTTPS through Caddy, like `/health`, and it answers
`OK` and the row count when the chart named by the spec's `probes.chart` returns rows fresh from
its database, and 503 otherwise: the path a user's dashboard takes, metadata, database guard,
analytics database and all, checked end to end.

It needs no credential, so that a probe point on another host holds none: the answer says only
whether the check passed, never a row, a query or an error's text (those go to the web log). The
query runs as the instance's admin (read-only: a chart's data) at most once per FRESH_S seconds
per process; between two runs, every caller gets the last answer, so no caller can make it query
more often.
"""

from __future__ import annotations

import json
import logging
import threading
import time

PATH = "/setpoint/probe/chart"
FRESH_S = 30

logger = logging.getLogger(__name__)


def blueprint(chart_name: str | None, username: str):
    """The Flask blueprint answering the check (superset_config.BLUEPRINTS); with no chart to
    probe, it answers 404."""
    from flask import Blueprint, Response

    probe = Blueprint("setpoint_probe", __name__)
    lock = threading.Lock()
    last: dict = {"at": None, "answer": (False, "FAIL")}

    @probe.route(PATH)
    def chart():
        if not chart_name:
            return Response("no chart is probed here\n", 404, mimetype="text/plain")
        with lock:
            if last["at"] is None or time.monotonic() - last["at"] >= FRESH_S:
                last["answer"], last["at"] = run(chart_name, username), time.monotonic()
        ok, text = last["answer"]
        return Response(text + "\n", 200 if ok else 503, mimetype="text/plain", headers={"Cache-Control": "no-store"})

    return probe


def run(chart_name: str, username: str) -> tuple[bool, str]:
    """Load the chart's data as Superset's `GET /api/v1/chart/ID/data/` does, bypassing the cache:
    (passed, the answer's text)."""
    from superset import db, security_manager
    from superset.charts.schemas import ChartDataQueryContextSchema
    from superset.commands.chart.data.get_data_command import ChartDataCommand
    from superset.models.slice import Slice
    from superset.utils.core import override_user

    started = time.monotonic()
    try:
        chart = db.session.query(Slice).filter_by(slice_name=chart_name).first()
        if chart is None or not chart.query_context:
            logger.warning("the probed chart %r does not exist or has no saved query", chart_name)
            return False, "FAIL: the probed chart is missing"
        form = {**json.loads(chart.query_context), "force": True, "result_format": "json", "result_type": "full"}
        with override_user(security_manager.find_user(username=username)):
            command = ChartDataCommand(ChartDataQueryContextSchema().load(form))
            command.validate()
            queries = command.run()["queries"]
        if any(query.get("error") for query in queries):
            logger.warning("the probed chart %r failed: %s", chart_name, [q.get("error") for q in queries])
            return False, "FAIL: the chart's query failed"
        rows = sum(int(query.get("rowcount") or 0) for query in queries)
        if not rows:
            return False, "FAIL: the chart returned no row"
        return True, f"OK {rows} rows in {time.monotonic() - started:.2f} s"
    except Exception:  # noqa: BLE001 - any failure is the check's answer; its detail goes to the log
        logger.exception("the synthetic check of chart %r failed", chart_name)
        return False, "FAIL: the chart's query failed"
    finally:
        db.session.rollback()
