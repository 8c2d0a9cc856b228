"""Root acting where an instance's account can plant links: each attack made in a scratch home,
as that account would (links to the host's files, a directory swapped for a link, a FIFO, an
export whose file names climb out of the repository, a spec that does not parse)."""

import errno
import io
import logging
import os
import pwd
import stat
import struct
import zipfile
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from setpoint.backup import export, repositories, schedule, service
from setpoint.errors import SetpointError
from setpoint.home import Home, InstancePaths, files_beneath, open_beneath, own_directory
from setpoint.services.superset import SupersetCommands


@pytest.fixture
def tree(tmp_path):
    """A home with an instance's audit directory, and a file outside it the links point at."""
    home = tmp_path / "home"
    audit = home / "instances" / "alpha" / "data" / "superset" / "audit"
    audit.mkdir(parents=True)
    (audit / "audit.log").write_text("record\n")
    outside = tmp_path / "host-file"
    outside.write_text("the host's own\n")
    return home, audit, outside


def test_a_link_anywhere_on_the_way_is_met_not_followed(tree):
    home, audit, outside = tree
    (audit / "planted").symlink_to(outside)
    with pytest.raises(OSError) as met:
        open_beneath(home, audit / "planted", os.O_RDWR)
    assert met.value.errno == errno.ELOOP
    # The directory itself swapped for a link to a directory holding a file of the same name.
    (outside.parent / "elsewhere").mkdir()
    (outside.parent / "elsewhere" / "audit.log").write_text("the host's own\n")
    audit.rename(audit.with_name("moved"))
    audit.symlink_to(outside.parent / "elsewhere")
    with pytest.raises(OSError) as met:
        open_beneath(home, audit / "audit.log", os.O_WRONLY | os.O_APPEND)
    assert met.value.errno in (errno.ELOOP, errno.ENOTDIR)
    assert (outside.parent / "elsewhere" / "audit.log").read_text() == "the host's own\n"


