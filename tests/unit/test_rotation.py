"""Which SECRET_KEY a restored point in time was encrypted with."""

from datetime import datetime, timezone
from types import SimpleNamespace

from setpoint.backup.service import update_record
from setpoint.home import Home
from setpoint.operations.rotation import HISTORY, RECORD, key_at, retired_key_name
from setpoint.secret import SecretStore


def at(hour: int) -> datetime:
    return datetime(2026, 11, 30, hour, tzinfo=timezone.utc)


def test_a_moment_before_the_last_rotation_gets_the_previous_key(tmp_path):
    """An instance rotated once before the history was kept (its record names the last rotation only)."""
    paths = Home(tmp_path).instance("demo")
    ctx = SimpleNamespace(paths=paths)
    SecretStore(paths.secrets_file).update({"secret_key": "NEW", "previous_secret_key": "OLD"})
    assert key_at(ctx, at(9)) is None  # never rotated: the current key fits every moment
    update_record(paths, **{RECORD: at(10).isoformat()})
    assert key_at(ctx, at(9)) == "OLD"
    assert key_at(ctx, at(11)) is None
    assert key_at(ctx, None) is None  # the latest point is after the rotation


def test_each_moment_gets_the_key_of_its_time_however_many_rotations_ago(tmp_path):
    """K0 until 10:00, K1 until 12:00, K2 until 14:00, K3 since."""
    paths = Home(tmp_path).instance("demo")
    ctx = SimpleNamespace(paths=paths)
    SecretStore(paths.secrets_file).update({"secret_key": "K3", "previous_secret_key": "K2", retired_key_name(1): "K0",
                                            retired_key_name(2): "K1", retired_key_name(3): "K2"})
    update_record(paths, **{RECORD: at(14).isoformat(), HISTORY: [at(h).isoformat() for h in (10, 12, 14)]})
    assert [key_at(ctx, at(h)) for h in (9, 10, 11, 13, 14, 15)] == ["K0", "K1", "K1", "K2", None, None]
