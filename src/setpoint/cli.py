"""The `setpoint` command: thin verbs over the runtime's functions."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import shutil
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import httpx
import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from setpoint import __version__, doctor as doctor_module
from setpoint.checklist import Target, run_scorecard
from setpoint.checklist import report
from setpoint.errors import InputError, SetpointError
from setpoint.identity import access
from setpoint.home import Home, default_home
from setpoint.net import host_addresses
from setpoint.observability import logstore, monitoring
from setpoint.runtime.local import converge, lifecycle
from setpoint.spec import InstanceSpec, load_spec

app = typer.Typer(
    help="Setpoint: managed Apache Superset, production-grade by default.\n\n"
    "Example: setpoint up demo",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, soft_wrap=True)
# Piped or redirected output is not bound to a terminal's width: tables keep whole lines.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)


def command_name() -> str:
    """How the user can call setpoint again: `setpoint` when on PATH (`setpoint host install`
    puts the host's own there), else the path they used."""
    invoked = sys.argv[0]
    if shutil.which("setpoint"):
        return "setpoint"
    return invoked if invoked.endswith("setpoint") else "setpoint"


def done(sentence: str) -> None:
    """One action taken (or a warning), printed literally: paths, names and messages may hold brackets."""
    if sentence.startswith("warning: "):
        console.print(f"  [yellow]![/] {escape(sentence)}")
    else:
        console.print(f"  [green]✓[/] {escape(sentence)}")


class Format(str, Enum):
    table = "table"
    json = "json"


class DocumentFormat(str, Enum):
    markdown = "markdown"
    html = "html"


class CheckFormat(str, Enum):
    table = "table"
    json = "json"
    junit = "junit"
    markdown = "markdown"


class State:
    debug = False


def home() -> Home:
    return Home(default_home())


@app.callback()
def main_options(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and every command run."),
) -> None:
    State.debug = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(message)s")


@app.command()
def up(
    name: str = typer.Argument(..., help="Instance name: lowercase letters, digits and dashes."),
    spec_file: Optional[Path] = typer.Option(None, "--spec", help="YAML spec; production defaults without it."),
    no_examples: bool = typer.Option(False, "--no-examples", help="Skip the sample data and dashboard."),
    format: Format = typer.Option(Format.table, "--format",
                                  help="table, or json (what it did, where the instance is, its scorecard; "
                                       "progress stays on standard error)."),
) -> None:
    """Create or converge an instance: a hardened, healthy Superset over HTTPS.

    Running it again changes only what differs from the spec.

    Examples: setpoint up demo --spec demo.yaml  |  setpoint up demo --format json
    """
    spec = load_spec(name, spec_file)
    if no_examples:
        spec = spec.model_copy(update={"examples": False})
    with console.status(f"[bold]{name}[/]: starting") as status:
        report = converge.up(
            home(),
            spec,
            log=done,
            step=lambda message: status.update(f"[bold]{name}[/]: {message}"),
        )
    with console.status(f"[bold]{name}[/]: scoring the production checklist"):
        card = run_scorecard(lifecycle.managed_target(home(), name), name=name)
    if format is Format.json:
        print(json.dumps({"instance": name, "url": spec.url, "ca_root": report.ca_root, "changed": report.changed,
                          "actions": report.actions, "seconds": round(report.seconds, 1),
                          "credentials": f"{command_name()} credentials {name}", "scorecard": card.to_dict()}, indent=2))
        return
    if not report.changed:
        console.print(f"  {name} already matches its spec: nothing changed")
    print_summary(spec, report)
    out.print(f"  scorecard: {card.score}/{card.max} ({card.level}); still failing:")
    for result in card.failing():
        out.print(f"    {result.check.id:2}. {escape(result.check.title)}  [dim]({escape(result.remedy)})[/]")
    out.print(f"  details: {command_name()} check {name}")


def reach_lines(spec: InstanceSpec, addresses: list[str]) -> list[str]:
    """How a user on another computer opens an instance of this host: on the host's network
    addresses when the spec serves it there, else through an SSH tunnel (browsers send
    NAME.localhost to their own loopback, where the tunnel waits)."""
    import getpass
    import socket

    if spec.lan_https_port and addresses:
        return [f"on your network: https://{a}:{spec.lan_https_port}/ (trust the CA certificate in the browser)"
                for a in addresses]
    if not spec.is_local_hostname:
        return []
    local_port = 8443 if spec.https_port == 443 else spec.https_port
    lines = [f"from another computer: ssh -N -L {local_port}:127.0.0.1:{spec.https_port} "
             f"{getpass.getuser()}@{socket.gethostname()} then open https://{spec.host}:{local_port}/"]
    if addresses:
        lines.append(f"  or serve it on {', '.join(addresses)}: set lan_https_port in the spec (e.g. 8443) "
                     f"and run: setpoint up {spec.name} --spec FILE")
    return lines


def print_summary(spec: InstanceSpec, report: converge.UpReport) -> None:
    out.print(f"\n[bold]{spec.name}[/] is up ({report.seconds:.0f} s): [link={spec.url}]{spec.url}[/link]")
    out.print(f"  admin credentials: {command_name()} credentials {spec.name}")
    if report.ca_root:
        out.print(f"  local CA certificate: {report.ca_root}  (curl --cacert {report.ca_root} {spec.url}health)")
    for line in reach_lines(spec, host_addresses()):
        out.print(f"  {line}")
    out.print(
        "  set up: Superset {v} under gunicorn (gevent) and Celery, PostgreSQL metadata, Redis for every cache, "
        "HTTPS with HSTS through Caddy, secure cookies, CSRF, CSP, a generated admin password".format(
            v=spec.superset_version
        )
        + (f", sign-in through {spec.sso.issuer}" if spec.sso else "")
    )
    declared = access.declared(spec)
    for rule in declared["row_level_security"]:
        out.print(f"  row-level security on {rule['dataset']}: "
                  + ", ".join(f"{role} sees {clause}" for role, clause in rule["filters"].items())
                  + f"; {' and '.join(['Admin', *rule['all_rows']])} see every row, any other role none "
                  f"(audit: {command_name()} roles {spec.name})")


@app.command()
def check(
    name: Optional[str] = typer.Argument(None, help="An instance Setpoint manages."),
    url: Optional[str] = typer.Option(None, "--url", help="Any Superset's URL instead of a managed instance."),
    config: Optional[Path] = typer.Option(None, "--config", help="Its superset_config.py (loaded by Superset itself)."),
    user: Optional[str] = typer.Option(None, "--user", help="An account for API probes."),
    password: Optional[str] = typer.Option(None, "--password", envvar="SETPOINT_CHECK_PASSWORD", help="Its password (or SETPOINT_CHECK_PASSWORD)."),
    metadata_uri: Optional[str] = typer.Option(None, "--metadata-uri", envvar="SETPOINT_METADATA_URI", help="Read access to its metadata database."),
    ca_file: Optional[Path] = typer.Option(None, "--ca-file", help="CA certificate to verify its TLS certificate."),
    superset_python: Optional[Path] = typer.Option(None, "--superset-python", help="Python of the Superset install that loads --config (default: Setpoint's)."),
    format: CheckFormat = typer.Option(CheckFormat.table, "--format", help="table, json, junit or markdown."),
    fail_under: int = typer.Option(0, "--fail-under", help="Exit 1 when the score is below this."),
) -> None:
    """Score a Superset against the 25-point production checklist.

    Exit codes: 0 scored (and at least --fail-under), 1 below --fail-under, 3 some evidence
    could not be gathered (unreachable URL, TLS error, wrong credentials, a config that fails).

    Examples: setpoint check demo  |  setpoint check --url https://bi.example.com --config superset_config.py --format junit --fail-under 19
    """
    if (name is None) == (url is None):
        raise InputError("name an instance or give --url (one of the two)", "example: setpoint check demo")
    if url is not None:
        if not url.startswith(("http://", "https://")):
            raise InputError(f"--url must start with http:// or https:// (got {url})", "example: --url https://bi.example.com")
        if config is not None and not config.is_file():
            raise InputError(f"--config {config} is not a file", "give the path of its superset_config.py")
        target = Target(url=url.rstrip("/") + "/", ca_file=ca_file, config_file=config, username=user, password=password,
                        metadata_uri=metadata_uri, superset_python=superset_python or default_superset_python())
        label = None
    else:
        target, label = lifecycle.managed_target(home(), name), name
    with console.status("scoring the production checklist"):
        card = run_scorecard(target, name=label)
    if format is CheckFormat.json:
        print(report.to_json(card))
    elif format is CheckFormat.junit:
        print(report.to_junit(card))
    elif format is CheckFormat.markdown:
        print(report.to_markdown(card))
    else:
        report.print_table(card, out)
    if card.score < fail_under:
        raise typer.Exit(1)
    if card.problems:
        raise typer.Exit(3)


def default_superset_python() -> Path | None:
    """Setpoint's own Superset virtualenv, if one was installed, to load a foreign config."""
    from setpoint.services.superset import venv_dir
    from setpoint.spec import supported_superset_versions

    python = venv_dir(home(), supported_superset_versions()[-1]) / "bin" / "python"
    return python if python.exists() else None


@app.command()
def backup(
    words: list[str] = typer.Argument(..., help="NAME to back up, or: verify NAME for a restore drill."),
    type: str = typer.Option("full", "--type", help="full, diff or incr."),
) -> None:
    """Take a backup now, or run a restore drill (verify).

    Examples: setpoint backup demo --type diff  |  setpoint backup verify demo
    """
    from setpoint.backup.drill import run_drill
    from setpoint.operations import documents
    from setpoint.backup.service import take_backup
    from setpoint.runtime.local.instance import instance_lock, load_context

    if words[0] == "verify" and len(words) == 2:
        ctx = load_context(home(), words[1])
        # Under the instance's lock, as every drill: each one first clears the scratch clusters it
        # finds, taking them for what a killed drill left.
        with instance_lock(home(), words[1], wait_s=300), console.status(f"restore drill of {words[1]}") as status:
            record = run_drill(ctx, log=lambda message: status.update(message))
        documents.publish(ctx)  # the plan states the RTO the drill measured
        out.print(f"restore drill of {words[1]} passed in {record['seconds']} s: backup {record['backup']} "
                  f"restored, verified, and matches the live metadata ({record['restored']})")
        return
    if len(words) != 1:
        raise InputError(f"unexpected arguments: {' '.join(words)}", "use: setpoint backup NAME, or setpoint backup verify NAME")
    ctx = load_context(home(), words[0])
    with console.status(f"{type} backup of {words[0]}"):
        taken = take_backup(ctx, type)
    documents.publish(ctx)
    out.print(f"{taken.type} backup {taken.label} of {words[0]}: {taken.size_bytes / 1e6:.1f} MB of data, "
              f"{taken.repo_bytes / 1e6:.1f} MB in the encrypted repository")


@app.command()
def backups(
    name: str = typer.Argument(..., help="Instance name."),
    format: Format = typer.Option(Format.table, "--format", help="table or json."),
) -> None:
    """List every backup and the recovery window (earliest and latest restorable time).

    Example: setpoint backups demo --format json
    """
    from setpoint.backup.service import backup_report
    from setpoint.runtime.local.instance import load_context

    report_ = backup_report(load_context(home(), name))
    if format is Format.json:
        out.print_json(json.dumps(report_.to_dict()))
        return
    table = Table(title=f"backups of {name}", title_justify="left")
    # Labels are what `restore` and pgBackRest take: never cut or folded.
    for column in ("label", "type", "started (UTC)", "seconds", "data MB", "stored MB", "repo"):
        table.add_column(column, no_wrap=column in ("label", "started (UTC)"))
    for b in report_.backups:
        table.add_row(b.label, b.type, b.started.strftime("%Y-%m-%d %H:%M:%S"), str(int((b.stopped - b.started).total_seconds())),
                      f"{b.size_bytes / 1e6:.1f}", f"{b.repo_bytes / 1e6:.1f}", str(b.repo))
    out.print(table)
    window = report_.window
    out.print(f"recovery window: {window.earliest.isoformat() if window.earliest else '-'} to "
              f"{window.latest.isoformat() if window.latest else '-'}")
    for repo, answer in report_.repositories.items():
        if answer != "ok":
            out.print(f"[yellow]repository {repo} ({'local' if repo == 1 else 'off-site'}): {answer}[/]")
    if report_.room:
        fits = report_.room.full_backups
        out.print(f"local repository: {report_.room.free_bytes / 2**30:.1f} GiB free on its disk"
                  + (f", room for {fits} more full backups" if fits is not None else ""))


@app.command()
def restore(
    name: str = typer.Argument(..., help="The instance to restore from."),
    to: str = typer.Option(..., "--to", help="ISO 8601 time (UTC when no offset) or 'latest'."),
    as_name: Optional[str] = typer.Option(None, "--as", help="Name of the new instance (default NAME-YYYYMMDD-HHMM)."),
    in_place: bool = typer.Option(False, "--in-place", help="Rewind the instance itself, after a safety backup."),
) -> None:
    """Point-in-time recovery: into a new instance beside the original (which is left untouched),
    or with --in-place into the instance itself after a safety backup.

    Examples: setpoint restore demo --to 2026-11-21T18:30:00Z --as demo-before-incident  |  setpoint restore demo --to latest --in-place
    """
    from datetime import datetime, timezone

    from setpoint.backup.restore import restore_as_new, restore_in_place
    from setpoint.spec import parse_spec

    if in_place:
        if as_name:
            raise InputError("--in-place and --as exclude each other", "choose one")
        with console.status(f"restoring {name} in place") as status:
            report_ = restore_in_place(home(), name, to, log=done,
                                       step=lambda message: status.update(message))
        out.print(f"\n[bold]{name}[/] is back to {to}: {report_.url}")
        return

    new_name = as_name or f"{name}-{datetime.now(timezone.utc):%Y%m%d-%H%M}"
    parse_spec({"name": new_name}, source="--as")  # a valid instance name, before anything starts
    with console.status(f"restoring {name} as {new_name}") as status:
        report_ = restore_as_new(home(), name, to, new_name,
                                 log=done,
                                 step=lambda message: status.update(message))
    out.print(f"\n[bold]{new_name}[/] is {name} as of {to}: {report_.url}")
    out.print(f"  it has the same admin credentials: {command_name()} credentials {new_name}")


@app.command()
def upgrade(
    name: str = typer.Argument(..., help="Instance name."),
    to: Optional[str] = typer.Option(None, "--to", help="The Superset version to move to (see: setpoint versions)."),
    back: bool = typer.Option(False, "--rollback", help="Return to the version before the last upgrade."),
    format: Format = typer.Option(Format.table, "--format", help="table or json (the report)."),
) -> None:
    """Upgrade an instance's Superset: rehearsed on a staging copy, applied behind a maintenance
    page, rolled back automatically when anything fails.

    A full backup taken first is the restore point; --rollback returns to it (and to the previous
    version) while it is inside the recovery window, losing what changed since.

    Examples: setpoint upgrade demo --to 6.1.0  |  setpoint upgrade demo --rollback
    """
    from dataclasses import asdict

    from setpoint.operations import upgrade as upgrades

    if back == (to is not None):
        raise InputError("give --to VERSION or --rollback (one of the two)", f"example: setpoint upgrade {name} --to 6.1.0")
    with console.status(f"{name}: upgrade") as status:
        step = lambda message: status.update(f"[bold]{name}[/]: {escape(message)}")  # noqa: E731
        if back:
            result = upgrades.rollback(home(), name, log=done, step=step)
            if format is Format.json:
                print(json.dumps(result))
            return
        report = upgrades.upgrade(home(), name, to, log=done, step=step)
    if format is Format.json:
        print(json.dumps(asdict(report)))
        return
    out.print(f"{name} runs Superset {report.to_version} (was {report.from_version}): staging {report.staging_s} s, "
              f"{report.downtime_s} s behind the maintenance page, {report.migrations} migration(s); "
              f"restore point {report.restore_point['label']} (setpoint upgrade {name} --rollback)")


@app.command()
def versions(
    name: Optional[str] = typer.Argument(None, help="An instance: its version against the supported ones."),
    format: Format = typer.Option(Format.table, "--format", help="table or json."),
) -> None:
    """List the Superset versions Setpoint supports, with their known security advisories, and the
    version each instance runs.

    Example: setpoint versions demo
    """
    from setpoint.operations import advisories

    rows = advisories.version_table(home(), name)
    if format is Format.json:
        print(json.dumps(rows))
        return
    for row in rows:
        running = f"  (runs: {', '.join(row['instances'])})" if row["instances"] else ""
        fixed = "; ".join(f"{a['id']} (fixed in {a['fixed']}): {a['impact']}" for a in row["advisories"]) or "no known advisory"
        out.print(f"Superset {row['version']}{'  newest' if row['newest'] else ''}{running}\n    {escape(fixed)}")


gdpr_app = typer.Typer(help="GDPR: the processing register, erasing a person, erasure drills.", no_args_is_help=True)
app.add_typer(gdpr_app, name="gdpr")


@gdpr_app.command("erase")
def gdpr_erase(
    name: str = typer.Argument(..., help="Instance name."),
    user: str = typer.Option(..., "--user", help="The person's username or e-mail address."),
    transfer_to: str = typer.Option(..., "--transfer-to", help="Username of the account that takes over what they own."),
    format: Format = typer.Option(Format.table, "--format", help="table or json (the certificate)."),
) -> None:
    """Erase a person from an instance: their account is anonymised and deactivated, their queries,
    saved queries, favourites and permalinks deleted, what they own moved to --transfer-to, and
    every mention in the logs, the audit trail and the dashboards' git repository masked.

    Writes an erasure certificate (JSON and Markdown, without personal data) under the instance's
    docs/erasures/, and says what keeps the person until its retention ends (the backups).

    Example: setpoint gdpr erase demo --user jdoe --transfer-to admin
    """
    from setpoint.operations import gdpr
    from setpoint.runtime.local.instance import instance_lock, load_context

    ctx = load_context(home(), name)
    with instance_lock(home(), name, wait_s=60), console.status(f"erasing a person from {name}"):
        certificate = gdpr.erase(home(), ctx, user, transfer_to)
    if format is Format.json:
        print(json.dumps(certificate))
        return
    for what, count in certificate["metadata"].items():
        done(f"{what}: {count}")
    done(f"masked {sum(certificate['masked_in_files'].values())} mention(s) in {len(certificate['masked_in_files'])} file(s)")
    for place, count in certificate["still_mentioned"].items():
        done(f"warning: still mentioned in {place} ({count}): review it by hand")
    for place, until in certificate["kept_until"].items():
        done(f"kept in {place} {until}")
    out.print(f"certificate: {gdpr.certificates_dir(ctx) / certificate['erasure']}.md (and .json)")


@gdpr_app.command("drill")
def gdpr_drill(name: str = typer.Argument(..., help="Instance name.")) -> None:
    """Run an erasure drill now: a synthetic person with activity everywhere is erased, then searched
    for in every store; the scheduler runs one every gdpr.erasure_drill_every_days.

    Example: setpoint gdpr drill demo
    """
    from setpoint.operations import documents, gdpr
    from setpoint.runtime.local.instance import instance_lock, load_context

    ctx = load_context(home(), name)
    gdpr.require_gdpr(ctx)
    with instance_lock(home(), name, wait_s=60), console.status(f"erasure drill of {name}"):
        entry = gdpr.run_drill(home(), ctx)
        documents.publish(ctx)  # the register states the last drill
    out.print(f"erasure drill of {name} passed in {entry['seconds']} s: the person was in {entry['found_before']} "
              "places before the erasure and in none after; what they owned was kept")


@gdpr_app.command("register")
def gdpr_register(name: str = typer.Argument(..., help="Instance name.")) -> None:
    """Print the instance's processing register (GDPR art. 30, Markdown), from the spec's gdpr: section.

    Example: setpoint gdpr register demo > demo-register.md
    """
    from setpoint.operations import gdpr
    from setpoint.runtime.local.instance import load_context

    ctx = load_context(home(), name)
    gdpr.require_gdpr(ctx)
    print(gdpr.render_register(ctx), end="")


dr_app = typer.Typer(help="Disaster recovery.", no_args_is_help=True)
app.add_typer(dr_app, name="dr")


@dr_app.command("plan")
def dr_plan(name: str = typer.Argument(..., help="Instance name.")) -> None:
    """Render the instance's disaster-recovery plan (Markdown) and print it.

    Example: setpoint dr plan demo > demo-dr.md
    """
    from setpoint.backup import dr
    from setpoint.operations import documents
    from setpoint.runtime.local.instance import load_context

    ctx = load_context(home(), name)
    documents.publish(ctx)
    print(documents.local_copy(ctx, dr.FILE).read_text(), end="")


@dr_app.command("rebuild")
def dr_rebuild(
    name: str = typer.Argument(..., help="The destroyed instance's name."),
    from_offsite: bool = typer.Option(False, "--from-offsite", help="Rebuild from the off-site repository (required)."),
    spec_file: Path = typer.Option(..., "--spec", help="A spec naming backup.offsite (endpoint, bucket, path)."),
    recovery_key: str = typer.Option(..., "--recovery-key", envvar="SETPOINT_RECOVERY_KEY", help="The instance's recovery key."),
) -> None:
    """Recreate a destroyed instance on this host from its off-site backups and recovery key.

    The off-site access keys come from the environment variables the spec names.

    Example: setpoint dr rebuild demo --from-offsite --spec demo.yaml --recovery-key XXXXX-XXXXX-...
    """
    from setpoint.backup.rebuild import rebuild_from_offsite

    if not from_offsite:
        raise InputError("only --from-offsite rebuilds exist", f"example: setpoint dr rebuild {name} --from-offsite --spec FILE --recovery-key KEY")
    spec = load_spec(name, spec_file)
    with console.status(f"rebuilding {name}") as status:
        report_ = rebuild_from_offsite(home(), spec, recovery_key,
                                       log=done,
                                       step=lambda message: status.update(message))
    out.print(f"\n[bold]{name}[/] is rebuilt ({report_.seconds:.0f} s): {report_.url}")


@app.command(name="recovery-key")
def recovery_key(
    name: str = typer.Argument(..., help="Instance name."),
    yes: bool = typer.Option(False, "--yes", help="Confirm without a prompt."),
) -> None:
    """Show the recovery key that opens the secrets escrowed with the backups.

    Example: setpoint recovery-key demo
    """
    from setpoint.backup.escrow import format_key
    from setpoint.secret import SecretStore

    paths, _ = require_instance_paths(name)
    if not yes and not typer.confirm(f"Show the recovery key of {name} on this terminal?"):
        raise typer.Exit(1)
    print(format_key(SecretStore(paths.secrets_file).load()["recovery_key"]))


def require_instance_paths(name: str):
    from setpoint.runtime.local.instance import require_instance

    return require_instance(home(), name)


@app.command(name="export")
def export_(
    name: str = typer.Argument(..., help="Instance name."),
    git: Optional[str] = typer.Option(None, "--git", help="A git directory or URL (default: the instance's own export/)."),
) -> None:
    """Export every dashboard as YAML into git; commit only when something changed.

    Example: setpoint export demo --git /srv/dashboards
    """
    from setpoint.backup import export

    ctx, platform, secrets = _instance_handles(name)
    with converge.admin_client(ctx.spec, platform, secrets) as api:
        result = export.export_instance(api, ctx.paths, git)
    from setpoint.operations import documents

    documents.publish(ctx)  # the runbook and the DR plan go into the repository it now exports to
    out.print(f"{result.message} ({result.repository})")


@app.command(name="import")
def import_(
    name: str = typer.Argument(..., help="Instance name."),
    git: str = typer.Option(..., "--git", help="A git directory or URL holding an export."),
) -> None:
    """Load a dashboards-as-code repository into an instance (existing objects are overwritten).

    Example: setpoint import demo --git /srv/dashboards
    """
    from setpoint.backup import export

    ctx, platform, secrets = _instance_handles(name)
    with converge.admin_client(ctx.spec, platform, secrets) as api:
        count = export.import_dashboards(api, git, ctx.paths.root / "export-clones", export.managed_passwords(secrets))
    out.print(f"imported {count} dashboard(s) from {git} into {name}")


def _instance_handles(name: str):
    from setpoint.runtime.local.instance import load_context
    from setpoint.runtime.local.platform import load_platform
    from setpoint.secret import SecretStore

    ctx = load_context(home(), name)
    return ctx, load_platform(home()), SecretStore(ctx.paths.secrets_file).load()


@app.command()
def status(
    name: Optional[str] = typer.Argument(None, help="One instance; all of them when empty."),
    format: Format = typer.Option(Format.table, "--format", help="table or json."),
) -> None:
    """Show every component's state, the URL, health, the CA certificate path, resources against
    their limits, and the queued and running tasks with the oldest one's age.

    Example: setpoint status demo --format json
    """
    names = [name] if name else home().instance_names()
    statuses = [lifecycle.instance_status(home(), n) for n in names]
    if format is Format.json:
        payload = statuses[0].to_dict() if name else [s.to_dict() for s in statuses]
        out.print_json(json.dumps(payload))
        return
    if not statuses:
        out.print("no instances yet: create one with setpoint up demo")
    for st in statuses:
        table = Table(title=f"{st.name}  {st.url}  health: {st.health}", title_justify="left")
        for column in ("component", "state", "pid", "uptime"):
            table.add_column(column)
        for c in st.components:
            colour = "green" if c.state in ("RUNNING", "EXTERNAL") else "red"
            table.add_row(c.component, f"[{colour}]{c.state}[/]", str(c.pid or ""), f"{c.uptime_s} s" if c.uptime_s else "")
        out.print(table)
        if st.ca_certificate:
            out.print(f"CA certificate: {st.ca_certificate}")
        r = st.resources
        if r.get("enforced"):
            out.print(f"resources: memory {r['memory_mb']:,} of {r['memory_limit_mb']:,} MiB (peak {r['memory_peak_mb']:,}, "
                      f"out-of-memory kills {r['oom_kills']}), {r['pids']} of {r['pids_limit']} processes and threads, "
                      f"CPU: {r['cpu']}")
        elif r:
            out.print(f"resources: limits of {r['memory_limit_mb']:,} MiB, CPU: {r['cpu']}, "
                      f"{r['pids_limit']} processes are not enforced here (see: setpoint host)")
        if st.tasks:
            out.print(task_line(st.tasks))
        if st.scheduled_jobs:
            jobs = st.scheduled_jobs
            out.print(f"scheduled {', '.join(jobs['jobs'])} running since {jobs['since'][:19].replace('T', ' ')} UTC "
                      f"(process {jobs['pid']})")
        for what, entry in st.backups.items():
            verdict = "[green]ok[/]" if entry.get("ok", True) else f"[red]FAILED[/]: {escape(str(entry.get('error')))}"
            out.print(f"{what.replace('_', ' ')}: {entry['at'][:19]} {verdict}")


def task_line(tasks: dict) -> str:
    """`tasks: 3 queued in celery (oldest 12 s), 1 running (for 40 s)`, red when one is overdue."""
    def age(seconds: float | None) -> str:
        return f"{seconds:.0f} s" if seconds is not None else "?"

    parts = [f"{q['queued']} queued in {q['queue']}" + (f" (oldest {age(q['oldest_queued_s'])})" if q["queued"] else "")
             for q in tasks["queues"]]
    running = f"{tasks['running']} running" + (f" (for {age(tasks['oldest_running_s'])})" if tasks["running"] else "")
    if tasks["overdue"]:
        running = f"[red]{running}: past the {tasks['time_limit_s']} s limit[/]"
    return f"tasks: {', '.join(parts)}, {running}"


@app.command()
def restart(
    name: str = typer.Argument(..., help="Instance name."),
    component: Optional[str] = typer.Argument(None, help="web, worker, beat, postgres or redis; Superset's processes when empty."),
) -> None:
    """Restart an instance's Superset processes, or one component, and wait until it serves.

    web is reloaded gracefully (no request is dropped); the worker finishes its running tasks
    first (within the spec's tasks.shutdown_grace_s; the rest run again after it) and queued ones
    wait; postgres and redis restart only when named (their clients see errors meanwhile).

    Example: setpoint restart demo web
    """
    with console.status(f"restarting {name}"):
        for sentence in lifecycle.restart(home(), name, component):
            done(sentence)


@app.command()
def down(name: str = typer.Argument(..., help="Instance name.")) -> None:
    """Stop an instance; keep its config, secrets and data (start it again with up).

    Example: setpoint down demo
    """
    for sentence in lifecycle.down(home(), name) or [f"{name} was not running"]:
        done(sentence)


@app.command()
def destroy(
    name: str = typer.Argument(..., help="Instance name."),
    yes: bool = typer.Option(False, "--yes", help="Confirm: everything of the instance is deleted."),
) -> None:
    """Stop an instance and delete everything it had, data included.

    Example: setpoint destroy demo --yes
    """
    if not yes:
        raise SetpointError(f"destroy deletes every file and all data of '{name}'", f"confirm with: setpoint destroy {name} --yes")
    for sentence in lifecycle.destroy(home(), name):
        done(sentence)


@app.command()
def logs(
    name: str = typer.Argument(..., help="Instance name."),
    components: Optional[list[str]] = typer.Argument(None, help="web, worker, beat, postgres, redis, access; all when none."),
    since: str = typer.Option("1d", "--since", help="How far back: 30s, 10m, 2h, 1d or a time (2026-11-30T08:00)."),
    grep: Optional[str] = typer.Option(None, "--grep", help="Only records that contain this text."),
    lines: int = typer.Option(50, "--lines", "-n", help="How many records from the end."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new records."),
    format: Format = typer.Option(Format.table, "--format", help="table or json (one record per line)."),
) -> None:
    """Show an instance's logs from the host's central log store, components merged in time order.

    Example: setpoint logs demo web postgres --since 10m --grep ERROR
    """
    wanted = lifecycle.require_records(home(), name, components or [])

    def show(record) -> None:
        print(json.dumps(record.__dict__) if format is Format.json else record.line(), flush=True)

    found = list(logstore.read(home(), name, wanted, logstore.parse_since(since), grep))
    for record in found[-lines:] if lines else found:
        show(record)
    if follow:
        try:
            for record in logstore.follow(home(), name, wanted, grep):
                show(record)
        except KeyboardInterrupt:
            pass


@app.command()
def audit(
    name: str = typer.Argument(..., help="Instance name."),
    user: Optional[str] = typer.Option(None, "--user", help="Only this user's records."),
    since: str = typer.Option("1d", "--since", help="How far back: 30s, 10m, 2h, 1d or a time (2026-11-30T08:00)."),
    format: Format = typer.Option(Format.table, "--format", help="table or json (one record per line)."),
) -> None:
    """Show an instance's audit trail: logins, failed logins, logouts, changes of access, queries,
    chart and dashboard views, from the host's central log store.

    Example: setpoint audit demo --user admin --since 1d
    """
    lifecycle.require_records(home(), name, [])
    for entry in logstore.audit_records(home(), name, logstore.parse_since(since), user):
        if format is Format.json:
            print(json.dumps(entry))
            continue
        details = " ".join(f"{key}={value}" for key, value in entry.items() if key not in ("time", "event", "user"))
        print(f"{entry.get('time', '')[:23].replace('T', ' ')} {entry.get('user') or '-':<12} {entry.get('event', ''):<32} {details}")


@app.command("probe-config")
def probe_config(
    output: Path = typer.Option(..., "--output", help="Directory to write blackbox.yml and the CA bundle into."),
    ca_path: Path = typer.Option(Path("/etc/prometheus/setpoint-ca.pem"), "--ca-path",
                                 help="Where the CA bundle will be on the probe point's host."),
    format: Format = typer.Option(Format.table, "--format", help="table or json."),
) -> None:
    """Write the configuration of a probe point: a prometheus-blackbox-exporter on another host or
    network that asks this host's instances for /health, the login page and one chart's data, as
    their users would (it holds no credential: the chart's check answers only OK or not).

    Example: setpoint probe-config --output /tmp/probe --ca-path /etc/prometheus/setpoint-ca.pem
    """
    config, ca = monitoring.write_probe_point_config(home(), output, ca_path)
    if format is Format.json:
        print(json.dumps({"config": str(config), "ca": str(ca), "ca_path": str(ca_path)}))
        return
    out.print(f"wrote {config} and {ca}. On the probe point's host:\n"
              f"  1. put {ca.name} at {ca_path} and blackbox.yml beside it;\n"
              f"  2. run: prometheus-blackbox-exporter --config.file={ca_path.parent}/blackbox.yml "
              f"--web.listen-address=:9115 (reachable from this host only);\n"
              f"  3. add HOST:9115 to probes.points in each instance's spec, then run: setpoint up NAME --spec FILE")


@app.command("clear-cache")
def clear_cache(
    name: str = typer.Argument(..., help="Instance name."),
    everything: bool = typer.Option(False, "--all", help="Also the filter and Explore state users have not saved."),
    format: Format = typer.Option(Format.table, "--format", help="table or json."),
) -> None:
    """Delete an instance's cached chart results, metadata and thumbnails, e.g. after a data fix.

    Queued tasks, SQL Lab results, sessions and rate limits are never touched; users' unsaved
    filter and Explore state only with --all. The next opening of each dashboard queries again.

    Example: setpoint clear-cache demo
    """
    from setpoint.render import CACHES

    deleted = lifecycle.clear_caches(home(), name, everything)
    if format is Format.json:
        print(json.dumps(deleted))
        return
    for prefix, keys in deleted.items():
        done(f"deleted {keys} key{'s' if keys != 1 else ''} of the {prefix} cache ({CACHES[prefix].holds})")


@app.command()
def roles(
    name: str = typer.Argument(..., help="Instance name."),
    repair: bool = typer.Option(False, "--repair", help="First put declared roles, rules and withheld permissions back."),
    format: Format = typer.Option(Format.table, "--format", help="table or json."),
) -> None:
    """Audit an instance's roles and row-level security against its spec.

    Lists the roles no one declared, declared roles whose permissions were changed by hand,
    roles that open SQL Lab without the spec allowing it, roles holding what only admins may,
    users holding Admin whom the spec's admins do not name, and for each multi-tenant dataset
    the roles that read it and whether a rule filters them. With --repair, declared roles, rules
    and withheld permissions are put back first (roles no one declared stay: delete them in
    Superset). Exits 1 when anything drifted.

    Example: setpoint roles demo --repair
    """
    from setpoint.checklist.evidence import Evidence
    from setpoint.identity import access

    if repair:
        from setpoint.runtime.local.converge import ensure_access
        from setpoint.runtime.local.instance import instance_lock, load_context
        from setpoint.services.superset import SupersetCommands

        with instance_lock(home(), name, wait_s=300), console.status(f"putting the access of {name} back") as status:
            ctx = load_context(home(), name)
            ensure_access(ctx, SupersetCommands(ctx), ctx.paths.read_state(), done, status.update, repair=True)

    evidence = Evidence(lifecycle.managed_target(home(), name))
    if evidence.metadata is None:
        raise SetpointError(f"the metadata of {name} could not be read: {'; '.join(evidence.problems) or 'no answer'}",
                            f"see: setpoint status {name}")
    found = access.audit(evidence.metadata)
    drifted = bool(found["not_declared"] or found["drifted"] or found["sql_lab_not_allowed"] or found["withheld_held"]
                   or found["admins_not_declared"]
                   or any(d.get("unfiltered") or d.get("problem") for d in found["row_level_security"]))
    if format is Format.json:
        print(json.dumps(found))
    else:
        out.print(f"roles of {name}: {', '.join(found['roles'])}")
        for role in found["not_declared"]:
            done(f"warning: the role {role} is not in the spec (made by hand?)")
        for role in found["drifted"]:
            done(f"warning: the role {role['role']} drifted: added {', '.join(role['added']) or 'nothing'}; "
                 f"missing {', '.join(role['missing']) or 'nothing'}"
                 + (f"; not held by {', '.join(role['users_without_it'])}" if role.get("users_without_it") else "")
                 + f" (setpoint roles {name} --repair puts it back)")
        for role in found["sql_lab_not_allowed"]:
            done(f"warning: the role {role} opens SQL Lab, which row-level security does not filter")
        for user in found["admins_not_declared"]:
            done(f"warning: {user} holds Admin but is not in the spec's admins (add them there, or take Admin from them)")
        for role, held in found["withheld_held"].items():
            done(f"warning: the role {role} holds what only admins may: {', '.join(held)} (setpoint roles {name} --repair)")
        for dataset in found["row_level_security"]:
            if dataset.get("problem") or dataset.get("unfiltered"):
                done(f"warning: {dataset['dataset']}: {dataset.get('problem') or 'read unfiltered by ' + ', '.join(dataset['unfiltered'])}")
            else:
                done(f"{dataset['dataset']}: read by {', '.join(dataset['readers'])}; each filtered but "
                     f"{', '.join(dataset['all_rows'])} (all rows)")
        if not drifted:
            done("no drift from the spec")
    if drifted:
        raise typer.Exit(1)


@app.command("rotate-secret")
def rotate_secret(
    name: str = typer.Argument(..., help="Instance name."),
    format: Format = typer.Option(Format.table, "--format", help="table or json."),
) -> None:
    """Give an instance a new SECRET_KEY (after a leak, or on a schedule).

    Re-encrypts the database passwords the metadata keeps, restarts Superset on the new key, ends
    every session (everyone logs in again) and takes a full backup, which escrows the new key.

    Example: setpoint rotate-secret demo
    """
    from setpoint.operations import rotation

    with console.status(f"rotating the SECRET_KEY of {name}") as status:
        rotated = rotation.rotate(home(), name, step=lambda message: status.update(message))
    if format is Format.json:
        print(json.dumps(dataclasses.asdict(rotated)))
        return
    done(f"re-encrypted {rotated.values_re_encrypted} stored secret(s) of {name} with a new SECRET_KEY "
         "and restarted Superset on it")
    done(f"ended {rotated.sessions_ended} session(s): everyone logs in again")
    done(f"took the full backup {rotated.backup}, which escrows the new key (the old one stays in the secret store)")


@app.command("end-sessions")
def end_sessions(
    name: str = typer.Argument(..., help="Instance name."),
    user: str = typer.Option(..., "--user", help="The username whose sessions end."),
    reason: str = typer.Option("", "--reason", help="Why, for the audit trail."),
) -> None:
    """Log a user out everywhere: every browser session, API access token and refresh token they
    hold is refused from now on; their password stays. A password change does the same by itself.

    Example: setpoint end-sessions demo --user alice --reason "laptop stolen"
    """
    from setpoint.identity.sessions import end_sessions as end

    end(home(), name, user, reason)
    done(f"ended every session and token of {user} on {name}: they sign in again")


@app.command("emergency-access")
def emergency_access(
    name: str = typer.Argument(..., help="Instance name."),
    ttl: str = typer.Option("1h", "--ttl", help="How long the admin lives: 30s to the spec's runbook.emergency_access_max_h."),
    reason: Optional[str] = typer.Option(None, "--reason", help="Why: recorded in the audit trail."),
    revoke: bool = typer.Option(False, "--revoke", help="Deactivate every emergency admin now."),
    show: bool = typer.Option(False, "--list", help="List the emergency admins, active and past."),
    format: Format = typer.Option(Format.table, "--format", help="table or json."),
) -> None:
    """Create a time-limited admin for when nobody can log in (identity provider down, admin password lost).

    Its password is printed once and stored nowhere. The grant, its reason and its end go into the
    audit trail; the host's scheduler deactivates the account when its time is over, which ends
    its sessions.

    Examples: setpoint emergency-access demo --ttl 1h --reason "IdP down, INC-1234"  |  setpoint emergency-access demo --revoke
    """
    from setpoint.operations import emergency
    from setpoint.runtime.local.instance import load_context

    ctx = load_context(home(), name)
    if show:
        grants = emergency.grants(ctx)
        if format is Format.json:
            print(json.dumps(grants))
        for g in [] if format is Format.json else grants:
            state = f"revoked {g['revoked_at'][:19]}" if g.get("revoked_at") else f"active until {g['expires_at'][:19]}"
            out.print(f"{g['username']}  {state}  granted {g['granted_at'][:19]}: {escape(g['reason'])}")
        if not grants and format is Format.table:
            out.print(f"no emergency admin was ever granted on {name}")
        return
    # No instance lock: break-glass access works while another command or a long backup holds it.
    if revoke:
        revoked = emergency.revoke_expired(ctx, everyone=True)
        done(f"deactivated {', '.join(revoked)}" if revoked else f"no emergency admin of {name} is active")
        return
    duration = logstore.parse_duration(ttl)
    if duration is None:
        raise InputError(f"'{ttl}' is not a duration", "give --ttl as 30s, 15m or 2h")
    with console.status(f"creating an emergency admin on {name}"):
        granted = emergency.grant(ctx, duration, reason or "")
    result = {"url": emergency.sign_in_url(ctx.spec), "username": granted.username, "password": granted.password,
              "expires": granted.expires.isoformat(timespec="seconds")}
    if format is Format.json:
        print(json.dumps(result))
        return
    print(f"url:      {result['url']}\nusername: {result['username']}\npassword: {result['password']}\n"
          f"expires:  {result['expires']} (deactivated then by the host's scheduler; end it sooner with: "
          f"{command_name()} emergency-access {name} --revoke)")


@app.command()
def runbook(
    name: str = typer.Argument(..., help="Instance name."),
    format: DocumentFormat = typer.Option(DocumentFormat.markdown, "--format", help="markdown or html."),
) -> None:
    """Print the instance's incident runbook: restart, clear the caches, emergency access, logs and
    alerts, slow dashboards, scaling, restoring to a time, with its real names and commands.

    `up` and the host's scheduler keep copies in every backup repository and the dashboards' git repository.

    Example: setpoint runbook demo --format html > demo-runbook.html
    """
    from setpoint.operations.runbook import render_runbook
    from setpoint.runtime.local.instance import load_context

    text = render_runbook(load_context(home(), name))
    if format is DocumentFormat.html:
        from markdown_it import MarkdownIt

        text = f"<!doctype html>\n<meta charset=utf-8>\n<title>Runbook: {name}</title>\n" + MarkdownIt("commonmark").enable("table").render(text)
    print(text, end="")


@app.command()
def alerts(
    name: str = typer.Argument(..., help="Instance name."),
    mailbox: bool = typer.Option(False, "--mailbox", help="The notifications delivered to the host's mailbox instead."),
    format: Format = typer.Option(Format.table, "--format", help="table or json."),
) -> None:
    """Show the alerts the host's Alertmanager is sending now about an instance or its host, or
    with --mailbox the notifications it delivered to the host's mailbox (where an instance's
    alerts go when its spec names no receiver).

    Example: setpoint alerts demo --format json
    """
    lifecycle.require_records(home(), name, [])
    if mailbox:
        from setpoint.observability.mailbox import messages

        delivered = messages(home().monitoring_dir / "mailbox", name)
        if format is Format.json:
            print(json.dumps([{"received": m.received.isoformat(timespec="seconds"), "subject": m.subject}
                              for m in delivered]))
            return
        if not delivered:
            out.print(f"the host's mailbox holds no notification about {name}")
        for message in delivered:
            out.print(f"{message.received:%Y-%m-%d %H:%M:%S}  {escape(message.subject)}")
        return
    try:
        firing = monitoring.Alertmanager(monitoring.monitoring_of(home())).alerts(name)
    except httpx.HTTPError as exc:
        raise SetpointError(f"the host's Alertmanager does not answer ({type(exc).__name__})",
                            f"start the host's services with: {command_name()} host start") from None
    if format is Format.json:
        print(json.dumps(firing))
        return
    if not firing:
        out.print(f"no alert is firing for {name} or its host")
    for alert in firing:
        out.print(f"{alert['since'][:19].replace('T', ' ')}  {alert['severity']:<5} {alert['alert']:<24} "
                  f"{alert['instance']:<10} {escape(alert['summary'])}")


@app.command("report-test")
def report_test(
    name: str = typer.Argument(..., help="Instance name."),
    to: str = typer.Option(..., "--to", help="The address that receives the e-mail."),
) -> None:
    """Send an e-mail now through the instance's Superset, as its alerts and reports do.

    Example: setpoint report-test demo --to ops@example.com
    """
    from setpoint.runtime.local.instance import load_context
    from setpoint.services.superset import SupersetCommands
    from setpoint.spec.model import EMAIL_PATTERN

    if not re.match(EMAIL_PATTERN, to):
        raise InputError(f"{to} is not an e-mail address", "give one like ops@example.com to --to")
    ctx = load_context(home(), name)
    if ctx.spec.smtp is None:
        raise InputError(f"{name}'s spec names no mail server, so it sends no e-mail",
                         f"add an smtp: section to the spec and run setpoint up {name} --spec FILE")
    with console.status(f"sending a test e-mail to {to} through {name}'s Superset"):
        SupersetCommands(ctx).send_test_mail(to)
    done(f"{name}'s Superset sent a test e-mail to {to} through {ctx.spec.smtp.host}:{ctx.spec.smtp.port}")


@app.command()
def credentials(
    name: str = typer.Argument(None, help="Instance name."),
    monitoring_login: bool = typer.Option(False, "--monitoring", help="The login of the host's Prometheus and Alertmanager instead."),
    format: Format = typer.Option(Format.table, "--format", help="table or json."),
) -> None:
    """Print the admin login of an instance, or of the host's monitoring (with emergency-access,
    the only commands that show a secret).

    Example: setpoint credentials demo --format json; setpoint credentials --monitoring
    """
    if monitoring_login:
        creds = monitoring.console_login(home())
    elif name is None:
        raise InputError("name an instance, or ask for the monitoring's login", "setpoint credentials NAME, or setpoint credentials --monitoring")
    else:
        creds = lifecycle.credentials(home(), name)
    if format is Format.json:
        print(json.dumps(creds))
    else:
        print(f"url:      {creds['url']}\nusername: {creds['username']}\npassword: {creds['password']}")


@app.command()
def doctor(
    install: bool = typer.Option(False, "--install", help="Install what is missing with apt-get (root)."),
) -> None:
    """Check this host's prerequisites and say how to install what is missing.

    Example: setpoint doctor --install
    """
    findings = doctor_module.examine()
    missing = doctor_module.missing_packages(findings)
    if install and missing:
        with console.status("installing " + " ".join(missing)):
            doctor_module.install(missing)
        findings = doctor_module.examine()
        missing = doctor_module.missing_packages(findings)
    for f in findings:
        mark = "[green]✓[/]" if f.ok else "[red]✗[/]"
        out.print(f"{mark} {f.binary:13} {f.path or 'missing (' + f.package + ')'}")
    if missing:
        raise SetpointError(
            f"missing: {', '.join(missing)}",
            "install with: " + " ".join(doctor_module.install_command(missing)) + " (or setpoint doctor --install)",
        )
    out.print("everything Setpoint needs is installed")


@app.command()
def spec(
    name: str = typer.Argument("demo", help="Instance name for the example."),
    schema: bool = typer.Option(False, "--schema", help="Print the JSON schema instead."),
) -> None:
    """Print a complete spec with the production defaults (or its JSON schema).

    Example: setpoint spec acme > acme.yaml
    """
    if schema:
        print(json.dumps(InstanceSpec.model_json_schema(), indent=2))
    else:
        print(yaml.safe_dump(load_spec(name).model_dump(mode="json"), sort_keys=False), end="")


host_app = typer.Typer(
    help="The host: Setpoint's own installation, its start at boot, and its capacity.\n\n"
    "Example: setpoint host",
    invoke_without_command=True,
)
app.add_typer(host_app, name="host")


@host_app.callback()
def host_main(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        ctx.invoke(host_status)


@host_app.command("status")
def host_status(format: Format = typer.Option(Format.table, "--format", help="table or json.")) -> None:
    """Show the host's instances with their memory and CPU, free disk, and how many more fit.

    Example: setpoint host status --format json
    """
    from setpoint.host.capacity import host_capacity

    capacity = host_capacity(home())
    if format is Format.json:
        out.print_json(json.dumps(capacity.to_dict()))
        return
    table = Table(title=f"host {default_home()}", title_justify="left")
    for column in ("instance", "desired", "processes", "memory (PSS) / limit", "CPU now / may use", "pids limit"):
        table.add_column(column)
    for i in capacity.instances:
        table.add_row(i.name, i.desired, str(i.processes), f"{i.memory_mib:,.0f} / {i.memory_limit_mib:,} MiB",
                      f"{i.cpu_percent:.0f} % / {i.cpu}", str(i.pids_limit))
    out.print(table)
    if not capacity.limits_enforced and capacity.instances:
        out.print("[yellow]limits are not enforced here: Setpoint needs root and writable cgroups with the memory, cpu "
                  "and pids controllers, v1 or v2 (mount | grep cgroup)[/]")
    out.print(f"memory: {capacity.memory_available_mib:,} of {capacity.memory_total_mib:,} MiB available, "
              f"{capacity.memory_committed_mib:,} MiB promised to the instances that are up")
    for disk in capacity.disks:
        out.print(f"disk of {disk.label}: {disk.free_mib / 1024:,.1f} of {disk.total_mib / 1024:,.1f} GiB free ({escape(disk.path)})")
    out.print(f"room for {capacity.more_instances} more instance(s) of the default size "
              f"({capacity.default_limit_mib:,} MiB limit each; limited by {capacity.limited_by})")


@host_app.command("install")
def host_install(
    unit_dir: Path = typer.Option(Path("/etc/systemd/system"), "--unit-dir", help="Where to write the systemd unit."),
) -> None:
    """Install Setpoint for the host and start it at boot (a systemd unit); run as root.

    Setpoint installs itself into SETPOINT_HOME/venvs/setpoint-VERSION-DIGEST, reached through
    SETPOINT_HOME/current; the host's services run from there, never from a checkout.

    Example: sudo setpoint host install
    """
    from setpoint.host import boot, installation
    from setpoint.home import SYSTEM_HOME, is_root
    from setpoint.runtime.local.platform import ensure_platform

    with console.status("installing Setpoint for the host") as status:
        ensure_platform(home(), log=done, step=lambda message: status.update(message))
    unit = boot.install_boot_unit(home(), unit_dir)
    if unit.changed:
        done(f"wrote {unit.path}, enabled at boot (by {unit.enabled_by})")
    if is_root() and home().root == SYSTEM_HOME and installation.link_command(home()):
        done(f"linked {installation.COMMAND_LINK} to {unit.command}")
    out.print(f"the host starts at boot with: {unit.command} host start")
    if not boot.is_systemd_running():
        out.print("this machine does not run systemd now: have its init system run that command at boot "
                  f"(for example the crontab line: @reboot SETPOINT_HOME={home().root} {unit.command} host start)")


@host_app.command("start")
def host_start(format: Format = typer.Option(Format.table, "--format", help="table or json.")) -> None:
    """Start the host's services and every instance whose desired state is up (what boot runs).

    Instances stopped with `setpoint down` stay down. Running it again changes nothing. Exit 3
    when the host runs but an instance did not come back healthy.

    Example: setpoint host start
    """
    from setpoint.host.boot import start_host

    with console.status("starting the host") as status:
        report_ = start_host(home(), log=lambda message: status.update(message))
    if format is Format.json:
        out.print_json(json.dumps(report_.to_dict()))
    else:
        if report_.started_supervisor:
            done("started the host's supervisord, Caddy and scheduler")
        for i in report_.instances:
            line = f"{i.name}: {i.outcome}" + (f" in {i.seconds:.0f} s" if i.outcome == "healthy" else "")
            (done if i.ok else lambda text: console.print(f"  [red]✗[/] {escape(text)}"))(line)
        out.print(f"host started in {report_.seconds:.0f} s")
    if not report_.ok:
        raise typer.Exit(3)


@host_app.command("stop")
def host_stop() -> None:
    """Stop every instance and the host's services; each instance's desired state is kept.

    Example: setpoint host stop
    """
    from setpoint.host.boot import stop_host

    done("stopped the host's supervisord and every process under it" if stop_host(home()) else "the host was not running")


@app.command()
def version() -> None:
    """Print Setpoint's version."""
    print(__version__)


def main() -> None:
    """Entry point: run the CLI, turning Setpoint errors into two readable lines."""
    try:
        app()
    except SetpointError as exc:
        if State.debug:
            raise
        console.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False)
        if exc.hint:
            console.print(f"[bold]hint:[/] {escape(exc.hint)}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console.print("interrupted: the instance keeps whatever state it had reached; run up again to converge")
        sys.exit(130)


if __name__ == "__main__":
    main()
