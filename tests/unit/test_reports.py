"""Without a mail server, an alert or report that e-mails is refused when saved: which bodies ask for e-mail."""

from setpoint.runtime.local.superset_side.reports import wants_email


def test_only_an_email_recipient_needs_the_mail_server():
    assert wants_email({"recipients": [{"type": "Email", "recipient_config_json": {"target": "a@example.com"}}]})
    assert wants_email({"recipients": [{"type": "Slack", "recipient_config_json": {"target": "#x"}},
                                       {"type": "Email", "recipient_config_json": {"target": "a@example.com"}}]})
    assert not wants_email({"recipients": [{"type": "Slack", "recipient_config_json": {"target": "#x"}}]})
    assert not wants_email({"name": "renamed only"})  # a PUT that leaves the recipients alone
    assert not wants_email({"recipients": None}) and not wants_email({"recipients": ["Email"]})


def test_only_the_renderers_direct_requests_run_their_queries_in_the_web_process():
    from flask import Flask

    from setpoint.runtime.local.superset_side.reports import feature_enabled

    app = Flask(__name__)
    assert feature_enabled("GLOBAL_ASYNC_QUERIES", True)  # no request: the spec's flag
    with app.test_request_context("/api/v1/chart/data", environ_base={"REMOTE_ADDR": "127.0.0.1"}):
        assert not feature_enabled("GLOBAL_ASYNC_QUERIES", True)  # the worker's browser, straight to gunicorn
        assert feature_enabled("THUMBNAILS", True) and not feature_enabled("ALERT_REPORTS", False)
    # Through Caddy (which always adds X-Forwarded-For), or a forged header from afar: asynchronous.
    with app.test_request_context("/api/v1/chart/data", environ_base={"REMOTE_ADDR": "127.0.0.1"},
                                  headers={"X-Forwarded-For": "203.0.113.9"}):
        assert feature_enabled("GLOBAL_ASYNC_QUERIES", True)
    with app.test_request_context("/api/v1/chart/data", environ_base={"REMOTE_ADDR": "10.0.0.5"}):
        assert feature_enabled("GLOBAL_ASYNC_QUERIES", True)


def test_a_browser_a_render_left_running_is_ended_before_the_turn_passes(tmp_path):
    """A leftover Chromium and its driver (here `sleep` under their names, as a child and as an
    orphan) are killed and gone when end_browsers returns; another program of the account stays."""
    import os
    import subprocess
    import time

    from setpoint.runtime.local.superset_side.reports import browser_processes, end_browsers

    for name in ("chromium", "chromedriver"):
        (tmp_path / name).symlink_to("/bin/sleep")
    driver = subprocess.Popen([tmp_path / "chromedriver", "300"])
    # An orphan, as a browser whose driver was killed: its parent (the shell) has exited.
    subprocess.run(f"{tmp_path / 'chromium'} 300 & echo", shell=True, check=True)
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        # The orphan may still be the shell's fork, not yet the program, when the shell returns.
        deadline = time.monotonic() + 10
        while len(browser_processes(os.getuid())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert driver.pid in browser_processes(os.getuid()) and len(browser_processes(os.getuid())) >= 2
        assert end_browsers() >= 2
        assert browser_processes(os.getuid()) == [] and driver.poll() is not None  # reaped too
        assert bystander.poll() is None
    finally:
        bystander.kill()
        driver.kill()


def test_the_turn_of_a_process_that_is_gone_passes_at_once():
    """A killed render never releases its turn: a waiter takes it when the pid in its token is gone."""
    import os
    import subprocess

    from setpoint.runtime.local.superset_side.reports import holder_is_gone

    dead = subprocess.Popen(["true"])
    dead.wait()
    assert holder_is_gone(f"{dead.pid}:0123abcd".encode())
    assert not holder_is_gone(f"{os.getpid()}:0123abcd".encode())  # alive: wait
    assert not holder_is_gone(b"6f1c2e9a41b64b7f")  # a token of another form: wait for its expiry
