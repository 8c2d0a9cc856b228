"""Versions and upgrades, the pure parts: ordering, the advisories' ranges, the staging copy's
name, the maintenance page, and the upgrade's refusals before anything changes."""

import pytest

from setpoint.operations import advisories, upgrade
from setpoint.render import render_site
from setpoint.spec import supported_superset_versions, version_key
from tests.unit.test_render import context


def test_versions_sort_as_numbers():
    assert version_key("10.0.0") > version_key("9.1.0") > version_key("6.1.0")
    supported = supported_superset_versions()
    assert supported == sorted(supported, key=version_key) and supported[-1] == "6.1.0" and "6.0.0" in supported


@pytest.mark.parametrize("affected, version, expected", [
    ("< 6.0.0", "5.0.0", True), ("< 6.0.0", "6.0.0", False), (">= 5.0.0, < 5.0.1", "5.0.0", True),
    (">= 5.0.0, < 5.0.1", "4.1.4", False), (">= 3.0.0, < 3.0.2 || < 2.1.3", "2.0.0", True),
    (">= 3.0.0, < 3.0.2 || < 2.1.3", "3.0.2", False)])
def test_an_advisory_affects_the_versions_in_its_ranges(affected, version, expected):
    assert advisories.affects({"affected": affected}, version) is expected


def test_every_advisory_is_complete_and_the_supported_versions_have_none_unfixed():
    for advisory in advisories.advisories():
        assert advisory["id"].startswith("CVE-") and advisory["impact"] and advisory["source"].startswith("https://")
        assert not advisories.affects(advisory, advisory["fixed"]), advisory["id"]
    assert [a["id"] for a in advisories.of_version("5.0.0")][:1] == ["CVE-2026-23980"]
    assert advisories.of_version(supported_superset_versions()[-1]) == []


def test_the_staging_copy_has_a_valid_name():
    from setpoint.spec import parse_spec

    long = "a" * 30 + "-b"
    assert upgrade.staging_name("demo") == "demo-staging"
    assert parse_spec({"name": upgrade.staging_name(long)}).name.endswith("-staging")


def test_the_maintenance_page_answers_503_without_reaching_superset():
    ctx = context()
    site = render_site(ctx, maintenance="being upgraded to Superset 6.1.0")
    assert "503" in site and "Retry-After 60" in site and "being upgraded to Superset 6.1.0" in site
    assert "reverse_proxy" not in site
    assert "reverse_proxy 127.0.0.1:20001" in render_site(ctx)
