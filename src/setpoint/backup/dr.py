"""The disaster-recovery plan of an instance, rendered from what is actually configured."""

from __future__ import annotations

from setpoint.backup.service import backup_report, read_record
from setpoint.home import write_file
from setpoint.render import InstanceContext, render_template
from setpoint.secret import SecretStore


def plan_path(ctx: InstanceContext):
    return ctx.paths.root / "docs" / "disaster-recovery.md"


def render_plan(ctx: InstanceContext) -> str:
    """The plan, naming the backup repositories, the secrets and the steps, with the measured RTO."""
    report = backup_report(ctx)
    drill = read_record(ctx.paths).get("last_drill") or {}
    rto = f"{drill['seconds']} s (drill of {drill['at'][:10]})" if drill.get("ok") else "no successful drill yet"
    latest = ", ".join(f"{b.label} ({b.type}, {b.stopped:%Y-%m-%d %H:%M} UTC)" for b in report.backups[-3:]) or "none"
    window = (f"{report.window.earliest:%Y-%m-%d %H:%M:%S} to {report.window.latest:%Y-%m-%d %H:%M:%S} UTC"
              if report.window.earliest and report.window.latest else "empty")
    return render_template(
        "disaster-recovery.md.j2",
        spec=ctx.spec,
        paths=ctx.paths,
        service_user=ctx.service_user,
        rto=rto,
        offsite=None,
        latest_backups=latest,
        window=window,
        secret_keys=sorted(SecretStore(ctx.paths.secrets_file).load()),
    )


def write_plan(ctx: InstanceContext) -> str:
    text = render_plan(ctx)
    write_file(plan_path(ctx), text)
    return text
