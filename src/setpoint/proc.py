"""The one place that runs subprocesses: argument lists, timeouts, redaction, clear errors."""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from setpoint.errors import SetpointError

log = logging.getLogger(__name__)

# Where each binary Setpoint needs comes from, so a missing one can name its install command.
APT_PACKAGE_OF = {
    "initdb": "postgresql-15",
    "postgres": "postgresql-15",
    "pg_ctl": "postgresql-15",
    "psql": "postgresql-client-15",
    "pg_isready": "postgresql-client-15",
    "redis-server": "redis-server",
    "redis-cli": "redis-tools",
    "caddy": "caddy",
    "pgbackrest": "pgbackrest",
    "setcap": "libcap2-bin",
    "useradd": "passwd",
    "usermod": "passwd",
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-node-exporter": "prometheus-node-exporter",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "prometheus-blackbox-exporter": "prometheus-blackbox-exporter",
    "prometheus-postgres-exporter": "prometheus-postgres-exporter",
    "prometheus-redis-exporter": "prometheus-redis-exporter",
    "rsyslogd": "rsyslog",
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
}

# Debian installs PostgreSQL's server binaries outside PATH (and daemons where a user's PATH may not go).
EXTRA_BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/sbin")


@dataclass
class Redactor:
    """Replaces known secret values with a placeholder in anything that may be shown."""

    secrets: set[str] = field(default_factory=set)

    def add(self, *values: str) -> None:
        self.secrets.update(v for v in values if v and len(v) >= 6)

    def __call__(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


redact = Redactor()


def find_binary(name: str) -> str:
    """Return the path of a required binary, or fail saying how to install it."""
    found = shutil.which(name)
    if found:
        return found
    for directory in EXTRA_BIN_DIRS:
        candidate = Path(directory) / name
        if candidate.exists():
            return str(candidate)
    package = APT_PACKAGE_OF.get(name)
    hint = (
        f"install it with: apt-get install -y {package} (or run: setpoint doctor --install)"
        if package
        else "install it and make sure it is on PATH"
    )
    raise SetpointError(f"the program '{name}' is not installed", hint)


# What a process started for an instance's account, or a long-lived host service, keeps of the
# environment of the command that started it: the host's paths, locale and CA trust. Never the
# rest: a secret an operator gave `up` in a variable, or their cloud keys, would be readable in
# /proc/PID/environ by every process of that account, and (through supervisord) of every instance.
KEPT_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ",
                    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def clean_environment() -> dict[str, str]:
    """The variables of KEPT_ENVIRONMENT that this process has."""
    return {name: os.environ[name] for name in KEPT_ENVIRONMENT if name in os.environ}


@dataclass
class Result:
    """What a finished command returned."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run(
    args: Iterable[str | os.PathLike[str]],
    *,
    timeout: float = 120,
    user: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    input: str | None = None,
    check: bool = True,
    what: str | None = None,
    hint: str | None = None,
    clean_env: bool = False,
) -> Result:
    """Run a command (never through a shell) and return its output.

    `user` runs it as that account (only when Setpoint runs as root), in a session of its own,
    with only the clean environment (`clean_environment`) and `env`; `clean_env` gives a command
    run as root that environment too. `check` turns a non-zero exit into a SetpointError that
    names `what` was being done and shows the command's last words.
    """
    argv = [str(a) for a in args]
    if not os.path.isabs(argv[0]):
        argv[0] = find_binary(argv[0])
    dropped = bool(user and os.geteuid() == 0 and user != "root")
    full_env = clean_environment() if dropped or clean_env else dict(os.environ)
    if env:
        full_env.update(env)
    # Never the terminal of the operator who ran Setpoint: a process of an account holding it
    # could read what they type, or type into their root shell (TIOCSTI).
    kwargs: dict = {} if input is not None else {"stdin": subprocess.DEVNULL}
    if dropped:
        kwargs["user"] = user
        kwargs["group"] = user
        # The account's own groups, as a login gets them; never root's.
        kwargs["extra_groups"] = os.getgrouplist(user, pwd.getpwnam(user).pw_gid)
        kwargs["start_new_session"] = True  # no controlling terminal
        full_env["HOME"] = str(cwd or "/")
    shown = redact(" ".join(argv))
    log.debug("run: %s", shown)
    try:
        completed = subprocess.run(
            argv,
            env=full_env,
            cwd=cwd,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            **kwargs,
        )
    except OSError as exc:
        raise SetpointError(f"{what or shown} could not start: {exc.strerror}", hint) from exc
    except subprocess.TimeoutExpired as exc:
        raise SetpointError(
            f"{what or shown} did not finish within {timeout:.0f} s",
            hint or "see the instance logs with: setpoint logs NAME",
        ) from exc
    result = Result(completed.returncode, completed.stdout, completed.stderr)
    if check and not result.ok:
        raise SetpointError(
            f"{what or shown} failed (exit {result.returncode}): {last_words(result)}",
            hint,
        )
    return result


def last_words(result: Result, lines: int = 3) -> str:
    """The last few lines a failed command printed, redacted, on one line."""
    text = (result.stderr.strip() or result.stdout.strip()).splitlines()[-lines:]
    return redact(" | ".join(line.strip() for line in text)) or "no output"
