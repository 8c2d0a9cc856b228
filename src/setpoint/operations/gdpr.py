"""GDPR: the instance's processing register (article 30), and the erasure of one person (article 17)
everywhere Setpoint and Superset keep them, with a certificate of what was found and done.

Erasing a person:
- in the metadata database, in one transaction: their SQL Lab history, tabs and saved queries,
  favourites, permalinks and other key-value state, API keys, OAuth tokens, attributes and
  pending registrations are deleted; their dashboards, charts, datasets and reports move to the
  owner named; they leave every report's recipients; their account is anonymised (name, e-mail,
  password, logins) and deactivated, so that what they changed stays attributed to "an erased
  person" and no foreign key breaks;
- in Redis: the stored results of their queries, and the filter and Explore state of everyone
  (Superset keys it by tab, not by user);
- in the files Setpoint keeps (the host's log store, the instance's own logs, its audit trail,
  Caddy's access log) and in the dashboards' git repository: every mention is masked in place,
  byte for byte, so that the log store's readers keep their place;
- what cannot be rewritten is told with the date it ends: the backups (their retention), the
  copies forwarded to a remote log store, the git repository's earlier commits.

The certificate names the person only by a hash of their username, so that it holds no personal
data itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from datetime import datetime, timedelta
from pathlib import Path

from setpoint.backup import export
from setpoint.backup.service import now, read_record, update_record
from setpoint.errors import InputError, SetpointError
from setpoint.home import Home, files_beneath, open_beneath, write_file
from setpoint.observability import logstore
from setpoint.render import CACHES, REDIS_DB, InstanceContext, render_template
from setpoint.services.postgres import cluster_of

REGISTER_FILE = "processing-register.md"
ERASED_DOMAIN = "erased.invalid"
# Superset's tables whose rows are one user's own, and the column naming the user; deleted with
# the person, children first. Tables a version lacks are skipped.
PERSONAL_ROWS = (
    ("table_schema", "tab_state_id IN (SELECT id FROM tab_state WHERE user_id = {uid})"),
    ("tab_state", "user_id = {uid}"),
    ("task_subscribers", "user_id = {uid}"),
    ("query", "user_id = {uid}"),
    ("saved_query", "user_id = {uid}"),
    ("favstar", "user_id = {uid}"),
    ("key_value", "created_by_fk = {uid}"),
    ("user_attribute", "user_id = {uid}"),
    ("user_favorite_tag", "user_id = {uid}"),
    ("database_user_oauth2_tokens", "user_id = {uid}"),
    ("ab_api_key", "user_id = {uid}"),
    ("logs", "user_id = {uid}"),
    ("ab_user_group", "user_id = {uid}"),
    ("ab_user_role", "user_id = {uid}"),
)
# What a person owns, by ownership table and the column of the owned object: moved to the new owner.
OWNERSHIP = {"dashboard_user": "dashboard_id", "slice_user": "slice_id", "sqlatable_user": "table_id",
             "report_schedule_user": "report_schedule_id"}


def literal(text: str) -> str:
    """A PostgreSQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def reference(username: str) -> str:
    """How the certificate names the person: a hash of their username, not the username."""
    return hashlib.sha256(username.strip().lower().encode()).hexdigest()[:16]


# --- the processing register --------------------------------------------------------------------

def render_register(ctx: InstanceContext) -> str:
    """The processing register of the instance, from the spec's gdpr section and what Setpoint keeps where."""
    spec = ctx.spec
    record = read_record(ctx.paths)
    return render_template("processing-register.md.j2", spec=spec, gdpr=spec.gdpr, paths=ctx.paths,
                           cache_days=max(c.timeout_s for c in CACHES.values()) // 86400,
                           drill=record.get("last_erasure_drill"), erasures=len(record.get("erasures", [])))


# --- finding a person --------------------------------------------------------------------------

def identifiers(person: dict) -> list[str]:
    """What names a person in text: username, e-mail, full name, and first and last names of 3
    letters or more (shorter ones would match unrelated words)."""
    full = f"{person.get('first_name') or ''} {person.get('last_name') or ''}".strip()
    names = [person.get("email"), person.get("username"), full, person.get("first_name"), person.get("last_name")]
    found = []
    for name in names:
        if name and len(name.strip()) >= 3 and name.strip().lower() not in {n.lower() for n in found}:
            found.append(name.strip())
    return found


def _pattern(needles: list[str]) -> re.Pattern[bytes]:
    alternatives = sorted(needles, key=len, reverse=True)  # the e-mail before the username it starts with
    return re.compile(rb"(?<![0-9A-Za-z])(?:" + b"|".join(re.escape(n.encode()) for n in alternatives) + rb")(?![0-9A-Za-z])",
                      re.IGNORECASE)


