"""What makes a restore drill fail: the judgement on what the restored metadata holds."""

from setpoint.backup.drill import drill_problems

LIVE = {"dashboards": "2", "charts": "6", "datasets": "1", "users": "1", "saved_queries": "0", "schema_version": "4b2a"}
OPENED = {"revision": "4b2a", "revision_is_head": True, "dashboards": 2, "charts": 6, "datasets": 1, "users": 1,
          "saved_queries": 0, "passwords": 1, "passwords_decrypted": 1}


def test_a_faithful_restore_has_no_problem():
    assert drill_problems(dict(LIVE), LIVE, OPENED, "6.1.0") == []


def test_missing_objects_are_named():
    restored = {**LIVE, "dashboards": "1"}
    problems = drill_problems(restored, LIVE, {**OPENED, "dashboards": 1}, "6.1.0")
    assert problems == ["the restored metadata differs from the live one: dashboards 1 vs 2"]


def test_a_schema_this_version_cannot_run_on_fails():
    problems = drill_problems(dict(LIVE), LIVE, {**OPENED, "revision_is_head": False}, "6.1.0")
    assert problems == ["its schema revision 4b2a is not one Superset 6.1.0 runs on"]


def test_passwords_the_key_cannot_open_fail():
    problems = drill_problems(dict(LIVE), LIVE, {**OPENED, "passwords": 3, "passwords_decrypted": 1}, "6.1.0")
    assert problems == ["2 of 3 database passwords do not decrypt with the instance's SECRET_KEY"]


def test_models_that_see_other_numbers_fail():
    problems = drill_problems(dict(LIVE), LIVE, {**OPENED, "charts": 5}, "6.1.0")
    assert problems == ["Superset's models count other numbers than the tables: charts 5 vs 6"]
