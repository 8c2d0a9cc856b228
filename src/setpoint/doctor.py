"""`setpoint doctor`: are this host's prerequisites present, and how to install what is missing."""

from __future__ import annotations

import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from setpoint import proc
from setpoint.errors import SetpointError
from setpoint.home import is_root
from setpoint.services.superset import base_python

# The binaries a host needs, each with the Debian package that provides it (proc.APT_PACKAGE_OF).
PREREQUISITES = {binary: proc.APT_PACKAGE_OF[binary] for binary in (
    "postgres", "initdb", "pg_isready", "psql", "redis-server", "redis-cli", "caddy", "pgbackrest", "setcap",
    "useradd", "prometheus", "promtool", "prometheus-node-exporter", "prometheus-alertmanager", "amtool",
    "prometheus-blackbox-exporter", "prometheus-postgres-exporter", "prometheus-redis-exporter", "rsyslogd",
    "chromium", "chromedriver",
)}
# Units Debian's packages enable, which would serve with their own settings on every interface:
# Setpoint runs these programs itself, on loopback.
PACKAGED_UNITS = ("prometheus.service", "prometheus-node-exporter.service", "prometheus-alertmanager.service",
                  "prometheus-blackbox-exporter.service", "prometheus-postgres-exporter.service",
                  "prometheus-redis-exporter.service")


@dataclass(frozen=True)
class Finding:
    binary: str
    package: str
    path: str | None

    @property
    def ok(self) -> bool:
        return self.path is not None


def examine() -> list[Finding]:
    """Each prerequisite and where it was found (or None)."""
    findings = []
    for binary, package in PREREQUISITES.items():
        try:
            path = proc.find_binary(binary)
        except SetpointError:
            path = None
        findings.append(Finding(binary, package, path))
    findings.append(rsyslog_tls())
    findings.append(superset_python())
    findings.append(localhost_names())
    supervisord = Path(sys.executable).parent / "supervisord"
    findings.append(Finding("supervisord", "supervisor (pip)", str(supervisord) if supervisord.exists() else shutil.which("supervisord")))
    return findings


def rsyslog_tls() -> Finding:
    """rsyslog's TLS driver, with which the log store forwards to a tls:// remote store."""
    found = sorted(Path("/usr/lib").glob("*/rsyslog/lmnsd_gtls.so"))
    return Finding("rsyslog TLS", "rsyslog-gnutls", str(found[0]) if found else None)


def superset_python() -> Finding:
    """The interpreter Superset's virtualenvs are built on: the system's, which the service user
    can run (not one under root's home), able to create virtualenvs (Debian ships venv apart)."""
    python = base_python()
    usable = python.startswith("/usr/") and proc.run([python, "-c", "import ensurepip, venv"], check=False).ok
    return Finding("python3.11", "python3.11-venv", python if usable else None)


def localhost_names() -> Finding:
    """Whether this host's resolver maps NAME.localhost to loopback, so that any client on the host
    (a user's Python script, the scorecard, a benchmark) reaches an instance by its URL. glibc
    does it with the nss module libnss-myhostname, which Debian's package adds to nsswitch.conf."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo("setpoint-probe.localhost", 443)}
    except OSError:
        addresses = set()
    ok = bool(addresses) and addresses <= {"127.0.0.1", "::1"}
    return Finding("*.localhost", "libnss-myhostname", "resolves to loopback" if ok else None)


def missing_packages(findings: list[Finding]) -> list[str]:
    return sorted({f.package for f in findings if not f.ok and "(pip)" not in f.package})


def install_command(packages: list[str]) -> list[str]:
    return ["apt-get", "install", "-y", "--no-install-recommends", *packages]


def install(packages: list[str]) -> None:
    """Install Debian packages (root only); services are not started by their packages here."""
    if not is_root():
        raise SetpointError("installing packages needs root", "run: sudo " + " ".join(install_command(packages)))
    proc.run(["apt-get", "update", "-qq"], timeout=600, what="apt-get update")
    proc.run(install_command(packages), timeout=1200, what="installing " + " ".join(packages),
             env={"DEBIAN_FRONTEND": "noninteractive"})
    if Path("/run/systemd/system").exists():
        proc.run(["systemctl", "disable", "--now", *PACKAGED_UNITS], check=False, timeout=120)
