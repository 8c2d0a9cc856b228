"""The host's metrics: Prometheus and the node exporter, under the host's supervisord as the
account `setpoint-monitor`, each on a loopback port of its own (chosen once per host and kept in
monitoring/ports.json), and Caddy's metrics on a third.

Prometheus scrapes itself, the host, Caddy and every instance's Superset: `up` publishes an
instance as a file under monitoring/targets/ (file-based discovery: nothing restarts when
instances come and go), waits until Prometheus has scraped it, and `down`/`destroy` withdraw it.
Checklist point 19 asks the same Prometheus whether those targets are up.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import httpx

from setpoint import proc
from setpoint.errors import SetpointError
from setpoint.home import Home, chown, is_root, monitor_user, write_file
from setpoint.net import is_port_free
from setpoint.render import InstanceContext, Monitoring, render_alert_rules, render_prometheus_config
from setpoint.runtime.local.accounts import ensure_account

FIRST_PORT = 19090  # where the search for the host's monitoring ports starts
PORT_NAMES = ("prometheus", "node_exporter", "caddy_metrics")


def monitoring_of(home: Home) -> Monitoring:
    """The host's monitoring services, with their ports (allocated the first time)."""
    ports_file = home.monitoring_dir / "ports.json"
    ports = json.loads(ports_file.read_text()) if ports_file.exists() else {}
    if set(PORT_NAMES) - set(ports):
        port = FIRST_PORT
        for name in PORT_NAMES:
            while name not in ports:
                if port not in ports.values() and is_port_free(port, "127.0.0.1"):
                    ports[name] = port
                port += 1
        write_file(ports_file, json.dumps(ports, indent=2, sort_keys=True) + "\n")
    return Monitoring(
        user=monitor_user(),
        prometheus_bin=proc.find_binary("prometheus"),
        node_exporter_bin=proc.find_binary("prometheus-node-exporter"),
        prometheus_port=ports["prometheus"],
        node_exporter_port=ports["node_exporter"],
        caddy_metrics_port=ports["caddy_metrics"],
    )


def prepare(home: Home, monitoring: Monitoring, log=lambda message: None) -> bool:
    """The account, directories and configuration of the host's monitoring; return whether
    Prometheus's configuration changed."""
    if is_root() and ensure_account(monitoring.user, "monitoring account"):
        log(f"created the account {monitoring.user} for Prometheus and the node exporter")
    base = home.monitoring_dir
    for directory in (base, base / "targets", base / "facts"):
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o755)
    storage = base / "prometheus"
    storage.mkdir(exist_ok=True)
    storage.chmod(0o700)
    chown(storage, monitoring.user)
    rules = write_file(base / "rules.yml", render_alert_rules())
    return write_file(base / "prometheus.yml", render_prometheus_config(home, monitoring)) or rules


def targets_file(home: Home, name: str):
    return home.monitoring_dir / "targets" / f"{name}.json"


def publish(home: Home, ctx: InstanceContext) -> bool:
    """Have Prometheus scrape the instance's Superset; return whether that is new or changed."""
    target = [{"targets": [f"127.0.0.1:{ctx.ports.web}"], "labels": {"setpoint_instance": ctx.spec.name}}]
    return write_file(targets_file(home, ctx.spec.name), json.dumps(target, indent=2) + "\n")


def withdraw(home: Home, name: str) -> None:
    targets_file(home, name).unlink(missing_ok=True)


@dataclass(frozen=True)
class Target:
    job: str
    url: str
    health: str  # up, down or unknown (not scraped yet)
    error: str
    instance: str | None


class Prometheus:
    """The host's Prometheus, over its HTTP API on loopback."""

    def __init__(self, monitoring: Monitoring) -> None:
        self.url = f"http://127.0.0.1:{monitoring.prometheus_port}"

    def targets(self) -> list[Target]:
        response = httpx.get(f"{self.url}/api/v1/targets", params={"state": "active"}, timeout=10)
        response.raise_for_status()
        return [Target(t["labels"].get("job", ""), t["scrapeUrl"], t["health"], t.get("lastError", ""),
                       t["labels"].get("setpoint_instance"))
                for t in response.json()["data"]["activeTargets"]]

    def query(self, expression: str) -> list[dict]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expression}, timeout=10)
        response.raise_for_status()
        return response.json()["data"]["result"]

    def alert_rules(self) -> dict[str, str]:
        """Every alert rule Prometheus has loaded, with its state (inactive, pending, firing)."""
        response = httpx.get(f"{self.url}/api/v1/rules", params={"type": "alert"}, timeout=10)
        response.raise_for_status()
        return {rule["name"]: rule["state"] for group in response.json()["data"]["groups"] for rule in group["rules"]}

    def scraped(self, name: str) -> list[Target]:
        """The targets that observe instance `name`: its Superset, and the host."""
        return [t for t in self.targets() if t.instance == name or t.job == "node"]


def wait_scraped(home: Home, name: str, timeout: float = 90) -> None:
    """Wait until Prometheus scrapes instance `name`'s Superset and the host successfully."""
    prometheus = Prometheus(monitoring_of(home))
    deadline = time.monotonic() + timeout
    seen: list[Target] = []
    while time.monotonic() < deadline:
        try:
            seen = prometheus.scraped(name)
        except httpx.HTTPError:
            seen = []
        if {t.job for t in seen if t.health == "up"} >= {"superset", "node"}:
            return
        time.sleep(2)
    states = ", ".join(f"{t.job} {t.health}{': ' + t.error if t.error else ''}" for t in seen) or "no target"
    raise SetpointError(f"Prometheus does not scrape {name} within {timeout:.0f} s ({states})",
                        f"see {home.monitoring_dir}/prometheus.log, then run: setpoint up {name}")
