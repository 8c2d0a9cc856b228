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
