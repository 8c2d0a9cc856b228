"""The scorecard's data: statuses, one check's definition, its result, and the levels."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from setpoint.checklist.evidence import Evidence


class Status(str, enum.Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    UNVERIFIED = "UNVERIFIED"  # what was given cannot show it: never counted as passed


class Section(str, enum.Enum):
    security = "Security"
    performance = "Performance"
    backups = "Backups and continuity"
    monitoring = "Monitoring"
    compliance = "Compliance and operations"


@dataclass(frozen=True)
class Finding:
    """What a probe saw: a status, the evidence in one or two sentences, and (optionally) a
    remedy more specific than the check's own."""

    status: Status
    evidence: str
    remedy: str | None = None


def passed(evidence: str) -> Finding:
    return Finding(Status.PASS, evidence)


def failed(evidence: str, remedy: str | None = None) -> Finding:
    return Finding(Status.FAIL, evidence, remedy)


def unverified(evidence: str) -> Finding:
    return Finding(Status.UNVERIFIED, evidence)


def combine(parts: list[Finding]) -> Finding:
    """Several sub-checks as one: any FAIL fails, else any UNVERIFIED leaves it unverified."""
    evidence = "; ".join(p.evidence for p in parts)
    remedy = next((p.remedy for p in parts if p.remedy and p.status is not Status.PASS), None)
    for status in (Status.FAIL, Status.UNVERIFIED):
        if any(p.status is status for p in parts):
            return Finding(status, evidence, remedy)
    return Finding(Status.PASS, evidence)


@dataclass(frozen=True)
class Check:
    """One point of the production checklist, defined once for `up` and `check`."""

    id: int
    key: str
    section: Section
    title: str  # the good state, as a sentence
    probe: Callable[[Evidence], Finding]
    remedy_managed: str  # for an instance Setpoint manages: which command or spec field fixes it
    remedy_external: str  # for any other Superset: what to configure


@dataclass(frozen=True)
class CheckResult:
    check: Check
    status: Status
    evidence: str
    remedy: str | None

    def to_dict(self) -> dict:
        return {
            "id": self.check.id,
            "key": self.check.key,
            "section": self.check.section.value,
            "title": self.check.title,
            "status": self.status.value,
            "evidence": self.evidence,
            "remedy": self.remedy,
        }


LEVELS = [(24, "exemplary"), (19, "solid production"), (11, "acceptable for internal use"), (0, "POC")]


def level_of(score: int) -> str:
    """The checklist's own levels: 0-10 POC, 11-18 internal use, 19-23 solid, 24-25 exemplary."""
    return next(name for floor, name in LEVELS if score >= floor)


@dataclass
class Scorecard:
    """Every check's result for one target (a managed instance or a URL)."""

    target: str
    managed: bool
    results: list[CheckResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # evidence that could not be gathered
    seconds: float = 0.0

    @property
    def score(self) -> int:
        return sum(r.status is Status.PASS for r in self.results)

    @property
    def max(self) -> int:
        return len(self.results)

    @property
    def level(self) -> str:
        return level_of(self.score)

    def failing(self) -> list[CheckResult]:
        return [r for r in self.results if r.status is not Status.PASS]

    def to_dict(self) -> dict:
        return {
            ("instance" if self.managed else "url"): self.target,
            "score": self.score,
            "max": self.max,
            "level": self.level,
            "problems": self.problems,
            "checks": [r.to_dict() for r in self.results],
        }