def _files(home: Home, ctx: InstanceContext) -> list[Path]:
    """Every file outside the metadata where Setpoint keeps what an instance's people did. The
    instance's accounts can change some of these directories: a link planted there is not
    followed (nor later opened: `_open`)."""
    roots = [logstore.records_dir(home, ctx.spec.name), ctx.paths.logs, ctx.paths.audit_dir, ctx.paths.former_audit_dir]
    files = [p for root in roots for p in files_beneath(home.root, root)]
    return files + [p for log in (ctx.paths.access_log, ctx.paths.former_access_log)
                    for p in files_beneath(home.root, log.parent) if p.name.startswith(f"{ctx.spec.name}.access")]


def _open(home: Home, path: Path, flags: int) -> int | None:
    """A file to search or mask, opened without following a link (None when one is met, or it is
    gone): within the home, none on the whole way from it (`open_beneath`)."""
    try:
        return open_beneath(home.root if path.is_relative_to(home.root) else path.parent, path, flags)
    except OSError:
        return None


def _export_files(ctx: InstanceContext) -> tuple[str, Path, list[Path]] | None:
    exported = export.last_repository(ctx.paths)
    if exported is None:
        return None
    target, repo = exported
    return target, repo, [p for p in repo.rglob("*") if p.is_file() and ".git" not in p.relative_to(repo).parts]


def _metadata_hits(ctx: InstanceContext, needles: list[str]) -> dict[str, int]:
    """Rows of each table of the metadata database whose text mentions a needle (whole words)."""
    cluster, tables = cluster_of(ctx), sorted(_existing(ctx))
    regex = literal("(" + "|".join(r"\m" + re.escape(n) + r"\M" for n in needles) + ")")
    counts = " UNION ALL ".join(f"SELECT {literal(t)}, count(*) FROM \"{t}\" x WHERE x::text ~* {regex}" for t in tables)
    rows = cluster.sql(counts, database="superset").splitlines() if tables else []
    return {f"metadata table {t}": int(n) for t, n in (row.split("|") for row in rows) if int(n)}


def find(home: Home, ctx: InstanceContext, needles: list[str]) -> dict[str, int]:
    """Every place that still mentions the person, with the count of rows or mentions."""
    pattern = _pattern(needles)
    hits = _metadata_hits(ctx, needles)
    exported = _export_files(ctx)
    for path in _files(home, ctx) + (exported[2] if exported else []):
        if (fd := _open(home, path, os.O_RDONLY)) is None:
            continue
        with os.fdopen(fd, "rb") as handle:
            count = len(pattern.findall(handle.read()))
        if count:
            hits[str(path)] = count
    return hits


def _mask(home: Home, path: Path, pattern: re.Pattern[bytes]) -> int:
    """Overwrite every match in the file with asterisks, in place and at the same length (a
    reader following the file, such as the log store, keeps its place); how many there were."""
    if (fd := _open(home, path, os.O_RDWR)) is None:
        return 0
    with os.fdopen(fd, "r+b") as handle:
        data = handle.read()
        masked, count = pattern.subn(lambda m: b"*" * len(m.group(0)), data)
        if count:
            handle.seek(0)
            handle.write(masked)  # only the bytes read: a line appended meanwhile stays as it is
    return count


# --- erasing a person --------------------------------------------------------------------------

def _user(ctx: InstanceContext, who: str) -> dict | None:
    rows = cluster_of(ctx).sql(
        "SELECT row_to_json(u) FROM (SELECT id, username, email, first_name, last_name, active FROM ab_user "
        f"WHERE lower(username) = lower({literal(who)}) OR lower(email) = lower({literal(who)})) u", database="superset")
    found = [json.loads(line) for line in rows.splitlines() if line.strip()]
    if len(found) > 1:
        raise InputError(f"'{who}' names {len(found)} accounts", "give the username rather than the e-mail")
    return found[0] if found else None


