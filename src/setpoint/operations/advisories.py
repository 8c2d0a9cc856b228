"""Known security advisories of the Superset versions Setpoint supports (constraints/advisories.yaml,
kept with the constraints files), and which version each instance runs."""

from __future__ import annotations

import operator
from functools import cache
from importlib import resources

import yaml

from setpoint.home import Home
from setpoint.spec import supported_superset_versions, version_key

COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq}


@cache
def advisories() -> list[dict]:
    """Every advisory: id, affected (e.g. '>= 5.0.0, < 5.0.1'), fixed, impact, source."""
    return yaml.safe_load((resources.files("setpoint") / "constraints" / "advisories.yaml").read_text())["ADVISORIES"]


def affects(advisory: dict, version: str) -> bool:
    """Whether `version` is in the advisory's affected ranges ("< 4.1.2", ">= 3.0.0, < 3.0.2 || < 2.1.3")."""
    def within(bounds: str) -> bool:
        clauses = [clause.strip().partition(" ") for clause in bounds.split(",")]
        return all(COMPARE[op](version_key(version), version_key(bound.strip())) for op, _, bound in clauses)

    return any(within(branch) for branch in advisory["affected"].split("||"))


def of_version(version: str) -> list[dict]:
    """The advisories that affect `version`, unfixed in it."""
    return [a for a in advisories() if affects(a, version)]


def version_table(home: Home, name: str | None = None) -> list[dict]:
    """Each supported version (oldest first) with its advisories and the instances that run it."""
    from setpoint.runtime.local.instance import require_instance, saved_spec

    if name is not None:
        running = {name: require_instance(home, name)[1].superset_version}
    else:
        running = {n: spec.superset_version for n in home.instance_names() if (spec := saved_spec(home.instance(n)))}
    supported = supported_superset_versions()
    return [{"version": v, "newest": v == supported[-1], "advisories": of_version(v),
             "instances": sorted(n for n, running_version in running.items() if running_version == v)}
            for v in supported]
