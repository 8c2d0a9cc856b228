"""GDPR, the pure parts: what names a person, masking in place at the same length, the processing
register (golden file), the erasure drill's schedule, and the spec's gdpr section."""

import os
from datetime import datetime, timedelta, timezone

import pytest

from setpoint.backup.schedule import due_jobs
from setpoint.errors import InputError
from setpoint.home import Home
from setpoint.operations import gdpr
from setpoint.spec import parse_spec
from tests.unit.test_render import GOLDEN, context

PERSON = {"username": "jdoe", "email": "jdoe@example.com", "first_name": "Jane", "last_name": "Do"}
GDPR = {"controller": "Acme SAS, dpo@acme.example", "hosting_location": "OVH, Gravelines, France (EU)",
        "processors": ["Backblaze: off-site backups"]}


def test_identifiers_skip_names_too_short_to_be_told_apart():
    assert gdpr.identifiers(PERSON) == ["jdoe@example.com", "jdoe", "Jane Do", "Jane"]
    assert gdpr.identifiers({"username": "JDOE", "email": None, "first_name": "jdoe", "last_name": ""}) == ["JDOE"]


def test_masking_is_in_place_whole_words_and_case_blind(tmp_path):
    log = tmp_path / "audit.log"
    text = b'{"user":"jdoe","mail":"JDoe@Example.com"} jdoes jane JANE DO janet\n'
    log.write_bytes(text)
    count = gdpr._mask(Home(tmp_path), log, gdpr._pattern(gdpr.identifiers(PERSON)))
    masked = log.read_bytes()
    assert count == 4 and len(masked) == len(text)  # jdoe, the e-mail, jane, "JANE DO"
    assert masked == b'{"user":"****","mail":"****************"} jdoes **** ******* janet\n'


def test_masking_leaves_what_was_appended_meanwhile(tmp_path):
    log = tmp_path / "web.log"
    log.write_bytes(b"jdoe logged in\n")
    pattern = gdpr._pattern(["jdoe"])
    with open(log, "ab") as writer:  # a writer appending while the file is masked keeps its line
        gdpr._mask(Home(tmp_path), log, pattern)
        writer.write(b"later line\n")
    assert log.read_bytes() == b"**** logged in\nlater line\n"


def test_the_reference_is_a_hash_of_the_username():
    assert gdpr.reference("JDoe ") == gdpr.reference("jdoe") and "jdoe" not in gdpr.reference("jdoe")


def test_register_matches_golden_file():
    text = gdpr.render_register(context(gdpr=GDPR))
    golden = GOLDEN / "processing-register.md"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text(), "processing-register.md changed; rerun with UPDATE_GOLDEN=1 if intended"


def test_the_gdpr_section_names_its_controller_and_location():
    with pytest.raises(InputError, match="controller"):
        parse_spec({"name": "demo", "gdpr": {"hosting_location": "EU"}})
    with pytest.raises(InputError, match="purposes"):
        parse_spec({"name": "demo", "gdpr": {**GDPR, "purposes": []}})


def test_an_erasure_drill_is_due_with_a_gdpr_section_only():
    at = datetime(2026, 12, 1, tzinfo=timezone.utc)
    fresh = {key: {"at": at.isoformat(), "ok": True} for key in ("last_backup", "last_drill", "last_export")}
    assert due_jobs(parse_spec({"name": "demo"}), fresh, at) == []
    with_gdpr = parse_spec({"name": "demo", "gdpr": GDPR})
    assert due_jobs(with_gdpr, fresh, at) == ["erasure_drill"]
    drilled = {**fresh, "last_erasure_drill": {"at": (at - timedelta(days=89)).isoformat(), "ok": True}}
    assert due_jobs(with_gdpr, drilled, at) == []
    assert "erasure_drill" in due_jobs(with_gdpr, drilled, at + timedelta(days=1))
