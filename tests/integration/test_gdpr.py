"""Erasing a person from the shared instance: someone with activity everywhere (logins, SQL Lab,
saved queries, a dashboard, a chart and a dataset they own, a favourite, a permalink, a report
they own and receive), erased; then the whole metadata database (pg_dump), the log store, the
instance's files and the dashboards' git repository are searched for them: nothing. What they
owned still opens, owned by the admin. Bad requests change nothing."""

import json
import secrets as random
import subprocess

import pytest

from setpoint.backup.service import read_record
from setpoint.net import http_client
from setpoint.operations import gdpr
from setpoint.runtime.local.instance import load_context
from setpoint.services.postgres import cluster_of
from setpoint.services.superset import SupersetCommands
from setpoint.superset_api import SupersetClient
from tests.conftest import as_account, report_figure, run_cli

OTHER_RECIPIENT = "keep.me@example.com"


OWN_ADDRESS = "127.0.0.5"


@pytest.fixture(scope="module")
def person(home, instance, admin):
    """A person with activity in every place Superset and Setpoint keep, and what they own."""
    tag = random.token_hex(3)
    who = {"username": f"jdoe{tag}", "email": f"jane.doe.{tag}@example.com", "first_name": f"Janette{tag}",
           "last_name": f"Doerington{tag}"}
    password = random.token_urlsafe(16)
    ctx = load_context(home, "alpha")
    SupersetCommands(ctx).ensure_user(who["username"], password, ["Alpha", "sql_lab"], who["first_name"],
                                      who["last_name"], who["email"])
    # From an address of its own: the session's other clients spend 127.0.0.1's login limit.
    with http_client(instance[0].url, ca_file=instance[1].ca_root, timeout=60, local_address=OWN_ADDRESS) as http:
        api = SupersetClient(http)
        assert api.login(who["username"], password).status_code == 200
        owned = gdpr._leave_traces(api, tag * 3)
        # A failed login with their name: it lands in the audit trail too.
        assert SupersetClient(http).login(who["username"], "wrong").status_code == 401
    # A dataset they co-own, and a report they own and receive with someone else.
    dataset = admin.get("/api/v1/dataset/", params={"q": "(page_size:1)"}).json()["result"][0]["id"]
    current = [o["id"] for o in admin.get(f"/api/v1/dataset/{dataset}").json()["result"]["owners"]]
    assert admin.call("PUT", f"/api/v1/dataset/{dataset}", json={"owners": current + [owned["owner"]]}).status_code == 200
    cluster_of(ctx).sql(f"""
        INSERT INTO report_schedule (type, name, crontab, active, creation_method, working_timeout, dashboard_id,
                                     created_by_fk, extra_json)
        VALUES ('Report', 'drill report {tag}', '0 9 * * *', true, 'alerts_reports', 3600, {owned['dashboard']},
                {owned['owner']}, '{{}}');
        INSERT INTO report_schedule_user (user_id, report_schedule_id)
        SELECT {owned['owner']}, id FROM report_schedule WHERE name = 'drill report {tag}';
        INSERT INTO report_recipient (type, recipient_config_json, report_schedule_id)
        SELECT 'Email', '{{"target": "{who['email']}, {OTHER_RECIPIENT}"}}', id FROM report_schedule WHERE name = 'drill report {tag}';
    """, database="superset")
    return who, owned, dataset


def mentions(home, ctx, who) -> dict[str, int]:
    """Every mention of the person, found without Setpoint's own search: a dump of the whole
    metadata database and grep over every text file of the instance, the log store and Caddy."""
    needles = gdpr.identifiers(who)
    cluster = cluster_of(ctx)
    dump = subprocess.run(["pg_dump", "-h", str(cluster.socket_dir), "-p", str(cluster.port), "-U", cluster.role, "superset"],
                          capture_output=True, text=True, check=True, **as_account(cluster.user)).stdout.lower()
    found = {f"pg_dump: {n}": dump.count(n.lower()) for n in needles if n.lower() in dump}
    places = [str(ctx.paths.root), str(home.logstore_dir), str(ctx.paths.access_log.parent)]
    for needle in needles:
        grep = subprocess.run(["grep", "-rIilF", "--exclude-dir=postgres", "--exclude-dir=repo", needle, *places],
                              capture_output=True, text=True)
        found.update({f"{path}: {needle}": 1 for path in grep.stdout.split()})
    return found


