"""What the probes look at: one target, and every piece of evidence gathered from it at most once.

Each accessor is lazy and cached, never raises, and records what it could not gather in
`problems` (an unreachable URL, a TLS error, wrong credentials, a config that does not import).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import html
import json
import os
import re
import socket
import ssl
import tempfile
import threading
import time
import warnings
from datetime import datetime, timezone
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from itsdangerous import URLSafeTimedSerializer

from setpoint import proc
from setpoint.checklist.known_keys import KNOWN_DEFAULT_KEYS
from setpoint.net import http_client, is_loopback_name
from setpoint.runtime.local.superset_side import facts as facts_side
from setpoint.services.superset import superset_side_script
from setpoint.superset_api import SupersetClient

PROBE_TIMEOUT = 5.0
AUTH_OAUTH, AUTH_REMOTE_USER = 4, 3  # Flask-AppBuilder's AUTH_TYPE values
FACTS_SCRIPT = superset_side_script("facts")


@dataclass
class ManagedInstance:
    """What Setpoint knows about an instance it runs."""

    spec: Any  # InstanceSpec
    paths: Any  # InstancePaths
    platform: Any  # Platform
    context: Any  # InstanceContext
    secrets: dict[str, str]


@dataclass
class Target:
    """What the user gave: a URL and optionally a config file, credentials and metadata access."""

    url: str
    ca_file: Path | None = None
    config_file: Path | None = None
    username: str | None = None
    password: str | None = None
    metadata_uri: str | None = None
    superset_python: Path | None = None
    managed: ManagedInstance | None = None

    @property
    def is_https(self) -> bool:
        return urlsplit(self.url).scheme == "https"

    @property
    def plain_http_url(self) -> str:
        """Where plain HTTP should answer with a redirect."""
        if self.managed is not None:
            spec = self.managed.spec
            return f"http://{spec.host}:{spec.http_port}/"
        parts = urlsplit(self.url)
        return f"http://{parts.hostname}/" if parts.scheme == "https" else self.url


def forge_session_cookie(secret_key: str, user_id: str = "1") -> str:
    """A Flask session cookie for `user_id`, signed as Flask signs it (the CVE-2023-27524 attack)."""

    class CompactJSON:
        @staticmethod
        def dumps(value: Any) -> str:
            return json.dumps(value, separators=(",", ":"))

        @staticmethod
        def loads(value: str | bytes) -> Any:
            return json.loads(value)

    serializer = URLSafeTimedSerializer(
        secret_key,
        salt="cookie-session",
        serializer=CompactJSON,
        signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha1},
    )
    return serializer.dumps({"_user_id": user_id, "_fresh": True, "user_id": user_id})


_shared_state = threading.Lock()  # guards what the probes' threads add to: locks, problems


class once(cached_property):  # noqa: N801 - used as a decorator, like cached_property
    """A cached property computed once per object even when threads ask for it at the same time
    (the scorecard's probes run side by side; Python 3.12 dropped cached_property's own lock):
    one lock per object and property, so different pieces of evidence are gathered in parallel."""

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        cache = instance.__dict__
        if self.attrname not in cache:
            with _shared_state:
                lock = cache.setdefault("_locks", {}).setdefault(self.attrname, threading.Lock())
            with lock:
                if self.attrname not in cache:
                    cache[self.attrname] = self.func(instance)
        return cache[self.attrname]


@dataclass
class Evidence:
    """Lazily gathered, cached evidence about one target."""

    target: Target
    problems: list[str] = field(default_factory=list)
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    # Where the facts came from: "web" (the instance's running web process) or "script".
    facts_source: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        # Facts take a moment (seconds when the script imports Superset): gathered while HTTP probes run.
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self._facts_future = self._pool.submit(self._gather_facts)

    def problem(self, text: str) -> None:
        with _shared_state:
            if text not in self.problems:
                self.problems.append(text)

    # --- HTTP, as any visitor sees it -------------------------------------------------------

    @once
    def http(self) -> httpx.Client:
        return http_client(self.target.url, ca_file=self.target.ca_file, timeout=PROBE_TIMEOUT)

    def get(self, path: str, **kwargs) -> httpx.Response | None:
        """GET a path of the target; None (and a recorded problem) when it cannot be reached."""
        key = (path, json.dumps(kwargs, sort_keys=True, default=str))
        cache = self.__dict__.setdefault("_responses", {})
        if key not in cache:
            try:
                cache[key] = self.http.get(path, **kwargs)
            except httpx.ConnectError as exc:
                cache[key] = None
                reason = "TLS verification failed" if "CERTIFICATE" in str(exc).upper() else "connection failed"
                self.problem(f"{self.target.url} is unreachable ({reason}: {str(exc)[:120]})")
            except httpx.HTTPError as exc:
                cache[key] = None
                self.problem(f"{self.target.url}{path.lstrip('/')} did not answer ({type(exc).__name__})")
        return cache[key]

    @once
    def login_page(self) -> httpx.Response | None:
        # The first page a server renders can take seconds (a development server, a busy host).
        return self.get("/login/", timeout=15)

    @once
    def login_settings(self) -> dict[str, Any] | None:
        """How users log in, as the login page tells every visitor: Superset's bootstrap data
        carries AUTH_TYPE and the names of the OAuth providers; a login that sends visitors on to
        an OAuth/OIDC authorization (client_id and response_type) or a SAML request says so too."""
        page = self.login_page
        if page is None:
            return None
        if page.is_redirect:
            query = urlsplit(page.headers.get("location", "")).query
            if "SAMLRequest=" in query:
                return {"auth_type": "saml", "oauth_providers": []}
            if "client_id=" in query and "response_type=" in query:
                return {"auth_type": AUTH_OAUTH, "oauth_providers": [urlsplit(page.headers["location"]).hostname]}
            return None
        match = re.search(r'data-bootstrap="([^"]*)"', page.text)
        try:
            conf = json.loads(html.unescape(match.group(1)))["common"]["conf"] if match else {}
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(conf, dict) or not isinstance(conf.get("AUTH_TYPE"), int):
            return None
        return {"auth_type": conf["AUTH_TYPE"],
                "oauth_providers": [p.get("name") for p in conf.get("AUTH_PROVIDERS") or [] if isinstance(p, dict)]}

    @once
    def plain_http(self) -> httpx.Response | None:
        """The answer of plain HTTP (expected: a redirect to HTTPS)."""
        url = self.target.plain_http_url
        try:
            with http_client(timeout=PROBE_TIMEOUT) as client:
                return client.get(url)
        except httpx.HTTPError:
            return None

    @once
    def legacy_tls_accepted(self) -> bool | None:
        """Whether the server completes a handshake capped at TLS 1.1 (None: not HTTPS)."""
        if not self.target.is_https:
            return None
        parts = urlsplit(self.target.url)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            with warnings.catch_warnings():  # offering the deprecated versions is the point
                warnings.simplefilter("ignore", DeprecationWarning)
                context.minimum_version = ssl.TLSVersion.TLSv1
                context.maximum_version = ssl.TLSVersion.TLSv1_1
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
        except (ValueError, ssl.SSLError):
            return False
        host = "127.0.0.1" if is_loopback_name(parts.hostname or "") else parts.hostname
        try:
            with socket.create_connection((host, parts.port or 443), timeout=PROBE_TIMEOUT) as raw:
                with context.wrap_socket(raw, server_hostname=parts.hostname):
                    return True
        except (ssl.SSLError, OSError):
            return False

    @once
    def admin_admin_refused(self) -> bool | None:
        """One login attempt as admin/admin (never more: this is not a brute force)."""
        try:
            response = self.http.post(
                "/api/v1/security/login",
                json={"username": "admin", "password": "admin", "provider": "db", "refresh": False},
            )
        except httpx.HTTPError:
            return None
        return response.status_code != 200

    @once
    def forged_cookies_accepted(self) -> dict[str, bool | None]:
        """For each publicly known key: was a session cookie signed with it accepted?"""
        results: dict[str, bool | None] = {}
        for label, key in KNOWN_DEFAULT_KEYS.items():
            try:
                response = self.http.get(
                    "/api/v1/me/", headers={"Cookie": f"session={forge_session_cookie(key)}"}
                )
                results[label] = response.status_code == 200
            except httpx.HTTPError:
                results[label] = None
        return results

    @once
    def anonymous_api_status(self) -> int | None:
        response = self.get("/api/v1/dashboard/")
        return response.status_code if response is not None else None

    @once
    def version_told_to_anonymous(self) -> str | None:
        """The Superset version a visitor without a session reads at /version or in the login
        page's data (which tells an attacker which advisories apply); None when not told."""
        for path in ("/version", "/login/"):
            request = self.http.build_request("GET", path)
            request.headers.pop("Cookie", None)
            try:
                response = self.http.send(request)
            except httpx.HTTPError:
                continue
            if response.status_code == 200:
                told = re.search(r'"version_string":\s*"([^"]+)"', html.unescape(response.text))
                if told:
                    return told.group(1)
        return None

    @once
    def tokenless_post_refused(self) -> bool | None:
        """Is a state-changing request without a CSRF token refused for that reason?

        Flask-WTF checks the token before authentication: with CSRF on, an anonymous POST is
        refused with 400 "The CSRF token is missing"; with CSRF off it reaches the login check.
        """
        try:
            response = self.http.post("/api/v1/dashboard/", json={})
        except httpx.HTTPError:
            return None
        return response.status_code == 400 and "csrf" in response.text.lower()

    @once
    def api(self) -> SupersetClient | None:
        """A logged-in API client with the credentials given (or the managed admin's)."""
        managed = self.target.managed
        username = self.target.username or (managed.spec.admin.username if managed else None)
        password = self.target.password or (managed.secrets.get("admin_password") if managed else None)
        if not (username and password):
            return None
        client = SupersetClient(self.http)
        try:
            response = client.login(username, password)
            if response.status_code == 429:  # the login rate limit: once more when its window allows
                wait = response.headers.get("Retry-After", "")
                if wait.isdigit() and int(wait) <= 45:
                    time.sleep(int(wait) + 1)
                    response = client.login(username, password)
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            if response.status_code == 429:
                wait = response.headers.get("Retry-After", "60")
                self.problem(f"login as {username} was refused by the login rate limit (HTTP 429, after many logins "
                             f"from this address): run the check again in {wait} s")
            else:
                self.problem(f"login as {username} failed (HTTP {response.status_code}): check --user and --password")
            return None
        return client

    # --- the effective configuration and metadata, from Superset itself ------------------

    def _facts_command(self) -> tuple[list[str], dict[str, str], str | None, Path | None] | None:
        managed = self.target.managed
        env: dict[str, str] = {}
        if self.target.metadata_uri:
            env["SETPOINT_METADATA_URI"] = self.target.metadata_uri
        if managed is not None:
            from setpoint.services.superset import SupersetCommands

            commands = SupersetCommands(managed.context)
            python = managed.context.venv / "bin" / "python"
            env.update(SETPOINT_CELERY_WORKER=managed.context.celery_worker,
                       SETPOINT_FACTS_CACHE=str(managed.paths.facts_cache))
            return [str(python), str(FACTS_SCRIPT)], commands.env(**env), managed.context.superset_user, managed.paths.superset_home
        if not (self.target.config_file or self.target.metadata_uri):
            return None
        python = self.target.superset_python
        if python is None:
            return None
        if self.target.config_file:
            env["SUPERSET_CONFIG_PATH"] = str(self.target.config_file.absolute())
        else:
            env["SUPERSET_CONFIG_PATH"] = os.devnull
        env.setdefault("SUPERSET_SECRET_KEY", "setpoint-check-placeholder-not-used-for-anything")
        return [str(python), str(FACTS_SCRIPT)], env, None, None

    def _facts_from_web(self) -> dict[str, Any] | None:
        """A managed instance's facts from its running web process (`GET /setpoint/facts` straight
        to gunicorn), in a fraction of the time a new Superset process takes to start; None when it
        does not answer them (stopped, busy, or its SECRET_KEY changed since it started)."""
        managed = self.target.managed
        secret_key = managed.secrets.get("secret_key") if managed is not None else None
        if not secret_key:
            return None
        try:
            response = httpx.get(f"http://127.0.0.1:{managed.context.ports.web}{facts_side.PATH}", timeout=15,
                                 headers={"Authorization": f"Bearer {facts_side.token(secret_key)}"})
            facts = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        return facts if isinstance(facts, dict) else None

    def _gather_facts(self) -> dict[str, Any] | None:
        if (facts := self._facts_from_web()) is not None:
            self.facts_source = "web"
            return facts
        command = self._facts_command()
        if command is None:
            return None
        self.facts_source = "script"
        argv, env, user, cwd = command
        # Superset's default Celery settings create celerydb.sqlite in the working directory:
        # never the user's own one.
        with tempfile.TemporaryDirectory(prefix="setpoint-facts-") as scratch:
            try:
                result = proc.run(argv, env=env, user=user, cwd=cwd or scratch, timeout=90, check=False)
            except Exception as exc:  # noqa: BLE001 - a probe never raises
                return {"config_error": str(exc)}
        try:
            return json.loads(result.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {"config_error": f"the facts script failed: {proc.last_words(result)}"}

    @once
    def facts(self) -> dict[str, Any] | None:
        facts = self._facts_future.result()
        self._pool.shutdown(wait=False)
        if facts and "config_error" in facts:
            self.problem(f"the Superset configuration could not be loaded: {facts['config_error']}")
        return facts

    @property
    def config(self) -> dict[str, Any] | None:
        """Facts from the effective configuration, when a config was given (or managed)."""
        if self.target.managed is None and self.target.config_file is None:
            return None
        facts = self.facts
        return None if not facts or "config_error" in facts else facts

    def config_section(self, name: str) -> dict[str, Any] | None:
        section = (self.config or {}).get(name)
        if isinstance(section, dict) and "error" in section:
            self.problem(f"{name}: {section['error']}")
            return None
        return section

    @property
    def metadata(self) -> dict[str, Any] | None:
        """Facts read from the metadata database, when it was reachable."""
        if self.target.managed is None and not self.target.metadata_uri and self.target.config_file is None:
            return None
        facts = self.facts or {}
        section = facts.get("metadata_db")
        if not isinstance(section, dict):
            return None
        if "error" in section:
            self.problem(f"the metadata database could not be read: {section['error']}")
            return None
        return section

    # --- a managed instance's backups ---------------------------------------------------

    @once
    def backups(self):
        """The managed instance's backup report (pgBackRest info of every repository), read once
        for the points that need it."""
        from setpoint.backup.service import backup_report

        return backup_report(self.target.managed.context)

    def close(self) -> None:
        if "http" in self.__dict__:
            self.http.close()
        self._pool.shutdown(wait=False)
