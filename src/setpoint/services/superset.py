"""Superset itself: its pinned virtualenv, and the one-off commands a converge runs."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from importlib import resources
from pathlib import Path

from setpoint import proc
from setpoint.errors import SetpointError
from setpoint.home import Home, open_beneath
from setpoint.readiness import wait_until
from setpoint.render import InstanceContext
from setpoint.services.postgres import cluster_of, sql_literal
from setpoint.spec import InstanceSpec

# Packages Superset 6.1 needs at run time that its own metadata does not pull in (see
# constraints/): the CLI imports rich, a db engine spec imports cachetools, gevent workers need
# psycogreen to keep psycopg2 cooperative, and Setpoint's STATS_LOGGER is prometheus-client.
RUNTIME_EXTRAS = ("rich", "cachetools", "psycogreen", "prometheus-client", "Authlib")  # Authlib: single sign-on
BASE_EXTRAS = ("postgres", "gevent")
# Extras of older versions that later ones made plain dependencies: Pillow (reports' images and
# thumbnails) is the extra "thumbnails" before 6.0.
VERSION_EXTRAS = {"4.1.4": ("thumbnails",), "5.0.0": ("thumbnails",)}


def constraints_file(version: str) -> Path:
    return Path(str(resources.files("setpoint") / "constraints" / f"superset-{version}.txt"))


def requirements(spec: InstanceSpec) -> list[str]:
    """What pip installs for a spec: Superset with its extras, and the runtime extras."""
    extras = sorted({*BASE_EXTRAS, *VERSION_EXTRAS.get(spec.superset_version, ()), *(d.value for d in spec.drivers)})
    return [f"apache-superset[{','.join(extras)}]=={spec.superset_version}", *RUNTIME_EXTRAS]


def base_python() -> str:
    """The interpreter Superset's virtualenvs are built on.

    It must be executable by the service user: the system's python3 (Debian's 3.11), not one
    under root's home such as pyenv's.
    """
    for candidate in ("/usr/bin/python3.11", "/usr/bin/python3"):
        if Path(candidate).exists():
            return candidate
    return proc.find_binary("python3")


def venv_dir(home: Home, version: str) -> Path:
    """The virtualenv shared by every instance of one Superset version."""
    # Resolved: a virtualenv's scripts name their own absolute path, which must outlive any symlink.
    return home.venvs_dir.resolve() / f"superset-{version}"


def ensure_venv(home: Home, spec: InstanceSpec, on_progress=lambda message: None) -> bool:
    """Create or complete the shared virtualenv of the spec's version; return whether it changed."""
    venv = venv_dir(home, spec.superset_version)
    wanted = requirements(spec)
    constraints = constraints_file(spec.superset_version)
    marker = venv / ".setpoint-installed"
    digest = hashlib.sha256((constraints.read_text() + "\n".join(wanted)).encode()).hexdigest()
    installed = set(marker.read_text().split()) if marker.exists() else set()
    if digest in installed:
        return False
    home.venvs_dir.mkdir(parents=True, exist_ok=True)
    with open(home.venvs_dir / f".superset-{spec.superset_version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two `up`s at once install once
        installed = set(marker.read_text().split()) if marker.exists() else set()
        if digest in installed:
            return False
        if not (venv / "bin" / "python").exists():
            on_progress(f"creating the Superset {spec.superset_version} virtualenv")
            proc.run([base_python(), "-m", "venv", venv], what="creating a virtualenv", timeout=300)
        on_progress(f"installing Superset {spec.superset_version} from its pinned constraints (about 2 min)")
        proc.run(
            [venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "-c", constraints, *wanted],
            what=f"installing Superset {spec.superset_version}",
            hint="check that PyPI is reachable and the disk has 2 GB free; then run up again",
            timeout=1800,
        )
        venv.chmod(0o755)
        marker.write_text("\n".join(sorted(installed | {digest})) + "\n")
    return True


class SupersetCommands:
    """One-off Superset commands run in an instance's environment, as its Superset account."""

    def __init__(self, ctx: InstanceContext) -> None:
        self.ctx = ctx

    def env(self, **extra: str) -> dict[str, str]:
        paths = self.ctx.paths
        return {
            "SUPERSET_CONFIG_PATH": str(paths.config / "superset_config.py"),
            "SUPERSET_HOME": str(paths.superset_home),
            "HOME": str(paths.superset_home),
            "FLASK_APP": "superset.app:create_app()",
            **extra,
        }

    def run(self, args: list[str], what: str, hint: str | None = None, timeout: float = 600,
            as_data_user: bool = False, **env: str) -> str:
        """Run a command as Superset's account, or (`as_data_user`) as the data account, which
        reaches PostgreSQL sockets but not SUPERSET_HOME."""
        user = self.ctx.data_user if as_data_user else self.ctx.superset_user
        cwd = self.ctx.paths.run if as_data_user else self.ctx.paths.superset_home
        if as_data_user:
            env = {"HOME": str(cwd), **env}
        result = proc.run(
            args,
            env=self.env(**env),
            user=user,
            cwd=cwd,
            what=what,
            hint=hint or f"see the output above and: setpoint logs {self.ctx.spec.name}",
            timeout=timeout,
        )
        return result.stdout

    def superset(self, *args: str, what: str, hint: str | None = None, **env: str) -> str:
        return self.run([str(self.ctx.venv / "bin" / "superset"), *args], what=what, hint=hint, **env)

    def migrate(self) -> list[dict]:
        """Bring the metadata database's schema to this Superset version; each migration applied,
        with its time (superset_side/migration_times.py), also kept in migration_times_file."""
        times = migration_times_file(self.ctx)
        times.unlink(missing_ok=True)
        self.superset(
            "db", "upgrade",
            what="migrating the metadata database (superset db upgrade)",
            hint="the metadata database is as it was before; fix the cause above and run up again",
            SETPOINT_MIGRATION_TIMES=str(times),
        )
        return last_migration_times(self.ctx)

    def re_encrypt_secrets(self, previous_secret_key: str) -> int:
        """Re-encrypt what the metadata keeps encrypted from `previous_secret_key` to the
        configuration's SECRET_KEY (superset_side/re_encrypt.py); how many values."""
        output = self.run([str(self.ctx.venv / "bin" / "python"), str(superset_side_script("re_encrypt"))],
                          what="re-encrypting the metadata's secrets with the new SECRET_KEY",
                          SETPOINT_PREVIOUS_SECRET_KEY=previous_secret_key)
        return json.loads(output.strip().splitlines()[-1])["values"]

    def init(self) -> None:
        """Create roles and synchronise permissions (the only process allowed to)."""
        self.superset("init", what="initialising roles and permissions (superset init)", SETPOINT_UPDATE_PERMS="1")

    def ping_worker(self) -> bool:
        """Whether the instance's Celery worker answers over the broker."""
        result = proc.run(
            [str(self.ctx.venv / "bin" / "celery"), "--app=superset.tasks.celery_app:app", "inspect", "ping",
             f"--destination={self.ctx.celery_worker}", "--timeout=5"],
            env=self.env(), user=self.ctx.superset_user, cwd=self.ctx.paths.superset_home, timeout=60, check=False,
        )
        return result.ok and "pong" in result.stdout

    def announced(self, pid: int) -> bool:
        """Whether the worker process `pid` said it consumes from the broker (its ready file). The
        file is in the Superset account's home: a link or a FIFO planted there is never opened (a
        FIFO would have kept root's read waiting, and the host's boot with it)."""
        try:
            with os.fdopen(open_beneath(self.ctx.paths.root.parent, self.ctx.paths.worker_ready_file)) as ready:
                return ready.read(64).strip() == str(pid)
        except OSError:
            return False

    def wait_worker(self, pid: int | None = None, timeout: float = 120) -> None:
        """Wait until the worker consumes from the broker: the worker process `pid` says so in its
        ready file (superset_side/task_safety.py) when its configuration has one; else it must
        answer a ping, which loads Superset's Celery app in a process of its own."""
        name = self.ctx.spec.name
        config = self.ctx.paths.config / "superset_config.py"
        announces = pid is not None and config.exists() and str(self.ctx.paths.worker_ready_file) in config.read_text()
        ready = (lambda: self.announced(pid)) if announces else self.ping_worker
        wait_until(ready, timeout, SetpointError(
            f"the Celery worker of {name} does not answer", f"see: setpoint logs {name} worker"),
            interval=0.5 if announces else 2)

    def ensure_admin(self, password: str) -> bool:
        """Create the admin from the spec with the generated password; return whether it was new."""
        admin = self.ctx.spec.admin
        return self.ensure_user(admin.username, password, ["Admin"], admin.first_name, admin.last_name, self.ctx.spec.admin_email)

    def ensure_user(self, username: str, password: str, roles: list[str], first_name: str, last_name: str, email: str) -> bool:
        """Create a user with its roles unless it exists; return whether it was new."""
        if self._user_exists(username):
            return False  # asked of PostgreSQL in a tenth of a second; Superset's app takes seconds to load
        output = self.run(
            [str(self.ctx.venv / "bin" / "python"), str(superset_side_script("ensure_user"))],
            what=f"creating the user {username}",
            SETPOINT_USER_PASSWORD=password,
            SETPOINT_USER_USERNAME=username,
            SETPOINT_USER_ROLES=",".join(roles),
            SETPOINT_USER_FIRST_NAME=first_name,
            SETPOINT_USER_LAST_NAME=last_name,
            SETPOINT_USER_EMAIL=email,
        )
        return output.strip().endswith("created")

    def _user_exists(self, username: str) -> bool:
        """Whether the managed metadata database has the user; False when it cannot tell."""
        if not self.ctx.managed_postgres:
            return False
        result = cluster_of(self.ctx).sql_result(
            f"SELECT 1 FROM ab_user WHERE username = '{sql_literal(username)}'", database="superset", check=False)
        return result.ok and result.stdout.strip() == "1"

    def apply_access(self) -> dict:
        """Make the roles and row-level security the configuration declares (SETPOINT_ACCESS):
        {"changes": [...], "problems": [...]}."""
        output = self.run([str(self.ctx.venv / "bin" / "python"), str(superset_side_script("apply_access"))],
                          what="making the roles and row-level security")
        return json.loads(output.strip().splitlines()[-1])

    def send_test_mail(self, to: str) -> None:
        """Send one e-mail to `to` through Superset's own mail settings (its alerts' and reports')."""
        self.run([str(self.ctx.venv / "bin" / "python"), str(superset_side_script("send_test_mail"))],
                 what=f"sending a test e-mail to {to} through {self.ctx.spec.name}'s Superset",
                 hint="check the spec's smtp: section (host, port, security, username, password), then run it again",
                 SETPOINT_MAIL_TO=to, SETPOINT_INSTANCE=self.ctx.spec.name)

    def refused_databases(self) -> list[str]:
        """The saved databases whose connection the instance's database guard refuses."""
        output = self.run([str(self.ctx.venv / "bin" / "python"), str(superset_side_script("refused_databases"))],
                          what="checking the saved databases against the database guard")
        return json.loads(output.strip().splitlines()[-1])

    def open_restored(self, socket_dir: Path, port: int) -> dict:
        """Open a restored copy of the metadata (a cluster on `socket_dir`:`port`) with this
        Superset version and the instance's configuration; what Superset sees there."""
        uri = f"postgresql+psycopg2://{self.ctx.db_superuser}@/superset?host={socket_dir}&port={port}"
        output = self.run(
            [str(self.ctx.venv / "bin" / "python"), str(superset_side_script("open_restored"))],
            what=f"opening the restored metadata with Superset {self.ctx.spec.superset_version}",
            as_data_user=True,  # the scratch cluster's socket and superuser are the data account's
            SETPOINT_RESTORED_URI=uri,
            # The scratch cluster is reached over its socket, which the database guard refuses
            # to everyone else.
            SETPOINT_TRUSTED_CONNECTION="1",
        )
        return json.loads(output.strip().splitlines()[-1])


def superset_side_script(name: str) -> Path:
    """A script of Setpoint's that runs inside a Superset virtualenv."""
    return Path(str(resources.files("setpoint") / "runtime" / "local" / "superset_side" / f"{name}.py"))


def migration_times_file(ctx: InstanceContext) -> Path:
    return ctx.paths.superset_home / "migrations.jsonl"


def last_migration_times(ctx: InstanceContext) -> list[dict]:
    """The migrations of the instance's last `superset db upgrade`, with their times, in order.
    The file is in the Superset account's home: never followed through a link nor read as a FIFO,
    and whatever it holds that is not such a record is ignored."""
    try:
        fd = open_beneath(ctx.paths.root.parent, migration_times_file(ctx))
        with os.fdopen(fd, "rb") as handle:
            lines = handle.read(1024 * 1024).decode(errors="replace").splitlines()
    except OSError:
        return []
    times = []
    for line in lines:
        try:
            entry = json.loads(line)
            times.append({"revision": str(entry["revision"]), "message": str(entry["message"]),
                          "seconds": float(entry["seconds"])})
        except (ValueError, KeyError, TypeError):
            continue
    return times


def describe_migrations(times: list[dict]) -> str:
    """'3 migration(s) in 4.1 s, the slowest 2.9 s (abc123, add a column)', or 'no migration'."""
    if not times:
        return "no migration"
    slowest = max(times, key=lambda t: t["seconds"])
    named = ", ".join(part for part in (slowest["revision"], slowest["message"]) if part)  # some have no message
    return (f"{len(times)} migration(s) in {sum(t['seconds'] for t in times):.1f} s, the slowest "
            f"{slowest['seconds']:.1f} s ({named})")
