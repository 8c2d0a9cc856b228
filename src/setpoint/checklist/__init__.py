"""The 25-point production scorecard: definitions, probes, and one result model for every format."""

from __future__ import annotations

import time

from setpoint.checklist.catalog import CHECKS
from setpoint.checklist.evidence import Evidence, ManagedInstance, Target
from setpoint.checklist.model import CheckResult, Scorecard, Status

__all__ = ["CHECKS", "ManagedInstance", "Target", "run_scorecard"]


def run_scorecard(target: Target, name: str | None = None) -> Scorecard:
    """Probe every point of the checklist against `target`; never raises for what it finds."""
    started = time.monotonic()
    evidence = Evidence(target)
    managed = target.managed is not None
    results = []
    try:
        for check in CHECKS:
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
            results.append(CheckResult(check, status, text, remedy))
    finally:
        evidence.close()
    return Scorecard(
        target=name if managed and name else target.url,
        managed=managed,
        results=results,
        problems=evidence.problems,
        seconds=time.monotonic() - started,
    )
