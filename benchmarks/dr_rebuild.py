"""The recovery time objective, measured: how long `setpoint dr rebuild` takes to bring a destroyed
instance back from its off-site repository alone, for the demo instance and for a metadata
database grown to 1 GiB.

Each case runs on a throwaway SETPOINT_HOME with an S3-compatible server on loopback (moto behind
TLS): create the instance (the baseline: a new instance from nothing, measured in the same run),
grow its metadata if asked, back it up to both repositories, destroy it completely, rebuild it,
and check that the old admin password and every dashboard, chart and dataset came back.

    make bench-dr                                   # both cases (about 10 minutes)
    .venv/bin/python -m benchmarks.dr_rebuild --case demo
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import throwaway_home
from setpoint.backup.drill import metadata_counts
from setpoint.backup.pgbackrest import PgBackRest
from setpoint.backup.rebuild import rebuild_from_offsite
from setpoint.backup.service import take_backup
from setpoint.home import Home
from setpoint.net import http_client
from setpoint.runtime.local import converge, lifecycle
from setpoint.runtime.local.instance import load_context
from setpoint.secret import SecretStore
from setpoint.services.postgres import cluster_of
from setpoint.spec import parse_spec
from setpoint.superset_api import SupersetClient
from tests.s3_server import S3Endpoint, free_port

GIB = 2**30
TARGET_RTO_S = 4 * 3600  # the checklist's disaster-recovery target
# Superset's action log is what grows in a long-lived metadata database: rows shaped like its own.
GROW_LOGS_SQL = """
INSERT INTO logs (action, user_id, json, dttm, dashboard_id, slice_id, duration_ms, referrer)
SELECT 'ChartRestApi.data', 1,
       json_build_object('path', '/api/v1/chart/data', 'chart_id', g % 1000,
                         'query_hash', md5(g::text || random()::text), 'rowcount', (random() * 10000)::int,
                         'sql', 'SELECT country, sum(revenue) FROM sales WHERE region = ''' || md5(random()::text)
                                || ''' GROUP BY 1 ORDER BY 2 DESC LIMIT 100')::text,
       now() - make_interval(secs => g), 1, g % 1000, (random() * 2000)::int,
       'https://demo.localhost/superset/dashboard/1/'
FROM generate_series(1, 500000) AS g
"""


@dataclass
class Case:
    name: str
    examples: bool
    metadata_bytes: int  # grow the metadata database to at least this size (0: as created)


CASES = {
    "demo": Case("demo", examples=True, metadata_bytes=0),
    "1gib": Case("1gib", examples=False, metadata_bytes=GIB),
}


@dataclass
class Timeline:
    """When each progress step of a converge started, to split a duration into its phases."""

    started: float = field(default_factory=time.monotonic)
    steps: list[tuple[float, str]] = field(default_factory=list)

    def __call__(self, message: str) -> None:
        self.steps.append((time.monotonic(), message))

    def phases(self, ended: float) -> list[tuple[str, float]]:
        marks = self.steps + [(ended, "")]
        return [(message, marks[i + 1][0] - at) for i, (at, message) in enumerate(self.steps)]

    def until(self, message: str, ended: float) -> float:
        """Seconds from the start to the first step that begins with `message` (or to the end)."""
        return next((at for at, m in self.steps if m.startswith(message)), ended) - self.started


def grow_metadata(home: Home, name: str, target: int) -> int:
    cluster = cluster_of(load_context(home, name))
    size = int(cluster.sql("SELECT pg_database_size('superset')"))
    while size < target:
        cluster.sql(GROW_LOGS_SQL, database="superset", timeout=1800)
        size = int(cluster.sql("SELECT pg_database_size('superset')"))
        print(f"    metadata database: {size / GIB:.2f} GiB", flush=True)
    return size


def run_case(home: Home, endpoint: S3Endpoint, case: Case, https_port: int, http_port: int) -> dict:
    name = f"rto-{case.name}"
    bucket = f"{name}-offsite"
    endpoint.create_bucket(bucket)
    spec = parse_spec({"name": name, "https_port": https_port, "http_port": http_port, "examples": case.examples,
                       "concurrent_users": 10, "backup": {"offsite": endpoint.spec(bucket)}})
    print(f"[{case.name}] creating {name} from nothing (the baseline)", flush=True)
    created = converge.up(home, spec)
    grown_s = backup_s = 0.0
    if case.metadata_bytes:
        started = time.monotonic()
        grow_metadata(home, name, case.metadata_bytes)
        grown_s = time.monotonic() - started
        print(f"[{case.name}] backing up the grown metadata to both repositories", flush=True)
        started = time.monotonic()
        take_backup(load_context(home, name), "full")
        backup_s = time.monotonic() - started
    ctx = load_context(home, name)
    before = metadata_counts(cluster_of(ctx))
    metadata_size = int(cluster_of(ctx).sql("SELECT pg_database_size('superset')"))
    offsite_bytes = sum(b.repo_bytes for b in PgBackRest(ctx).backups() if b.repo == 2)
    secrets = SecretStore(ctx.paths.secrets_file).load()

    print(f"[{case.name}] destroying {name}, then rebuilding it from the off-site repository", flush=True)
    lifecycle.destroy(home, name)
    timeline = Timeline()
    rebuilt = rebuild_from_offsite(home, spec, secrets["recovery_key"], step=timeline)
    ended = time.monotonic()

    after = metadata_counts(cluster_of(load_context(home, name)))
    with http_client(rebuilt.url, ca_file=rebuilt.ca_root) as client:
        logged_in = SupersetClient(client).login("admin", secrets["admin_password"]).status_code == 200
    if before != after or not logged_in:
        raise SystemExit(f"[{case.name}] the rebuild lost data: before {before}, after {after}, login {logged_in}")
    lifecycle.destroy(home, name)
    serving_s = timeline.until("taking the first full backup", ended)
    return {
        "case": case.name,
        "metadata_bytes": metadata_size,
        "offsite_backup_bytes": offsite_bytes,
        "create_from_nothing_s": round(created.seconds, 1),
        "grow_s": round(grown_s, 1),
        "full_backup_both_repos_s": round(backup_s, 1),
        "rebuild_until_serving_s": round(serving_s, 1),
        "rebuild_total_s": round(ended - timeline.started, 1),
        "rebuild_vs_create_ratio": round(serving_s / created.seconds, 2),
        "share_of_4h_target": round(serving_s / TARGET_RTO_S, 4),
        "phases_s": {message: round(seconds, 1) for message, seconds in timeline.phases(ended)},
    }


def print_table(results: list[dict]) -> None:
    print()
    print(f"{'case':6} {'metadata':>9} {'off-site':>9} {'create':>8} {'rebuild→serving':>16} {'ratio':>6} {'of 4 h':>7} {'rebuild total':>14}")
    for r in results:
        print(f"{r['case']:6} {r['metadata_bytes'] / 2**20:>7.0f}Mi {r['offsite_backup_bytes'] / 2**20:>7.0f}Mi "
              f"{r['create_from_nothing_s']:>7.1f}s {r['rebuild_until_serving_s']:>15.1f}s "
              f"{r['rebuild_vs_create_ratio']:>6.2f} {r['share_of_4h_target']:>7.2%} {r['rebuild_total_s']:>13.1f}s")
    for r in results:
        print(f"\n{r['case']}: phases of the rebuild")
        for message, seconds in r["phases_s"].items():
            print(f"  {seconds:>7.1f} s  {message}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=sorted(CASES), action="append", help="run only this case (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    cases = [CASES[c] for c in (args.case or list(CASES))]

    with throwaway_home() as home:
        endpoint = S3Endpoint(home.root / "s3")
        try:
            endpoint.start()
            os.environ.update(endpoint.env)
            https_port, http_port = free_port(), free_port()
            results = [run_case(home, endpoint, case, https_port, http_port) for case in cases]
        finally:
            endpoint.close()
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
