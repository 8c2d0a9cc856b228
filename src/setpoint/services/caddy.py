"""The host's Caddy: TLS for every instance, HSTS, HTTP-to-HTTPS redirects, reverse proxy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx

from setpoint import proc
from setpoint.errors import SetpointError
from setpoint.home import Home
from setpoint.readiness import wait_until


@dataclass(frozen=True)
class Caddy:
    """Caddy as run by this home's supervisor, configured through its admin API.

    The admin API listens on a Unix socket in a directory only Caddy's user (and root) can enter:
    on TCP, any local user could read every site and load a config of their own."""

    home: Home

    @property
    def admin_socket(self) -> Path:
        return self.home.caddy_dir / "admin" / "admin.sock"

    @property
    def admin_address(self) -> str:
        return f"unix/{self.admin_socket}"

    def _admin(self, timeout: float) -> httpx.Client:
        # Over a Unix socket, Caddy accepts only requests with an empty Host.
        return httpx.Client(transport=httpx.HTTPTransport(uds=str(self.admin_socket)), headers={"Host": ""},
                            base_url="http://caddy", timeout=timeout)

    def admin_get(self, path: str, timeout: float = 5) -> httpx.Response:
        with self._admin(timeout) as client:
            return client.get(path)

    @property
    def caddyfile(self) -> Path:
        return self.home.caddy_dir / "Caddyfile"

    @property
    def sites_dir(self) -> Path:
        return self.home.caddy_dir / "sites"

    @property
    def ca_root(self) -> Path:
        """The root certificate of Caddy's internal CA, for clients of local hostnames."""
        return self.home.caddy_dir / "data" / "pki" / "authorities" / "local" / "root.crt"

    def is_ready(self) -> bool:
        try:
            return self.admin_get("/config/", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = 30) -> None:
        wait_until(self.is_ready, timeout, SetpointError(
            f"Caddy's admin API on {self.admin_socket} did not answer", f"see {self.home.caddy_log}"))

    def listening_ports(self) -> set[int]:
        """The ports this Caddy serves sites on (a shared port is not a conflict)."""
        try:
            response = self.admin_get("/config/apps/http/servers")
            servers = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            servers = None
        if not isinstance(servers, dict):
            return set()  # no site yet
        return {
            int(address.rsplit(":", 1)[1])
            for server in servers.values()
            for address in server.get("listen", [])
        }

    def reload(self) -> None:
        """Load the Caddyfile without dropping connections."""
        proc.run(
            ["caddy", "reload", "--config", self.caddyfile, "--adapter", "caddyfile",
             "--address", self.admin_address],
            what="reloading Caddy",
            hint="a site's hostname or port may be invalid or taken; see " + str(self.home.caddy_log),
            timeout=60,
        )

    def wait_ca_root(self, timeout: float = 30) -> Path:
        wait_until(self.ca_root.exists, timeout, SetpointError(
            "Caddy did not create its local CA", f"see {self.home.caddy_log}"))
        return self.ca_root


def can_bind_low_ports(caddy_bin: str) -> bool:
    """Whether the Caddy binary may bind ports below 1024 as an unprivileged user."""
    result = proc.run(["getcap", caddy_bin], check=False, timeout=10)
    return "cap_net_bind_service" in result.stdout


def grant_low_ports(caddy_bin: str) -> None:
    """Let Caddy bind 80 and 443 without root (what Debian's own unit grants it)."""
    proc.run(
        ["setcap", "cap_net_bind_service=+ep", caddy_bin],
        what="granting Caddy the right to bind ports below 1024",
        hint="run setpoint as root, or choose https_port and http_port of 1024 or more in the spec",
    )