def _existing(ctx: InstanceContext) -> set[str]:
    """The tables of the metadata database (they differ between Superset versions)."""
    return set(cluster_of(ctx).sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'", database="superset").split())


def _recipient_updates(ctx: InstanceContext, email: str, tables: set[str]) -> list[str]:
    """Statements that take an address out of every report's recipients (a recipient left with
    no address is deleted)."""
    if "report_recipient" not in tables or not email:
        return []
    rows = cluster_of(ctx).sql(
        "SELECT row_to_json(r) FROM (SELECT id, recipient_config_json FROM report_recipient "
        f"WHERE recipient_config_json ILIKE {literal('%' + email + '%')}) r", database="superset")
    statements = []
    for line in filter(str.strip, rows.splitlines()):
        row = json.loads(line)
        config = json.loads(row["recipient_config_json"] or "{}")
        kept = [a.strip() for a in re.split(r"[,;]", config.get("target", "")) if a.strip() and a.strip().lower() != email.lower()]
        if kept:
            config["target"] = ", ".join(kept)
            statements.append(f"WITH d AS (UPDATE report_recipient SET recipient_config_json = {literal(json.dumps(config))} "
                              f"WHERE id = {row['id']} RETURNING 1) SELECT 'report recipients left', count(*) FROM d;")
        else:
            statements.append(f"WITH d AS (DELETE FROM report_recipient WHERE id = {row['id']} RETURNING 1) "
                              "SELECT 'report recipients left', count(*) FROM d;")
    return statements


def _metadata_script(ctx: InstanceContext, person: dict, owner_id: int, ref: str) -> str:
    """One transaction: delete the person's own rows, move what they own, anonymise the account."""
    uid, tables = int(person["id"]), _existing(ctx)
    parts = ["BEGIN;"]
    for table, where in PERSONAL_ROWS:
        if table in tables and (table != "table_schema" or "tab_state" in tables):
            parts.append(f"WITH d AS (DELETE FROM \"{table}\" WHERE {where.format(uid=uid)} RETURNING 1) "
                         f"SELECT {literal('deleted from ' + table)}, count(*) FROM d;")
    for table, column in OWNERSHIP.items():
        if table in tables:
            parts.append(f"INSERT INTO \"{table}\" (user_id, {column}) SELECT {owner_id}, {column} FROM \"{table}\" "
                         f"WHERE user_id = {uid} AND {column} NOT IN (SELECT {column} FROM \"{table}\" WHERE user_id = {owner_id});")
            parts.append(f"WITH d AS (DELETE FROM \"{table}\" WHERE user_id = {uid} RETURNING 1) "
                         f"SELECT {literal('ownership moved: ' + table)}, count(*) FROM d;")
    parts += _recipient_updates(ctx, person.get("email") or "", tables)
    if "ab_register_user" in tables:
        match = " OR ".join(f"lower({c}) = lower({literal(person[k])})" for c, k in (("username", "username"), ("email", "email")) if person.get(k))
        parts.append(f"WITH d AS (DELETE FROM ab_register_user WHERE {match} RETURNING 1) "
                     "SELECT 'deleted from ab_register_user', count(*) FROM d;")
    parts.append(
        f"UPDATE ab_user SET username = {literal('erased-' + ref)}, first_name = 'Erased', last_name = {literal('person ' + ref[:8])}, "
        f"email = {literal(f'erased-{ref}@{ERASED_DOMAIN}')}, password = NULL, active = false, last_login = NULL, "
        f"login_count = NULL, fail_login_count = NULL WHERE id = {uid};")
    parts.append("COMMIT;")
    return "\n".join(parts)


def erase(home: Home, ctx: InstanceContext, who: str, transfer_to: str) -> dict:
    """Erase the person `who` (username or e-mail) from the instance, moving what they own to
    `transfer_to`; the certificate (also written under docs/erasures/)."""
    from setpoint.runtime.local.lifecycle import instance_redis

    started, at = time.monotonic(), now()
    person = _user(ctx, who)
    if person is None:
        raise InputError(f"no account of {ctx.spec.name} has the username or e-mail '{who}'",
                         f"list the accounts in Settings > List Users of {ctx.spec.url}")
    if person["username"].lower() == ctx.spec.admin.username.lower():
        raise InputError(f"'{who}' is the instance's own admin, which Setpoint needs",
                         "name another admin in the spec's admin.username and run setpoint up first")
    owner = _user(ctx, transfer_to)
    if owner is None or not owner["active"] or owner["id"] == person["id"]:
        raise InputError(f"--transfer-to '{transfer_to}' is not another active account of {ctx.spec.name}",
                         f"give the username of the person who takes over the dashboards, e.g. {ctx.spec.admin.username}")
    needles, ref = identifiers(person), reference(person["username"])
    redis = instance_redis(ctx)
    results_keys = cluster_of(ctx).sql(
        f"SELECT results_key FROM query WHERE user_id = {int(person['id'])} AND results_key IS NOT NULL", database="superset").split()
    done: dict[str, int] = {}
    output = cluster_of(ctx).sql(_metadata_script(ctx, person, int(owner["id"]), ref), database="superset")
    for line in filter(None, output.splitlines()):
        what, count = line.rsplit("|", 1)
        done[what] = done.get(what, 0) + int(count)
    done["account anonymised and deactivated"] = 1
    # The rows' old versions stay in the tables' files until vacuumed: the account's table is
    # rewritten (it is small), the others have their dead rows removed.
    tables = _existing(ctx) & ({t for t, _ in PERSONAL_ROWS} | set(OWNERSHIP) | {"report_recipient", "ab_register_user"})
    cluster_of(ctx).sql("VACUUM FULL ab_user;\n" + "".join(f'VACUUM "{t}";\n' for t in sorted(tables)), database="superset")
    done["stored query results deleted"] = sum(redis.delete(REDIS_DB["query_results"], f"superset_results_{key}") for key in results_keys)
    for prefix, cache in CACHES.items():
        if cache.users_work:  # keyed by dashboard tab, not by user: everyone's goes
            done[f"{prefix} cache entries deleted (everyone's)"] = redis.delete(REDIS_DB["caches"], f"superset_{prefix}_*")
    pattern = _pattern(needles)
    files = _files(home, ctx)
    masked = {str(path): n for path in files if (n := _mask(home, path, pattern))}
    time.sleep(2)  # a record the log store was copying while its source was masked
    masked.update({str(path): n + masked.get(str(path), 0) for path in _files(home, ctx) if (n := _mask(home, path, pattern))})
    exported = _export_files(ctx)
    if exported:
        target, repo, paths = exported
        masked.update({str(path): n for path in paths if (n := _mask(home, path, pattern))})
        if export.stage(repo).strip():
            export.commit(repo, target, f"Erase a person from the export (erasure {ref})")
    certificate = _certificate(ctx, person, owner, ref, at, done, masked, find(home, ctx, needles), time.monotonic() - started)
    _write_certificate(ctx, certificate)
    logstore.record_audit(ctx, "person_erased", subject=f"sha256:{ref}", transferred_to=owner["username"],
                          erasure=certificate["erasure"])
    return certificate


def _certificate(ctx, person, owner, ref, at: datetime, done, masked, remaining, seconds: float) -> dict:
    spec = ctx.spec
    kept = {"local backups, with the write-ahead log that recorded the erasure":
            f"until {(at + timedelta(days=spec.backup.retention_days)):%Y-%m-%d} (retention {spec.backup.retention_days} days)"}
    if spec.backup.offsite:
        kept["off-site backups"] = next(iter(kept.values()))
    if spec.logs.remote:
        kept[f"records forwarded to {spec.logs.remote}"] = "until that store's own retention ends: erase them there"
    if read_record(ctx.paths).get("last_export"):
        kept["earlier commits of the dashboards' git repository"] = "until the history is rewritten (git filter-repo)"
    return {
        "erasure": f"{at:%Y%m%dT%H%M%SZ}-{ref[:8]}",
        "at": at.isoformat(timespec="seconds"),
        "instance": spec.name,
        "superset_version": spec.superset_version,
        "subject": f"sha256:{ref}",
        "subject_note": "the first 16 hex digits of the SHA-256 of the lower-cased username; the certificate holds no personal data",
        "transferred_to": owner["username"],
        "metadata": done,
        "masked_in_files": masked,
        "still_mentioned": remaining,
        "kept_until": kept,
        "seconds": round(seconds, 1),
    }


def certificates_dir(ctx: InstanceContext) -> Path:
    return ctx.paths.root / "docs" / "erasures"


def _write_certificate(ctx: InstanceContext, certificate: dict) -> None:
    base = certificates_dir(ctx) / certificate["erasure"]
    write_file(base.with_suffix(".json"), json.dumps(certificate, indent=2) + "\n", mode=0o600)
    write_file(base.with_suffix(".md"), render_template("erasure-certificate.md.j2", c=certificate), mode=0o600)
    update_record(ctx.paths, erasures=[*read_record(ctx.paths).get("erasures", []),
                                       {"at": certificate["at"], "erasure": certificate["erasure"],
                                        "clean": not certificate["still_mentioned"]}])


# --- the erasure drill -------------------------------------------------------------------------

DRILL_ROLES = ["Alpha", "sql_lab"]


def _leave_traces(api, ref: str) -> dict[str, int]:
    """As the drill's person: what a real user leaves behind (a SQL Lab query, a saved query, a
    dashboard and a chart they own, a favourite, a permalink); the ids of what they own."""
    owned = {"owner": api.user_id()}
    databases = api.get("/api/v1/database/", params={"q": "(page_size:1)"}).json()["result"]
    if databases:
        db = databases[0]["id"]
        api.post("/api/v1/sqllab/execute/", json={"database_id": db, "sql": "SELECT 1 AS drill", "runAsync": False,
                                                  "client_id": ref[:10], "tab": "drill"})
        api.post("/api/v1/saved_query/", json={"db_id": db, "label": f"drill {ref[:8]}", "sql": "SELECT 1"})
    dashboard = api.post("/api/v1/dashboard/", json={"dashboard_title": f"Erasure drill {ref[:8]}", "owners": [owned["owner"]]})
    owned["dashboard"] = dashboard.json()["id"]
    api.post(f"/api/v1/dashboard/{owned['dashboard']}/favorites/")
    api.post(f"/api/v1/dashboard/{owned['dashboard']}/permalink", json={"dataMask": {}, "activeTabs": [], "urlParams": []})
    datasets = api.get("/api/v1/dataset/", params={"q": "(page_size:1)"}).json()["result"]
    if datasets:
        chart = api.post("/api/v1/chart/", json={"slice_name": f"Erasure drill {ref[:8]}", "viz_type": "table",
                                                "datasource_id": datasets[0]["id"], "datasource_type": "table",
                                                "owners": [owned["owner"]], "params": "{}"})
        owned["chart"] = chart.json()["id"]
    return owned


def run_drill(home: Home, ctx: InstanceContext) -> dict:
    """Create a synthetic person with activity everywhere, erase them, and search every store
    for them; record the result (point 23). The objects they owned must survive, owned by the
    admin; the drill removes them afterwards."""
    import secrets as random

    from setpoint.net import http_client
    from setpoint.runtime.local.converge import admin_client
    from setpoint.runtime.local.platform import load_platform
    from setpoint.secret import SecretStore
    from setpoint.services.superset import SupersetCommands
    from setpoint.superset_api import SupersetClient

    started, tag = time.monotonic(), random.token_hex(4)
    person = {"username": f"erasure-drill-{tag}", "email": f"erasure-drill-{tag}@drill.invalid",
              "first_name": f"Drill{tag}", "last_name": f"Subject{tag}"}
    password = random.token_urlsafe(18)
    platform, secrets = load_platform(home), SecretStore(ctx.paths.secrets_file).load()
    try:
        SupersetCommands(ctx).ensure_user(person["username"], password, DRILL_ROLES, person["first_name"],
                                          person["last_name"], person["email"])
        ca = platform.caddy.ca_root if ctx.spec.is_local_hostname else None
        with http_client(ctx.spec.url, ca_file=ca, timeout=120) as http:
            api = SupersetClient(http)
            if api.login(person["username"], password).status_code != 200:
                raise SetpointError("the erasure drill's person could not log in", f"see: setpoint logs {ctx.spec.name} web")
            owned = _leave_traces(api, reference(person["username"]))
        needles = identifiers(person)
        before = find(home, ctx, needles)
        certificate = erase(home, ctx, person["username"], ctx.spec.admin.username)
        with admin_client(ctx.spec, platform, secrets) as admin:
            admin_id = admin.user_id()
            kept = admin.call("GET", f"/api/v1/dashboard/{owned['dashboard']}")
            survived = kept.status_code == 200 and admin_id in [o["id"] for o in kept.json()["result"]["owners"]]
            if "chart" in owned:
                admin.delete(f"/api/v1/chart/{owned['chart']}")
            admin.delete(f"/api/v1/dashboard/{owned['dashboard']}")
        remaining = certificate["still_mentioned"]
        ok = bool(before) and not remaining and survived
        entry = {"at": now().isoformat(), "ok": ok, "seconds": round(time.monotonic() - started, 1),
                 "found_before": len(before), "still_mentioned": remaining, "owned_objects_kept": survived,
                 "erasure": certificate["erasure"]}
    except SetpointError as exc:
        update_record(ctx.paths, last_erasure_drill={"at": now().isoformat(), "ok": False, "error": exc.message})
        raise
    update_record(ctx.paths, last_erasure_drill=entry)
    if not ok:
        raise SetpointError(
            f"the erasure drill of {ctx.spec.name} failed: " + (f"the person is still in {', '.join(remaining)}" if remaining else
                                                               "the dashboard they owned did not survive" if not survived else
                                                               "the person's traces were not found before the erasure"),
            f"see the certificate {certificates_dir(ctx) / certificate['erasure']}.md")
    return entry


def require_gdpr(ctx: InstanceContext) -> None:
    if ctx.spec.gdpr is None:
        raise InputError(f"the spec of {ctx.spec.name} has no gdpr: section",
                         f"add gdpr: with at least controller and hosting_location, then run: setpoint up {ctx.spec.name} --spec FILE")
