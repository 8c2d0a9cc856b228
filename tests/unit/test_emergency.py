"""Emergency access: what a grant refuses before it touches the instance."""

from datetime import timedelta

import pytest

from setpoint.errors import InputError
from setpoint.operations import emergency
from tests.unit.test_render import context


@pytest.mark.parametrize("ttl, hint", [(timedelta(seconds=10), "give a --ttl of at least 30s"),
                                       (timedelta(hours=9), "give a shorter --ttl, or raise runbook.emergency_access_max_h")])
def test_a_ttl_out_of_bounds_is_refused_with_the_way_that_fixes_it(ttl, hint):
    with pytest.raises(InputError) as refused:
        emergency.grant(context(), ttl, "IdP down")
    assert refused.value.message == "emergency access lasts between 30s and 4h"
    assert refused.value.hint.startswith(hint)


def test_only_the_names_grant_gives_are_ended_by_up():
    import re

    assert re.match(emergency.GENERATED_NAME, "emergency-20261203-152336")
    for name in ("emergency-admin", "emergency-20261203-152336x", "my-emergency-20261203-152336"):
        assert not re.match(emergency.GENERATED_NAME, name), name


def test_up_keeps_only_the_admins_whose_grant_is_current():
    """With no current grant the statement excludes no name: `NOT IN (NULL)` would have matched no
    row, and left every ended admin a restore brought back active (seen on demo)."""
    from datetime import datetime, timezone

    at = datetime(2026, 12, 3, 16, 0, tzinfo=timezone.utc)
    assert "NOT IN" not in emergency.deactivate_ended_sql([], at)
    grants = [{"username": "emergency-20261203-150000", "expires_at": "2026-12-03T17:00:00+00:00"},
              {"username": "emergency-20261203-140000", "expires_at": "2026-12-03T15:00:00+00:00"}]  # expired
    sql = emergency.deactivate_ended_sql(grants, at)
    assert sql.endswith("AND username NOT IN ('emergency-20261203-150000') RETURNING username"), sql
