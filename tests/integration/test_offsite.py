"""Off-site copies, escrowed secrets and disaster recovery, against an S3-compatible server on
loopback: a repository here is not off-site, and the scorecard says so."""

import json
import time

import pytest
import yaml

from setpoint.backup.escrow import bundle_key, s3_client
from setpoint.backup.repositories import offsite_key
from setpoint.backup.pgbackrest import PgBackRest
from setpoint.backup.rebuild import rebuild_from_offsite
from setpoint.checklist import run_scorecard
from setpoint.errors import InputError
from setpoint.net import http_client
from setpoint.runtime.local import converge, lifecycle
from setpoint.runtime.local.instance import load_context
from setpoint.secret import SecretStore
from setpoint.superset_api import SupersetClient
from tests.conftest import make_spec, run_cli

NAME = "omega"


def statuses(home):
    card = run_scorecard(lifecycle.managed_target(home, NAME), name=NAME)
    return {r.check.id: r for r in card.results}


@pytest.fixture(scope="module")
def offsite_instance(home, instance, s3_endpoint):
    s3_endpoint.create_bucket("omega-offsite")
    spec = make_spec(NAME, concurrent_users=10, backup={"offsite": s3_endpoint.spec("omega-offsite")},
                     gdpr={"controller": "Omega Corp, dpo@omega.example", "hosting_location": "this test host"})
    report = converge.up(home, spec, log=lambda s: print("  omega:", s))
    yield spec, report
    if home.instance(NAME).exists():
        lifecycle.destroy(home, NAME)


def test_backups_reach_both_repositories_with_escrowed_secrets(home, offsite_instance, s3_endpoint):
    spec, report = offsite_instance
    assert any("recovery key" in a for a in report.actions)
    ctx = load_context(home, NAME)
    assert {b.repo for b in PgBackRest(ctx).backups()} == {1, 2}
    secrets = SecretStore(ctx.paths.secrets_file).load()
    offsite = spec.backup.offsite
    client = s3_client(offsite, secrets["offsite_access_key"], secrets["offsite_secret_key"])
    bundle = client.get_object(Bucket=offsite.bucket, Key=bundle_key(offsite, NAME))["Body"].read()
    for key, value in secrets.items():
        assert value.encode() not in bundle, f"{key} is readable in the escrow bundle"
    plan = run_cli("dr", "plan", NAME, home=home).stdout
    assert f"s3://{offsite.bucket}/setpoint" in plan and "repo2 (off-site)" in plan
    assert f"setpoint dr rebuild {NAME} --from-offsite" in plan and "No off-site copy" not in plan
    # WAL is archived asynchronously (to S3 too): a segment switched a moment ago may still be in
    # flight, so point 14 gets a few seconds to see it arrive.
    deadline = time.monotonic() + 60
    while (found := statuses(home))[14].status.value != "PASS" and time.monotonic() < deadline:
        time.sleep(5)
    assert found[14].status.value == "PASS", found[14].evidence
    assert found[16].status.value == "PASS" and "the off-site repository" in found[16].evidence
    # The runbook and the plan travel with the backups, off-site too; point 24 reads that copy.
    for document, needle in (("runbook.md", f"setpoint restart {NAME}"), ("disaster-recovery.md", "repo2 (off-site)")):
        copy = client.get_object(Bucket=offsite.bucket, Key=offsite_key(offsite, f"docs/{NAME}/{document}"))["Body"].read()
        assert needle in copy.decode(), document
    assert found[24].status.value == "PASS" and f"s3://{offsite.bucket}/" in found[24].evidence
    # With a gdpr: section, up ran an erasure drill and the processing register travels too.
    assert any(a.startswith("erasure drill passed") for a in report.actions), report.actions
    register = client.get_object(Bucket=offsite.bucket, Key=offsite_key(offsite, f"docs/{NAME}/processing-register.md"))
    assert "Omega Corp, dpo@omega.example" in register["Body"].read().decode()
    assert found[23].status.value == "PASS" and "erasure drill passed" in found[23].evidence, found[23].evidence
    # Loopback is this host: not off-site, whatever it holds.
    assert found[15].status.value == "FAIL" and "not off-site" in found[15].evidence