def test_a_planted_link_is_replaced_when_asked_and_its_target_untouched(tree):
    home, audit, outside = tree
    (audit / "audit.log").unlink()
    (audit / "audit.log").symlink_to(outside)
    fd = open_beneath(home, audit / "audit.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, replace_link=True)
    os.write(fd, b"setpoint's record\n")
    os.close(fd)
    assert not (audit / "audit.log").is_symlink() and (audit / "audit.log").read_text() == "setpoint's record\n"
    assert outside.read_text() == "the host's own\n"
    # A dangling link would have had root create the file it names.
    (audit / "audit.log").unlink()
    (audit / "audit.log").symlink_to(outside.parent / "created-by-root")
    os.close(open_beneath(home, audit / "audit.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, replace_link=True))
    assert not (outside.parent / "created-by-root").exists()


def test_only_regular_files_are_opened_and_listed(tree):
    home, audit, outside = tree
    os.mkfifo(audit / "fifo")  # opening it for reading would block root's command
    with pytest.raises(OSError):
        open_beneath(home, audit / "fifo")
    (audit / "link").symlink_to(outside)
    (audit / "linked-dir").symlink_to(outside.parent)
    (audit / "rotated").mkdir()
    (audit / "rotated" / "audit.log.1").write_text("older\n")
    assert files_beneath(home, audit) == [audit / "audit.log", audit / "rotated" / "audit.log.1"]
    assert files_beneath(home, audit / "link") == [] and files_beneath(home, home / "missing") == []


def bundle(*names: str) -> bytes:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        for name in names:
            archive.writestr(name, "uuid: 1234\n")
    return data.getvalue()


def test_an_export_whose_names_climb_out_is_refused_before_anything_is_written(tmp_path):
    repo = tmp_path / "export"
    (repo / "dashboards").mkdir(parents=True)
    (repo / "dashboards" / "Sales.yaml").write_text("kept\n")
    for climbing in ("export/dashboards/../../escaped.yaml", "export/charts/a/../../../escaped.yaml",
                     "/dashboards/x.yaml"):
        with pytest.raises(SetpointError) as refused:
            export.unpack(bundle("export/dashboards/Fine_1.yaml", climbing), repo)
        assert "outside the content's folders" in refused.value.message
        assert not (tmp_path / "escaped.yaml").exists() and not (repo.parent / "escaped.yaml").exists()
        assert (repo / "dashboards" / "Sales.yaml").read_text() == "kept\n"  # nothing was written
    export.unpack(bundle("export/dashboards/Fine_1.yaml", "export/metadata.yaml"), repo)
    assert sorted(p.name for p in (repo / "dashboards").iterdir()) == ["Fine.yaml"]


def test_one_instances_unreadable_files_stop_only_its_own_jobs(tmp_path, caplog):
    """A spec or record that does not parse (a hand edit, a full disk) must not stop the
    scheduler, which keeps every other instance's backups."""
    home = Home(tmp_path)
    paths = home.instance("bad")
    paths.root.mkdir(parents=True)
    paths.write_state({"desired": "up"})
    paths.spec_file.write_text("name: [unclosed\n")
    paths.records_file.write_text("{not json")
    home.programs_conf("bad").parent.mkdir(parents=True, exist_ok=True)
    home.programs_conf("bad").write_text("")
    with caplog.at_level(logging.ERROR, logger="setpoint.schedule"):
        schedule.tick(home, datetime.now(timezone.utc), {})
        schedule.expire_emergency_access(home, datetime.now(timezone.utc))
    assert "bad: its jobs are skipped" in caplog.text and "setpoint up bad" in caplog.text


def test_a_file_written_into_the_backup_repository_replaces_a_planted_link_and_never_follows_one(tmp_path):
    """The local repository (backup/repo) is the data account's: root writes the runbook, the DR plan
    and the sealed secrets there, and must neither write through a link planted as the file nor
    into a directory swapped for a link."""
    paths = Home(tmp_path / "home").instance("alpha")
    repo = paths.backup / "repo"
    repo.mkdir(parents=True)
    outside = tmp_path / "host-file"
    outside.write_text("the host's own\n")
    repositories.put("docs/alpha/runbook.md", b"first\n", repo, "root", None, {})
    assert (repo / "docs" / "alpha" / "runbook.md").read_bytes() == b"first\n"
    assert (repo / "docs" / "alpha" / "runbook.md").stat().st_mode & 0o777 == 0o600
    (repo / "docs" / "alpha" / "runbook.md").unlink()
    (repo / "docs" / "alpha" / "runbook.md").symlink_to(outside)
    repositories.put("docs/alpha/runbook.md", b"second\n", repo, "root", None, {})
    assert not (repo / "docs" / "alpha" / "runbook.md").is_symlink()
    assert outside.read_text() == "the host's own\n"
    assert repositories.read_all("docs/alpha/runbook.md", repo, None, {}) == {str(repo / "docs/alpha/runbook.md"): b"second\n"}
    (repo / "docs" / "alpha").rename(repo / "docs" / "moved")
    (repo / "docs" / "alpha").symlink_to(tmp_path)
    with pytest.raises(SetpointError, match="could not be written"):
        repositories.put("docs/alpha/host-file", b"third\n", repo, "root", None, {})
    assert outside.read_text() == "the host's own\n"
    assert repositories.read_all("docs/alpha/host-file", repo, None, {}) == {str(repo / "docs/alpha/host-file"): None}


def test_the_former_backup_record_moves_beside_the_spec_and_a_planted_link_is_never_read(tmp_path):
    paths = Home(tmp_path / "home").instance("alpha")
    paths.backup.mkdir(parents=True)
    (paths.backup / "state.json").write_text('{"last_backup": {"at": "2026-12-01T00:00:00+00:00", "ok": true}}')
    assert service.move_record(paths) and not (paths.backup / "state.json").exists()
    assert service.read_record(paths)["last_backup"]["ok"] is True
    assert not service.move_record(paths)
    planted = tmp_path / "planted.json"
    planted.write_text('{"last_export": {"target": "/etc"}}')
    paths.records_file.unlink()
    (paths.backup / "state.json").symlink_to(planted)
    assert service.move_record(paths) and not (paths.backup / "state.json").is_symlink()
    assert service.read_record(paths) == {}


def test_until_it_moves_an_earlier_instances_record_is_read_where_it_was_and_never_through_a_link(tmp_path):
    """The host's scheduler reads an instance that `up` has not moved yet (its directory still its
    data account's) where the earlier Setpoint kept the record, so that it sees no job as due."""
    paths = Home(tmp_path / "home").instance("alpha")
    paths.backup.mkdir(parents=True)
    (paths.backup / "state.json").write_text('{"last_backup": {"ok": true}}')
    assert service.read_record(paths) == {}  # root's directory: only records.json counts
    os.chown(paths.root, 65534, 65534)  # an earlier Setpoint's layout: the data account's
    assert service.read_record(paths) == {"last_backup": {"ok": True}}
    (paths.backup / "state.json").unlink()
    (paths.backup / "state.json").symlink_to(tmp_path / "elsewhere.json")
    (tmp_path / "elsewhere.json").write_text('{"last_export": {"target": "/etc"}}')
    assert service.read_record(paths) == {}


def test_the_workers_ready_file_is_read_neither_through_a_link_nor_from_a_fifo(tmp_path):
    """`up` and the host's boot wait for the Celery worker's ready file, in the Superset account's
    home: a FIFO there would have kept root's read waiting for a writer, and a link led it
    to another file."""
    paths = InstancePaths(tmp_path / "home" / "instances" / "alpha")
    paths.worker_ready_file.parent.mkdir(parents=True)
    service = SupersetCommands(SimpleNamespace(paths=paths))
    paths.worker_ready_file.write_text("42\n")
    assert service.announced(42) and not service.announced(43)
    outside = tmp_path / "host-file"
    outside.write_text("43\n")
    paths.worker_ready_file.unlink()
    paths.worker_ready_file.symlink_to(outside)
    assert not service.announced(43)
    paths.worker_ready_file.unlink()
    os.mkfifo(paths.worker_ready_file)
    assert not service.announced(43)  # at once: a FIFO is never opened for reading


def test_root_rotates_the_audit_file_past_its_size_and_writers_carry_on(tmp_path, monkeypatch):
    """Superset's processes can no longer rename in the root-owned audit/: root's scheduler
    rotates, keeping the file's owner and mode, and a record written meanwhile is not lost."""
    from setpoint.observability import logstore
    from setpoint.runtime.local.superset_side.audit import AuditTrail

    paths = InstancePaths(tmp_path / "home" / "instances" / "alpha")
    paths.audit_dir.mkdir(parents=True)
    paths.audit_log.write_text("first\n")
    paths.audit_log.chmod(0o620)
    monkeypatch.setattr(logstore, "ROTATE_AUDIT_BYTES", 10)
    assert not logstore.rotate_audit_trail(paths)  # 6 bytes: kept
    trail = AuditTrail(str(paths.audit_log))
    trail.emit("login", user="someone")
    assert logstore.rotate_audit_trail(paths)
    assert '"event":"login"' in (paths.audit_dir / "audit.log.1").read_text()
    assert paths.audit_log.read_text() == "" and (paths.audit_log.stat().st_mode & 0o777) == 0o620
    assert not (paths.audit_dir / ".audit.log.new").exists()
    trail.emit("logout", user="someone")
    assert '"event":"logout"' in paths.audit_log.read_text()
    # A link in place of the file (only root could put one in audit/ now) is never rotated.
    paths.audit_log.unlink()
    paths.audit_log.symlink_to(tmp_path / "host-file")
    assert not logstore.rotate_audit_trail(paths)


def test_a_record_written_between_roots_two_renames_waits_for_the_new_file(tmp_path):
    import threading

    from setpoint.runtime.local.superset_side.audit import AuditTrail

    path = tmp_path / "audit.log"
    threading.Timer(0.05, lambda: path.write_text("")).start()  # the fresh file arrives 50 ms later
    AuditTrail(str(path)).emit("login", user="someone")
    assert '"event":"login"' in path.read_text()


def test_root_gives_a_directory_to_an_account_never_through_a_link(tmp_path):
    """`up` gives each directory of an instance to its account, recursively when it changes hands.
    Through a link planted as data/superset/metrics, it gave /etc and everything in it to the
    Superset account."""
    host_dir = tmp_path / "host-dir"
    host_dir.mkdir(mode=0o755)
    (host_dir / "passwd").write_text("root's\n")
    base = tmp_path / "home"
    base.mkdir()
    (base / "metrics").symlink_to(host_dir)
    with pytest.raises(SetpointError, match="is a link or a file"):
        own_directory(base, base / "metrics", "nobody", mode=0o700, recursive=True)
    (base / "up").symlink_to(tmp_path)  # a link above the directory
    with pytest.raises(SetpointError, match="is a link or a file"):
        own_directory(base, base / "up" / "host-dir", "nobody", mode=0o700, recursive=True)
    # A real directory holding a link to the host's directory: what is in it changes hands, the
    # link's target does not.
    real = base / "data"
    real.mkdir()
    (real / "file").write_text("x")
    (real / "escape").symlink_to(host_dir)
    assert own_directory(base, real, "nobody", mode=0o700, recursive=True) == (True, True)
    assert (real.owner(), (real / "file").owner()) == ("nobody", "nobody")
    assert (real / "escape").lstat().st_uid == real.stat().st_uid  # the link itself
    assert own_directory(base, real, "nobody", mode=0o700, recursive=True) == (True, False)
    assert (host_dir.owner(), (host_dir / "passwd").owner(), host_dir.stat().st_mode & 0o777) == ("root", "root", 0o755)
    assert own_directory(base, base / "new", "nobody", mode=0o750) == (False, True)


def test_the_former_audit_trail_moves_into_roots_directory_never_through_a_link(tmp_path, monkeypatch):
    from setpoint.observability import logstore

    monkeypatch.setattr(logstore, "logstore_user", lambda: "nobody")  # the store's account may not exist yet

    home = tmp_path / "home"
    alpha, beta = (InstancePaths(home / "instances" / name) for name in ("alpha", "beta"))
    for paths in (alpha, beta):
        paths.audit_dir.mkdir(parents=True)
        paths.superset_home.mkdir(parents=True)
    # alpha's Superset account points its former audit directory at beta's.
    (beta.audit_dir / "audit.log.1").write_text("beta's evidence\n")
    alpha.former_audit_dir.symlink_to(beta.audit_dir)
    ctx = SimpleNamespace(paths=alpha, superset_user="nobody")
    assert not any(change.startswith("moved") for change in logstore.prepare_audit_trail(ctx))
    assert (beta.audit_dir / "audit.log.1").read_text() == "beta's evidence\n"
    assert not (alpha.audit_dir / "audit.log.1").exists() and alpha.audit_log.read_text() == ""
    # A real former directory: its files move, and a link leads the processes still writing there.
    alpha.former_audit_dir.unlink()
    alpha.former_audit_dir.mkdir()
    alpha.audit_log.unlink()
    (alpha.former_audit_dir / "audit.log").write_text("alpha's records\n")
    changes = logstore.prepare_audit_trail(ctx)
    assert f"moved {alpha.former_audit_dir / 'audit.log'} to {alpha.audit_log}" in changes
    assert alpha.audit_log.read_text() == "alpha's records\n"
    assert (alpha.former_audit_dir / "audit.log").resolve() == alpha.audit_log


def test_root_empties_an_access_log_in_place_past_its_size_never_through_a_link(tmp_path, monkeypatch):
    from setpoint.observability import logstore

    paths = InstancePaths(tmp_path / "home" / "instances" / "alpha")
    paths.access_log.parent.mkdir(parents=True)
    paths.access_log.write_text("a request\n")
    monkeypatch.setattr(logstore, "ACCESS_LOG_MAX_BYTES", 20)
    assert not logstore.trim_access_log(paths) and paths.access_log.read_text() == "a request\n"
    with paths.access_log.open("a") as caddy:  # Caddy holds it open and appends
        caddy.write("another request\n")
        caddy.flush()
        assert logstore.trim_access_log(paths) and paths.access_log.stat().st_size == 0
        caddy.write("the next one\n")
    assert paths.access_log.read_text() == "the next one\n"
    outside = tmp_path / "host-file"
    outside.write_text("x" * 100)
    paths.access_log.unlink()
    paths.access_log.symlink_to(outside)
    assert not logstore.trim_access_log(paths) and outside.stat().st_size == 100


ANY = 0xFFFFFFFF  # an ACL entry's id where it names no account


def acl_entries(acl: bytes) -> list[tuple[int, int, int]]:
    return list(struct.iter_unpack("<HHI", acl[4:]))


def test_an_acl_entry_lets_one_account_read_and_keeps_the_owning_group_as_it_was():
    from setpoint.home import acl_with_reader

    # A directory 0750: the reader's entry, a mask that lets it through, the group's own r-x.
    acl = acl_with_reader(None, 0o750, 1234, 5)
    assert acl_entries(acl) == [(0x01, 7, ANY), (0x02, 5, 1234), (0x04, 5, ANY), (0x10, 5, ANY), (0x20, 0, ANY)]
    assert acl_with_reader(acl, 0o750, 1234, 5) == acl  # given once
    # A second account passes through; the first keeps its entry.
    both = acl_with_reader(acl, 0o750, 99, 1)
    assert acl_entries(both)[1:3] == [(0x02, 1, 99), (0x02, 5, 1234)]
    # A file the group may only write to (0620): the mask widens for the reader, the group stays -w-.
    widened = acl_entries(acl_with_reader(None, 0o620, 1234, 4))
    assert (0x04, 2, ANY) in widened and (0x10, 6, ANY) in widened and (0x20, 0, ANY) in widened


def test_let_read_gives_an_entry_on_the_directory_itself_never_through_a_link(tmp_path):
    from setpoint.home import ACL_XATTR, let_read

    assert os.geteuid() == 0, "only root gives ACL entries: run the tests as root, as CI does"
    logs = tmp_path / "instances" / "alpha" / "logs"
    logs.mkdir(parents=True, mode=0o750)
    logs.chmod(0o750)
    assert let_read(tmp_path, logs, "nobody", 5) and not let_read(tmp_path, logs, "nobody", 5)
    assert (0x02, 5, pwd.getpwnam("nobody").pw_uid) in acl_entries(os.getxattr(logs, ACL_XATTR))
    assert stat.S_IMODE(logs.stat().st_mode) == 0o750
    # A link in the directory's place, or above it: refused, and its target gets no entry.
    target = tmp_path / "host-dir"
    target.mkdir(mode=0o700)
    linked = tmp_path / "instances" / "beta"
    linked.symlink_to(target)
    for path in (linked, linked / "logs"):
        (target / "logs").mkdir(exist_ok=True)
        with pytest.raises(OSError):
            let_read(tmp_path, path, "nobody", 5)
    for path in (target, target / "logs"):
        with pytest.raises(OSError):
            os.getxattr(path, ACL_XATTR)
