"""The pure parts of the guards that run inside Superset: which ids a bulk request names, which
charts a dashboard layout names, which URLs are web URLs, which requests come from another site,
which error answers carry raw SQL."""

import json

import pytest

from setpoint.runtime.local.superset_side.identity_guard import cross_site
from setpoint.runtime.local.superset_side.log_hygiene import has_raw_sql
from setpoint.runtime.local.superset_side.ownership_guard import chart_ids, is_web_url, rison_ids


def test_a_bulk_requests_ids_and_names_are_read_from_its_rison_list():
    assert rison_ids("!(3,5)") == ["3", "5"]
    assert rison_ids("!('finance','a,b')") == ["finance", "a,b"]
    assert rison_ids("(page:0)") == [] and rison_ids(None) == []


def test_every_chart_a_layout_names_is_found_in_position_json_and_in_a_copys_metadata():
    layout = {"CHART-1": {"type": "CHART", "meta": {"chartId": 7}}, "ROW-1": {"type": "ROW", "meta": {}},
              "CHART-2": {"type": "CHART", "meta": {"chartId": "9"}}, "DASHBOARD_VERSION_KEY": "v2"}
    assert chart_ids({"position_json": json.dumps(layout)}) == {7, 9}
    assert chart_ids({"json_metadata": json.dumps({"positions": layout})}) == {7, 9}
    assert chart_ids({"position_json": "not json", "json_metadata": "{}"}) == set()


@pytest.mark.parametrize("url, allowed", [
    ("https://example.com/x", True), ("http://example.com", True), ("/explore/?datasource=1", True),
    ("", True), (None, True), ("javascript:alert(1)", False), (" JavaScript:alert(1)", False),
    ("data:text/html,<script>", False), ("vbscript:x", False), ("ftp://example.com", False), (5, False)])
def test_url_fields_take_only_web_urls(url, allowed):
    assert is_web_url(url) is allowed


@pytest.mark.parametrize("headers, expected", [
    ({"Sec-Fetch-Site": "cross-site"}, True), ({"Sec-Fetch-Site": "same-origin"}, False),
    ({"Origin": "https://evil.example"}, True), ({"Origin": "https://demo.localhost"}, False),
    ({"Origin": "null"}, True), ({}, False)])
def test_a_request_from_another_site_is_recognised(headers, expected):
    assert cross_site(headers, "demo.localhost") is expected


def test_raw_sqlalchemy_errors_are_recognised_and_plain_messages_are_not():
    assert has_raw_sql('(psycopg2.errors.ForeignKeyViolation) update or delete on table "ab_user" [SQL: DELETE FROM ab_user]')
    assert has_raw_sql("(Background on this error at: https://sqlalche.me/e/14/gkpj)")
    assert not has_raw_sql("Tag could not be deleted.")
