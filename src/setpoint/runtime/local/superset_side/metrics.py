"""Superset's STATS_LOGGER as Prometheus metrics, summed over every process of the instance.

Copied beside superset_config.py, which installs it. prometheus_client runs in multiprocess
mode: supervisord gives every Superset process (gunicorn's workers, Celery's pool) the same
PROMETHEUS_MULTIPROC_DIR, each process writes its samples there, and the web process serves their
sum at /setpoint/metrics for the host's Prometheus. That path answers only requests made straight
to gunicorn on loopback with the host's monitoring password: Caddy answers 404 for it, a request
that came through Caddy gets 404 here too, and so does one without the password.

Superset reports events (`incr`: API calls by endpoint and outcome, cache hits and misses, SQL
Lab and report runs) and durations in milliseconds (`timing`); they become
`superset_events_total{event}` and `superset_duration_seconds{event}`. Every answer gunicorn
gives becomes `superset_http_responses_total{status}` (2xx to 5xx), health checks, metrics and
static files aside: Superset counts an API call's error only when the API itself fails, and a
request that fails before it (its session in a Redis that is down) would go unseen. Every Celery task's
outcome becomes `superset_celery_tasks_total{task,outcome}`: Superset reports none, and a worker
whose asynchronous chart queries or reports fail is otherwise seen only in its log. Every image
the worker's browser renders (a report's, a thumbnail) becomes `superset_screenshots_total{outcome}`
and `superset_screenshot_seconds`: Superset's thumbnail task turns a failed render into a log line.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess
from superset.stats_logger import BaseStatsLogger

PATH = "/setpoint/metrics"
EVENTS = Counter("superset_events", "Superset's events (STATS_LOGGER incr), by key.", ["event"])
DURATIONS = Histogram("superset_duration_seconds", "Superset's timings (STATS_LOGGER timing), by key.", ["event"],
                      buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
LEVELS = Gauge("superset_gauge", "Superset's gauges (STATS_LOGGER gauge, decr), by key.", ["event"],
               multiprocess_mode="mostrecent")

TASKS = Counter("superset_celery_tasks", "Celery tasks the worker ran, by task and outcome (success, failure, retry).",
                ["task", "outcome"])

SCREENSHOTS = Counter("superset_screenshots", "Images the worker's browser rendered (reports, thumbnails), by outcome "
                      "(rendered, failed).", ["outcome"])
SCREENSHOT_SECONDS = Histogram("superset_screenshot_seconds", "Time the worker's browser took for one image.",
                               buckets=(2.5, 5, 10, 15, 20, 30, 60, 120, 300))

RESPONSES = Counter("superset_http_responses", "Answers of the instance's web server by status class, health checks, "
                    "metrics and static files aside.", ["status"])
NOT_COUNTED = ("/health", "/ping", PATH, "/static/")
WATCHED_TASKS = ("load_chart_data_into_cache", "load_explore_json_into_cache", "sql_lab.get_sql_results", "reports.execute")


class PrometheusStatsLogger(BaseStatsLogger):
    def incr(self, key: str) -> None:
        EVENTS.labels(key).inc()

    def decr(self, key: str) -> None:
        LEVELS.labels(key).dec()

    def timing(self, key: str, value: float) -> None:
        DURATIONS.labels(key).observe(max(value, 0) / 1000)  # Superset times in milliseconds

    def gauge(self, key: str, value: float) -> None:
        LEVELS.labels(key).set(value)


def count_responses(app) -> None:
    """Count the status class of every answer of `app` (its outermost WSGI layer, so that no
    failure inside escapes the count)."""
    inner = app.wsgi_app
    # Every series exists from the start at 0: Prometheus's rate() takes a series' first sample as
    # its baseline, so 40 errors that created the 5xx series would count as no increase at all.
    for status in ("2xx", "3xx", "4xx", "5xx"):
        RESPONSES.labels(status)

    def counted(environ, start_response):
        if environ.get("PATH_INFO", "").startswith(NOT_COUNTED):
            return inner(environ, start_response)

        def start(status, headers, exc_info=None):
            RESPONSES.labels(f"{status[:1]}xx").inc()
            return start_response(status, headers, exc_info)

        try:
            return inner(environ, start)
        except Exception:
            RESPONSES.labels("5xx").inc()  # gunicorn answers 500 for what escapes the app
            raise

    app.wsgi_app = counted


def count_celery_tasks() -> None:
    """Count each Celery task's outcome as it ends, in the process that ran it."""
    from celery import signals

    for task in WATCHED_TASKS:  # at 0 from the start (see count_responses)
        for outcome in ("success", "failure"):
            TASKS.labels(task, outcome)

    def ended(sender=None, state=None, **_) -> None:
        TASKS.labels(getattr(sender, "name", None) or "unknown", (state or "unknown").lower()).inc()

    signals.task_postrun.connect(ended, weak=False)


def count_screenshots() -> None:
    """Count every image Superset's Selenium webdriver renders, with its time (in the process
    that renders it: the worker's)."""
    from superset.utils.webdriver import WebDriverSelenium

    for outcome in ("rendered", "failed"):  # at 0 from the start (see count_responses)
        SCREENSHOTS.labels(outcome)
    render = WebDriverSelenium.get_screenshot

    def counted(self, *args, **kwargs):
        started = time.monotonic()
        image = None
        try:
            image = render(self, *args, **kwargs)
            return image
        finally:
            SCREENSHOT_SECONDS.observe(time.monotonic() - started)
            SCREENSHOTS.labels("rendered" if image else "failed").inc()

    WebDriverSelenium.get_screenshot = counted


def blueprint(is_direct_local_request, scrape_digest):
    """The Flask blueprint serving the instance's metrics (superset_config.BLUEPRINTS) to the
    requests `is_direct_local_request` says came straight from this host, not through Caddy, and
    whose basic-auth password has the SHA-256 `scrape_digest` (the host's monitoring password,
    which only Prometheus's account and root read). Any other request gets 404, as if there were
    no such path: every local account reaches gunicorn on loopback."""
    from flask import Blueprint, Response, abort, request

    metrics = Blueprint("setpoint_metrics", __name__)

    @metrics.route(PATH)
    def serve():
        given = request.authorization.password if request.authorization else None
        if not (scrape_digest and given and is_direct_local_request()
                and hmac.compare_digest(hashlib.sha256(given.encode()).hexdigest(), scrape_digest)):
            abort(404)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

    return metrics
