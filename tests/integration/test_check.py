"""`setpoint check` against real targets: a Setpoint instance, and a stock Superset."""

import json
import time
from xml.etree import ElementTree as ET

import httpx

from setpoint.checklist import Target, run_scorecard
from setpoint.checklist.evidence import Evidence, forge_session_cookie
from setpoint.runtime.local import lifecycle
from setpoint.runtime.local.superset_side import facts as facts_side
from tests.conftest import STOCK_KEY, report_figure, run_cli

# What a fresh Setpoint instance must pass today, and what waits for later issues.
MANAGED_PASS = {1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 18, 19, 20, 22, 24, 25}
MANAGED_FAIL = {4, 15, 21, 23}  # 20: alerts reach the host's mailbox


def statuses(card):
    return {r.check.id: r.status.value for r in card.results}


def test_managed_instance_scores_what_it_guarantees(home, instance):
    card = run_scorecard(lifecycle.managed_target(home, "alpha"), name="alpha")
    got = statuses(card)
    assert {i for i, s in got.items() if s == "PASS"} == MANAGED_PASS, card.to_dict()
    assert {i for i, s in got.items() if s == "FAIL"} == MANAGED_FAIL
    assert card.score == len(MANAGED_PASS) and card.level == "solid production"
    assert card.problems == []
    assert card.seconds < 60  # about 10 s alone; up to 25 s while other workers load both cores


def timed_facts(target: Target) -> tuple[dict, str, float]:
    started = time.monotonic()
    evidence = Evidence(target)
    facts = evidence.facts
    evidence.close()
    return facts, evidence.facts_source, time.monotonic() - started


def test_alphas_facts_come_from_its_web_process_as_the_script_would_give_them(home, instance, monkeypatch):
    target = lifecycle.managed_target(home, "alpha")
    from_web, source, web_s = timed_facts(target)
    assert source == "web"
    monkeypatch.setattr(Evidence, "_facts_from_web", lambda self: None)  # as when alpha's web process is down
    from_script, source, script_s = timed_facts(target)
    assert source == "script"
    assert from_web == from_script
    assert from_web["metadata_db"]["active_users"] >= 1 and from_web["celery"]["workers"] == {
        target.managed.context.celery_worker: target.managed.context.sizing.celery_concurrency}
    report_figure(f"setpoint check's facts of alpha: {web_s:.2f} s from its web process, {script_s:.2f} s from a "
                  f"new Superset process; ratio {script_s / web_s:.1f}")


def test_alphas_facts_answer_setpoint_alone(home, instance, http):
    """Anonymous through Caddy (even holding the token), and any local account straight to gunicorn
    without alpha's token, a wrong one, or through Caddy (a request with Caddy's proxy secret, as
    Caddy forwards it): 404, as if there were no such path."""
    managed = lifecycle.managed_target(home, "alpha").managed
    right = {"Authorization": f"Bearer {facts_side.token(managed.secrets['secret_key'])}"}
    direct = f"http://127.0.0.1:{managed.context.ports.web}{facts_side.PATH}"
    assert http.get(facts_side.PATH, headers=right).status_code == 404
    via_caddy = {**right, "X-Forwarded-For": "203.0.113.9", "X-Setpoint-Proxy": managed.secrets["proxy_secret"]}
    for headers in ({}, {"Authorization": f"Bearer {facts_side.token('another instance-s key')}"},
                    {"Authorization": right["Authorization"][:-1]}, via_caddy):
        answer = httpx.get(direct, headers=headers, timeout=30)
        assert answer.status_code == 404 and "metadata_db" not in answer.text, headers
    assert "metadata_db" in httpx.get(direct, headers=right, timeout=30).json()


