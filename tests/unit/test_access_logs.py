"""`destroy`'s clean-up of an instance's access logs, in Caddy's directory (Caddy's account's)."""

import os

from setpoint.runtime.local.lifecycle import remove_access_logs


def test_the_live_log_is_emptied_in_place_and_rolled_ones_deleted(tmp_path):
    live = tmp_path / "demo.access.log"
    live.write_text("a request\n")
    inode = live.stat().st_ino
    rolled = tmp_path / "demo.access-2026-12-01T10-00-00.000.log"
    rolled.write_text("older\n")
    other = tmp_path / "demo2.access.log"
    other.write_text("another instance\n")
    remove_access_logs(live)
    assert live.stat().st_size == 0 and live.stat().st_ino == inode  # the file Caddy still holds
    assert not rolled.exists() and other.read_text() == "another instance\n"


def test_a_link_planted_as_the_live_log_is_removed_not_followed(tmp_path):
    """As Caddy's account: the live log replaced by a link to a file only root may write."""
    precious = tmp_path / "precious"
    precious.write_text("root's data\n")
    live = tmp_path / "logs" / "demo.access.log"
    live.parent.mkdir()
    os.symlink(precious, live)
    remove_access_logs(live)
    assert precious.read_text() == "root's data\n" and not os.path.lexists(live)
