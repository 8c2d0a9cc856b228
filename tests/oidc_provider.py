"""A real OpenID Connect provider on loopback for the SSO tests: oidc-provider (OpenID-certified,
npm) run by Node.js with tests/oidc/server.mjs. Its login form takes any password; the login
names the account, whose claims (groups among them) the test writes into a file the provider
reads at every login."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

from tests.s3_server import free_port

SERVER_DIR = Path(__file__).resolve().parent / "oidc"
CLIENT_ID, CLIENT_SECRET = "superset", "test-client-secret-of-superset-0123456789"


def ensure_installed() -> None:
    """Install oidc-provider from the npm registry (package-lock.json) when it is missing."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise RuntimeError("the SSO tests need Node.js 20 and npm: apt-get install nodejs npm")
    if not (SERVER_DIR / "node_modules" / "oidc-provider").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=SERVER_DIR, check=True, timeout=600,
                       capture_output=True)


class OidcProvider:
    """Start with start(), simulate an outage with stop(). `clients`: (client_id, secret, redirect URIs)."""

    def __init__(self, root: Path, clients: list[tuple[str, str, list[str]]]) -> None:
        ensure_installed()
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.clients_file, self.accounts_file, self.log = root / "clients.json", root / "accounts.json", root / "provider.log"
        self.clients_file.write_text(json.dumps([
            {"client_id": cid, "client_secret": secret, "redirect_uris": uris,
             "grant_types": ["authorization_code"], "response_types": ["code"]} for cid, secret, uris in clients]))
        self.accounts: dict[str, dict] = {}
        self.save()
        self.process: subprocess.Popen | None = None

    def account(self, login: str, **claims) -> None:
        """Create or change an account's claims (e.g. groups=[...]); the next login sees them."""
        self.accounts[login] = claims
        self.save()

    def save(self) -> None:
        self.accounts_file.write_text(json.dumps(self.accounts))

    def start(self) -> None:
        env = {**os.environ, "ISSUER": self.issuer, "PORT": str(self.port), "CLIENTS_FILE": str(self.clients_file),
               "ACCOUNTS_FILE": str(self.accounts_file)}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(["node", "server.mjs"], cwd=SERVER_DIR, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"oidc-provider did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


def _through_provider(client: httpx.Client, provider: OidcProvider, login: str, response: httpx.Response,
                      deliver: bool = True):
    """Follow redirects with their cookies and fill the provider's login and consent forms, as a
    browser would. With `deliver` False, stop at the provider's redirect back to its client and
    return that redirect's query (code, state, iss) instead."""
    while True:
        if response.is_redirect:
            target = urljoin(str(response.url), response.headers["location"])
            if not deliver and urlsplit(target).port != provider.port:
                return {k: v[0] for k, v in parse_qs(urlsplit(target).query).items()}
            response = client.get(target)
            continue
        on_provider = urlsplit(str(response.url)).port == provider.port
        form = re.search(r'<form[^>]*action="([^"]+)"', response.text) if on_provider else None
        if form is None:
            return response
        data = dict(re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', response.text))
        if 'name="login"' in response.text:
            data.update(login=login, password="any password: the development login form takes any")
        response = client.post(urljoin(str(response.url), html.unescape(form[1])), data=data)


def sign_in(client: httpx.Client, provider: OidcProvider, login: str) -> httpx.Response:
    """Sign in to the instance `client` talks to through `provider`, as `login`; return the last answer."""
    return _through_provider(client, provider, login, client.get("/login/oidc"))


def authorization_code(client: httpx.Client, provider: OidcProvider, login: str, authorize_url: str) -> dict[str, str]:
    """Sign `login` in at `provider` through `authorize_url`; return the redirect back to the
    client's query (code, state, iss), never delivered."""
    return _through_provider(client, provider, login, client.get(authorize_url), deliver=False)
