"""One scorecard, four formats: a terminal table, JSON, JUnit XML and Markdown."""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

from rich.console import Console
from rich.table import Table

from setpoint.checklist.model import Scorecard, Section, Status

COLOUR = {Status.PASS: "green", Status.FAIL: "red", Status.UNVERIFIED: "yellow"}


def print_table(card: Scorecard, console: Console) -> None:
    """Grouped by the checklist's sections, with evidence and, for what fails, the fix."""
    for section in Section:
        rows = [r for r in card.results if r.check.section is section]
        table = Table(title=section.value, title_justify="left", show_lines=False, expand=True)
        table.add_column("#", justify="right", width=3)
        table.add_column("status", width=10)
        table.add_column("check", ratio=2)
        table.add_column("evidence / fix", ratio=3)
        for r in rows:
            detail = r.evidence + (f"\n[dim]fix: {r.remedy}[/]" if r.remedy else "")
            table.add_row(str(r.check.id), f"[{COLOUR[r.status]}]{r.status.value}[/]", r.check.title, detail)
        console.print(table)
    for problem in card.problems:
        console.print(f"[yellow]could not gather:[/] {problem}")
    console.print(f"[bold]score {card.score}/{card.max}: {card.level}[/]  ({card.seconds:.1f} s)")


def to_json(card: Scorecard) -> str:
    return json.dumps(card.to_dict(), indent=2)


def to_junit(card: Scorecard) -> str:
    """One testcase per point: FAIL is a failure, UNVERIFIED is skipped (never passed)."""
    suite = ET.Element(
        "testsuite",
        name=f"setpoint check {card.target}",
        tests=str(card.max),
        failures=str(sum(r.status is Status.FAIL for r in card.results)),
        skipped=str(sum(r.status is Status.UNVERIFIED for r in card.results)),
        time=f"{card.seconds:.3f}",
    )
    for r in card.results:
        case = ET.SubElement(suite, "testcase", classname=f"checklist.{r.check.section.name}",
                             name=f"{r.check.id:02d} {r.check.key}")
        if r.status is Status.FAIL:
            ET.SubElement(case, "failure", message=r.evidence).text = f"fix: {r.remedy}"
        elif r.status is Status.UNVERIFIED:
            ET.SubElement(case, "skipped", message=r.evidence)
        ET.SubElement(case, "system-out").text = r.evidence
    suites = ET.Element("testsuites")
    suites.append(suite)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)


def to_markdown(card: Scorecard) -> str:
    """A report to hand to a security reviewer."""
    lines = [f"# Production scorecard: {card.target}", "",
             f"**Score: {card.score}/{card.max}, {card.level}.** Levels: 0-10 POC, 11-18 internal use, "
             "19-23 solid production, 24-25 exemplary.", ""]
    for section in Section:
        lines += [f"## {section.value}", "", "| # | status | check | evidence | fix |", "|---|---|---|---|---|"]
        for r in (r for r in card.results if r.check.section is section):
            cells = [str(r.check.id), r.status.value, r.check.title, r.evidence, r.remedy or ""]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines.append("")
    if card.problems:
        lines += ["## Evidence that could not be gathered", ""] + [f"- {p}" for p in card.problems] + [""]
    return "\n".join(lines)