def test_a_person_is_erased_everywhere_and_what_they_owned_stays(home, instance, admin, person):
    who, owned, dataset = person
    ctx = load_context(home, "alpha")
    assert mentions(home, ctx, who), "the person's traces must be found before the erasure"
    erased = run_cli("gdpr", "erase", "alpha", "--user", who["email"], "--transfer-to", "admin", "--format", "json")
    assert erased.returncode == 0, erased.stderr
    certificate = json.loads(erased.stdout)
    report_figure(f"erasure of a person with activity everywhere: {certificate['seconds']} s, "
                  f"{sum(certificate['masked_in_files'].values())} mentions masked in {len(certificate['masked_in_files'])} files")
    done = certificate["metadata"]
    for table in ("query", "saved_query", "favstar", "key_value", "ab_user_role"):
        assert done[f"deleted from {table}"] >= 1, (table, done)
    for table in ("dashboard_user", "slice_user", "sqlatable_user", "report_schedule_user"):
        assert done[f"ownership moved: {table}"] == 1, (table, done)
    assert done["report recipients left"] == 1
    assert certificate["still_mentioned"] == {}
    assert any(place.startswith("local backups") for place in certificate["kept_until"])
    # Searched independently: the whole database, every text file.
    assert mentions(home, ctx, who) == {}
    # The certificate itself holds no personal data, and is 0600.
    for suffix in (".json", ".md"):
        path = gdpr.certificates_dir(ctx) / (certificate["erasure"] + suffix)
        assert path.stat().st_mode & 0o777 == 0o600
        text = path.read_text().lower()
        assert not any(n.lower() in text for n in gdpr.identifiers(who)), path
    # What they owned stays, owned by the admin; the other recipient still gets the report.
    admin_id = admin.get("/api/v1/me/").json()["result"]["id"]
    for resource, key in (("dashboard", "dashboard"), ("chart", "chart")):
        answer = admin.call("GET", f"/api/v1/{resource}/{owned[key]}")
        assert answer.status_code == 200 and admin_id in [o["id"] for o in answer.json()["result"]["owners"]], resource
    assert admin_id in [o["id"] for o in admin.get(f"/api/v1/dataset/{dataset}").json()["result"]["owners"]]
    recipients = cluster_of(ctx).sql("SELECT recipient_config_json FROM report_recipient WHERE recipient_config_json "
                                     f"LIKE '%{OTHER_RECIPIENT}%'", database="superset")
    assert json.loads(recipients) == {"target": OTHER_RECIPIENT}
    # The account is gone as a person: it cannot log in, and the erasure is in the audit trail.
    with http_client(instance[0].url, ca_file=instance[1].ca_root, local_address=OWN_ADDRESS) as http:
        assert SupersetClient(http).login(who["username"], "anything").status_code == 401
    assert any(e["erasure"] == certificate["erasure"] for e in read_record(ctx.paths)["erasures"])


def test_bad_erasure_requests_change_nothing(home, instance):
    ctx = load_context(home, "alpha")
    keeper = f"keeper{random.token_hex(3)}"
    SupersetCommands(ctx).ensure_user(keeper, random.token_urlsafe(16), ["Gamma"], "Kept", "User", f"{keeper}@example.com")
    users = cluster_of(ctx).sql("SELECT count(*), count(*) FILTER (WHERE active) FROM ab_user", database="superset")
    for args, needle in ((["--user", "nobody-such", "--transfer-to", "admin"], "no account"),
                         (["--user", "admin", "--transfer-to", keeper], "admin.username"),
                         (["--user", keeper, "--transfer-to", "nobody-such"], "--transfer-to"),
                         (["--user", keeper, "--transfer-to", keeper], "--transfer-to")):
        answer = run_cli("gdpr", "erase", "alpha", *args)
        assert answer.returncode == 2 and needle in answer.stderr and "Traceback" not in answer.stderr, answer.stderr
    assert cluster_of(ctx).sql("SELECT count(*), count(*) FILTER (WHERE active) FROM ab_user", database="superset") == users
    no_section = run_cli("gdpr", "drill", "alpha")
    assert no_section.returncode == 2 and "gdpr:" in no_section.stderr