def test_forged_cookie_is_refused_by_setpoint_and_caught_on_stock(home, instance, stock_superset):
    managed = Evidence(lifecycle.managed_target(home, "alpha"))
    assert not any(managed.forged_cookies_accepted.values())
    managed.close()
    url, *_ = stock_superset
    stock = Evidence(Target(url=url))
    assert stock.forged_cookies_accepted["docker-compose .env"] is True
    stock.close()


def test_stock_superset_scores_as_poc(stock_superset):
    url, config, metadata_uri, python = stock_superset
    card = run_scorecard(Target(url=url, config_file=config, metadata_uri=metadata_uri, superset_python=python))
    got = statuses(card)
    assert card.score <= 10 and card.level == "POC", card.to_dict()
    # The typical mistakes, each caught by its own point.
    assert got[1] == "FAIL"  # a known default key, written in the config file
    assert got[2] == "FAIL"  # plain HTTP
    assert got[3] == "FAIL"  # admin/admin
    assert got[5] == "FAIL"  # no Secure cookie
    assert got[8] == "FAIL"  # anonymous visitors are told the version (/version, the login page's data)
    assert got[9] == "FAIL"  # NullCache
    assert got[11] == "FAIL"  # SQLite metadata
    assert got[12] == "FAIL"  # no pool options
    assert got[13] == "FAIL"  # no async queries
    # Points the outside cannot see are never passed.
    assert all(got[i] == "UNVERIFIED" for i in range(14, 25))


def test_black_box_only_leaves_config_points_unverified(stock_superset):
    url, *_ = stock_superset
    card = run_scorecard(Target(url=url))
    got = statuses(card)
    assert got[9] == got[11] == got[12] == got[13] == "UNVERIFIED"
    assert got[3] == "FAIL"  # admin/admin still logs in: visible from outside


def test_cli_formats_and_gates(home, instance):
    as_json = run_cli("check", "alpha", "--format", "json", home=home)
    assert as_json.returncode == 0, as_json.stderr
    payload = json.loads(as_json.stdout)
    assert set(payload) == {"instance", "score", "max", "level", "problems", "checks"}
    assert set(payload["checks"][0]) == {"id", "key", "section", "title", "status", "evidence", "remedy"}
    junit = run_cli("check", "alpha", "--format", "junit", home=home)
    suite = ET.fromstring(junit.stdout).find("testsuite")
    assert suite.get("tests") == "25" and suite.get("failures") == str(len(MANAGED_FAIL))
    markdown = run_cli("check", "alpha", "--format", "markdown", home=home)
    assert markdown.stdout.startswith("# Production scorecard: alpha")
    gated = run_cli("check", "alpha", "--fail-under", str(len(MANAGED_PASS) + 1), home=home)
    assert gated.returncode == 1


def test_unreachable_url_is_reported_not_raised(home):
    result = run_cli("check", "--url", "https://127.0.0.1:1/", "--format", "json", home=home)
    assert result.returncode == 3
    payload = json.loads(result.stdout)
    assert payload["score"] <= 1
    assert any("unreachable" in p for p in payload["problems"])
    assert "Traceback" not in result.stderr


def test_config_that_does_not_import_is_reported(home, instance, tmp_path, stock_superset):
    url, _, _, python = stock_superset
    broken = tmp_path / "superset_config.py"
    broken.write_text("import not_a_module_anywhere\n")
    result = run_cli("check", "--url", url, "--config", str(broken), "--superset-python", str(python),
                     "--format", "json", home=home)
    assert result.returncode == 3
    payload = json.loads(result.stdout)
    assert any("could not be loaded" in p and "not_a_module_anywhere" in p for p in payload["problems"])
    assert len(payload["checks"]) == 25


def test_forged_cookie_uses_flask_session_format():
    from itsdangerous import URLSafeTimedSerializer
    import hashlib

    cookie = forge_session_cookie(STOCK_KEY)
    loaded = URLSafeTimedSerializer(STOCK_KEY, salt="cookie-session",
                                    signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha1}).loads(cookie)
    assert loaded["_user_id"] == "1"
