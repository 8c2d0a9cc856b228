"""HTTP clients that reach Setpoint's sites: `*.localhost` names go to loopback, TLS stays verified."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import ssl
import subprocess
from pathlib import Path

import httpcore
import httpx


def is_loopback_name(host: str) -> bool:
    return host == "localhost" or host.endswith(".localhost")


class _LoopbackResolvingBackend(httpcore.SyncBackend):
    # glibc here does not resolve NAME.localhost (browsers and curl map it themselves); the TLS
    # handshake still sends the real name as SNI and checks the certificate against it.
    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        if is_loopback_name(host):
            host = "127.0.0.1"
        return super().connect_tcp(host, port, timeout, local_address, socket_options)


class LoopbackTransport(httpx.HTTPTransport):
    """An httpx transport whose connection pool resolves `*.localhost` to 127.0.0.1."""

    def __init__(self, verify: ssl.SSLContext | bool = True, local_address: str | None = None) -> None:
        super().__init__(verify=verify)
        context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
        self._pool = httpcore.ConnectionPool(ssl_context=context, network_backend=_LoopbackResolvingBackend(),
                                             local_address=local_address)


def http_client(base_url: str = "", ca_file: Path | None = None, timeout: float = 30, local_address: str | None = None,
                **kwargs) -> httpx.Client:
    """An httpx client that trusts `ca_file` (Caddy's local CA) besides the system's roots, its
    connections from `local_address` when given."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return httpx.Client(
        base_url=base_url,
        transport=LoopbackTransport(verify=context, local_address=local_address),
        timeout=timeout,
        **kwargs,
    )


def is_port_free(port: int, host: str = "0.0.0.0") -> bool:
    """Whether nothing listens on `port` (a bind attempt, released at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


DEFAULT_PORT_BASE = 19090
INSTANCE_PORTS_OFFSET = 910  # instances from 20000 by default


def port_base() -> int:
    """Where a home looks for free loopback ports: SETPOINT_PORT_BASE, or 19090. The host's
    monitoring takes the first free ones from there and instances from 910 above, so that two
    homes on one host (a test run beside another) do not reach for the same ports at once."""
    from setpoint.errors import InputError

    text = os.environ.get("SETPOINT_PORT_BASE", "").strip()
    if not text:
        return DEFAULT_PORT_BASE
    if not text.isdigit() or not 1024 <= int(text) <= 50000:
        raise InputError(f"SETPOINT_PORT_BASE={text} is not a port between 1024 and 50000",
                         "unset it, or set it to where this home's ports should start, e.g. 24090")
    return int(text)


def instance_port_range() -> range:
    """The loopback ports a home gives its instances' gunicorn, PostgreSQL and Redis."""
    start = port_base() + INSTANCE_PORTS_OFFSET
    return range(start, start + 10000)


def host_addresses() -> list[str]:
    """This host's IPv4 addresses with global scope (what another computer may reach it by)."""
    try:
        out = subprocess.run(["ip", "-j", "-4", "addr", "show", "scope", "global"], capture_output=True,
                             text=True, timeout=10, check=True).stdout
        interfaces = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return []
    addresses = [a["local"] for i in interfaces for a in i.get("addr_info", []) if "local" in a]
    return [a for a in addresses if not ipaddress.ip_address(a).is_loopback]
