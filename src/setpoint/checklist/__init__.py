"""The 25-point production scorecard: definitions, probes, and one result model for every format."""

from __future__ import annotations

import concurrent.futures
import time

from setpoint.checklist.catalog import CHECKS
from setpoint.checklist.evidence import Evidence, ManagedInstance, Target
from setpoint.checklist.model import Check, CheckResult, Scorecard, Status

__all__ = ["CHECKS", "ManagedInstance", "Target", "run_scorecard"]


# Probes wait mostly on the target (logins, Prometheus's queries, the forged cookies): run side by
# side, the scorecard takes about as long as its slowest chain of evidence.
PARALLEL_PROBES = 8


def run_scorecard(target: Target, name: str | None = None) -> Scorecard:
    """Probe every point of the checklist against `target`; never raises for what it finds."""
    started = time.monotonic()
    evidence = Evidence(target)
    managed = target.managed is not None
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=PARALLEL_PROBES) as pool:
            results = list(pool.map(lambda check: _result(check, evidence, managed, name), CHECKS))
    finally:
        evidence.close()
    return Scorecard(
        target=name if managed and name else target.url,
        managed=managed,
        results=results,
        problems=evidence.problems,
        seconds=time.monotonic() - started,
    )


def _result(check: Check, evidence: Evidence, managed: bool, name: str | None) -> CheckResult:
    """One point's result. Evidence is gathered once, whichever probe asks first (each piece is a
    cached property, which Python computes once under its own lock)."""
    try:
        finding = check.probe(evidence)
    except Exception as exc:  # noqa: BLE001 - one broken probe never stops the others
        finding = None
        status, text = Status.UNVERIFIED, f"the probe failed: {type(exc).__name__}: {exc}"
    if finding is not None:
        status, text = finding.status, finding.evidence
    remedy = None
    if status is not Status.PASS:
        base = check.remedy_managed if managed else check.remedy_external
        remedy = (finding.remedy if finding and finding.remedy else base).replace("NAME", name or "NAME")
    return CheckResult(check, status, text, remedy)
