"""Probes of the backups, monitoring and compliance points (14-25).

The machinery behind most of them (pgBackRest, observability, audit, runbooks, upgrades) comes
with later issues; until it exists these probes look for it on the running system, find
nothing, and fail with what they looked at. For a Superset that Setpoint does not manage, this
evidence is not visible from outside: the points are UNVERIFIED with what would verify them.
"""

from __future__ import annotations

from collections.abc import Callable

from setpoint.checklist.evidence import Evidence
from setpoint.checklist.model import Finding, combine, failed, passed, unverified
from setpoint.spec import supported_superset_versions


def artifact_probe(relative: str, absent: str, external: str) -> Callable[[Evidence], Finding]:
    """A probe that fails a managed instance while `relative` (under its directory) is missing."""

    def probe(ev: Evidence) -> Finding:
        managed = ev.target.managed
        if managed is None:
            return unverified(external)
        path = managed.paths.root / relative
        if not path.exists():
            return failed(f"{absent} (looked for {path})")
        return unverified(f"{path} exists but its probe is not written yet")

    probe.__name__ = f"probe_{relative.replace('/', '_').replace('.', '_').replace('-', '_')}"
    return probe


probe_backups = artifact_probe(
    "backup/pgbackrest.conf",
    "no pgBackRest repository, WAL archiving or restore test for this instance",
    "backups are not visible from outside: pgBackRest info of the metadata cluster and a restore-test record would verify it",
)
probe_offsite = artifact_probe(
    "backup/offsite.json",
    "no off-site backup repository",
    "off-site copies are not visible from outside: the repository listing with its age would verify it",
)
probe_dr_plan = artifact_probe(
    "docs/disaster-recovery.md",
    "no disaster-recovery plan for this instance",
    "a disaster-recovery plan naming the backup, the secrets and the steps would verify it",
)
probe_dashboard_export = artifact_probe(
    "export/.git",
    "dashboards have never been exported as YAML into git",
    "a git repository of dashboard exports less than 48 h old would verify it",
)
probe_central_logs = artifact_probe(
    "observability/logs.yaml",
    "logs stay in files on this host; nothing ships them to a central store",
    "the central log store's recent web, worker and database entries would verify it",
)
probe_metrics = artifact_probe(
    "observability/prometheus.yaml",
    "no Prometheus scrapes Superset or the host",
    "the Prometheus targets of Superset and its host would verify it",
)
probe_alerts = artifact_probe(
    "observability/alerts.yaml",
    "no alert rules for CPU, 5xx rate or backup failure",
    "alert rules for CPU, 5xx and backup failure with a receiver would verify it",
)
probe_synthetic = artifact_probe(
    "observability/synthetic.json",
    "no synthetic check calls /health from outside",
    "an external check of /health every 60 s from 3 points with recent results would verify it",
)
probe_audit = artifact_probe(
    "observability/audit.yaml",
    "logins and queries are logged only inside the instance's own metadata database",
    "an audit store outside the instance with logins, logouts and queries would verify it",
)
probe_gdpr = artifact_probe(
    "docs/gdpr.md",
    "no processing register and no tested erasure procedure",
    "a processing register and a tested erasure record would verify it",
)
probe_runbook = artifact_probe(
    "docs/runbook.md",
    "no incident runbook for this instance",
    "a runbook outside the instance (restart, clear cache, emergency user) would verify it",
)


def probe_updates(ev: Evidence) -> Finding:
    version = (ev.config_section("superset") or {}).get("version")
    newest = supported_superset_versions()[-1]
    parts = []
    if version is None:
        parts.append(unverified("the running Superset version is unknown: give --config"))
    elif [int(x) for x in version.split(".")[:2]] < [int(x) for x in newest.split(".")[:2]]:
        parts.append(failed(f"Superset {version} runs; {newest} is the newest supported release"))
    else:
        parts.append(passed(f"Superset {version} is the newest supported release"))
    managed = ev.target.managed
    if managed is None:
        parts.append(unverified("a staging instance and a rollback path are not visible from outside"))
    elif not (managed.paths.root / "upgrades").exists():
        parts.append(failed("no staging rehearsal or rollback point for upgrades (setpoint upgrade is not built yet)"))
    return combine(parts)
