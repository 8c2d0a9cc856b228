"""Which SECRET_KEY a restored point in time was encrypted with."""

from datetime import datetime, timezone
from types import SimpleNamespace

from setpoint.backup.service import update_record
from setpoint.home import Home
from setpoint.operations.rotation import RECORD, key_at
from setpoint.secret import SecretStore


def test_a_moment_before_the_last_rotation_gets_the_previous_key(tmp_path):
    paths = Home(tmp_path).instance("demo")
    ctx = SimpleNamespace(paths=paths)
    SecretStore(paths.secrets_file).update({"secret_key": "NEW", "previous_secret_key": "OLD"})
    before, after = datetime(2026, 11, 30, 9, tzinfo=timezone.utc), datetime(2026, 11, 30, 11, tzinfo=timezone.utc)
    assert key_at(ctx, before) is None  # never rotated: the current key fits every moment
    update_record(paths, **{RECORD: "2026-11-30T10:00:00+00:00"})
    assert key_at(ctx, before) == "OLD"
    assert key_at(ctx, after) is None
    assert key_at(ctx, None) is None  # the latest point is after the rotation
