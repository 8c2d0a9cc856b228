"""The incident runbook of an instance: what to do when it misbehaves, with its real names,
paths and commands (restart, clear the caches, emergency access, logs and alerts, slowness,
scaling, restoring to a time). Every command sits in a `sh` code block, alone on its line, so
that a test can run them all against a test instance and the runbook cannot rot."""

from __future__ import annotations

import re

from setpoint.operations import emergency
from setpoint.render import CACHES, REDIS_DB, InstanceContext, instance_programs, render_template

FILE = "runbook.md"
CODE_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)


def render_runbook(ctx: InstanceContext) -> str:
    return render_template("runbook.md.j2", ctx=ctx, spec=ctx.spec, paths=ctx.paths, sizing=ctx.sizing,
                           programs=instance_programs(ctx), redis_db=REDIS_DB, caches=CACHES,
                           sign_in_url=emergency.sign_in_url(ctx.spec))


def commands(markdown: str) -> list[str]:
    """Every command of the runbook's code blocks, in order."""
    return [line.strip() for block in CODE_BLOCK.findall(markdown) for line in block.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def gaps(ctx: InstanceContext, markdown: str) -> list[str]:
    """What a copy of the runbook fails to name of the instance as it is now (empty: current)."""
    name = ctx.spec.name
    needles = {f"Superset {ctx.spec.superset_version}": f"**Superset {ctx.spec.superset_version}**",
               "how to restart": f"setpoint restart {name}\n",
               "how to clear the caches": f"setpoint clear-cache {name}",
               "emergency access": f"setpoint emergency-access {name} --ttl",
               "how to rotate the SECRET_KEY": f"setpoint rotate-secret {name}"}
    needles.update({f"the {p.component} component": f"`{name}-{p.component}`" for p in instance_programs(ctx)})
    return [what for what, needle in needles.items() if needle not in markdown]
