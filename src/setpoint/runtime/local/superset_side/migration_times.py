"""How long each metadata migration takes, while Setpoint runs `superset db upgrade`. Runs inside Superset.

Rendered verbatim beside superset_config.py, whose FLASK_APP_MUTATOR calls `record`. Only a process
started with SETPOINT_MIGRATION_TIMES (a file path) records anything: Alembic tells Flask-Migrate's
`on_version_apply` when each migration is applied, and each one's time runs from the end of the one
before (the first from the start of the run). One JSON line per migration: revision, its message,
seconds. Superset's own migration log carries no times.
"""

from __future__ import annotations

import json
import os
import time


def record(app) -> None:
    path = os.environ.get("SETPOINT_MIGRATION_TIMES")
    if not path or "migrate" not in app.extensions:
        return
    from alembic.runtime.migration import MigrationContext

    last = [time.monotonic()]
    run_migrations = MigrationContext.run_migrations

    def timed_run(self, *args, **kwargs):
        last[0] = time.monotonic()
        return run_migrations(self, *args, **kwargs)

    def applied(ctx, step, heads, run_args) -> None:
        now = time.monotonic()
        entry = {"revision": step.up_revision_id, "message": (step.up_revision.doc or "").strip()[:120],
                 "seconds": round(now - last[0], 2)}
        with open(path, "a") as out:
            out.write(json.dumps(entry) + "\n")
        last[0] = now

    MigrationContext.run_migrations = timed_run
    app.extensions["migrate"].configure_args["on_version_apply"] = applied