def test_offsite_outage_fails_loudly_and_recovery_passes_again(home, offsite_instance, s3_endpoint):
    s3_endpoint.stop()
    try:
        failed = run_cli("backup", NAME, home=home)
        assert failed.returncode == 1
        assert "off-site repository" in failed.stderr and "Traceback" not in failed.stderr
        found = statuses(home)
        assert found[14].status.value == "FAIL" and "last backup" in found[14].evidence, found[14].evidence
        status = run_cli("status", NAME, home=home)
        assert "FAILED" in status.stdout
        listed = json.loads(run_cli("backups", NAME, "--format", "json", home=home).stdout)
        assert listed["repositories"] == {"1": "ok", "2": "not answering"}
    finally:
        s3_endpoint.start()
    assert run_cli("backup", NAME, home=home).returncode == 0
    assert statuses(home)[14].status.value == "PASS"


def test_misconfigured_offsite_is_refused_before_anything_changes(home, offsite_instance, tmp_path):
    spec, _ = offsite_instance
    paths = home.instance(NAME)
    kept = {f: f.read_bytes() for f in (paths.spec_file, paths.config / "pgbackrest.conf", paths.config / "postgresql.conf")}
    wrong = spec.model_dump(mode="json")
    wrong["backup"]["offsite"]["bucket"] = "no-such-bucket"
    spec_file = tmp_path / "wrong.yaml"
    spec_file.write_text(yaml.safe_dump(wrong))
    refused = run_cli("up", NAME, "--spec", str(spec_file), home=home)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "s3://no-such-bucket" in refused.stderr and "hint:" in refused.stderr
    assert all(f.read_bytes() == content for f, content in kept.items())
    assert lifecycle.instance_status(home, NAME).health == "ok"


def test_wrong_recovery_key_is_refused(home, offsite_instance):
    spec, _ = offsite_instance
    elsewhere = home.root / "elsewhere"
    from setpoint.home import Home

    other = Home(elsewhere)
    with pytest.raises(InputError, match="recovery key does not open"):
        rebuild_from_offsite(other, spec, "A" * 40)
    assert not other.instance(NAME).root.exists()


def test_destroyed_instance_is_rebuilt_from_offsite_alone(home, offsite_instance, s3_endpoint):
    spec, report = offsite_instance
    paths = home.instance(NAME)
    secrets = SecretStore(paths.secrets_file).load()
    recovery_key = secrets["recovery_key"]
    lifecycle.destroy(home, NAME)
    assert not paths.root.exists()  # nothing local is left: no repository, no secrets
    assert paths.access_log.stat().st_size == 0  # emptied in place: Caddy still holds it open

    rebuilt = rebuild_from_offsite(home, spec, recovery_key)
    with http_client(rebuilt.url, ca_file=rebuilt.ca_root) as client:
        api = SupersetClient(client)
        assert api.login("admin", secrets["admin_password"]).status_code == 200  # the old credentials
        chart = api.find("chart", "slice_name", "Top countries")[0]
        query_context = api.get(f"/api/v1/chart/{chart['id']}").json()["result"]["query_context"]
        # The sample database's password was encrypted with the old SECRET_KEY: the query runs.
        assert api.chart_data(query_context)[0]["rowcount"] == 20
    # Caddy logs the rebuilt instance's requests where the log store and point 18 read them.
    assert f'"host":"{spec.host}' in paths.access_log.read_text()
    # Its backups were off-site only: the rebuilt instance has a local one again, on its new timeline.
    assert any(b.repo == 1 for b in PgBackRest(load_context(home, NAME)).backups())
