"""An S3-compatible server on loopback for tests and benchmarks: moto behind a TLS-terminating
Caddy (pgBackRest's S3 client always speaks TLS and checks the certificate's DNS name, so the
endpoint is `localhost`)."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx

ACCESS_KEY, SECRET_KEY = "testing-access-key", "testing-secret-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class S3Endpoint:
    """Start with start(), simulate an outage with stop(), end with close(). Buckets live in
    moto's memory, so they survive stop() and start()."""

    env = {"SETPOINT_OFFSITE_ACCESS_KEY": ACCESS_KEY, "SETPOINT_OFFSITE_SECRET_KEY": SECRET_KEY}

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "data").mkdir(parents=True)
        self.tls_port, moto_port = free_port(), free_port()
        self.caddyfile = root / "Caddyfile"
        self.caddyfile.write_text(
            "{\n\tadmin off\n\tstorage file_system " + str(root / "data") + "\n\tskip_install_trust\n"
            "\tauto_https disable_redirects\n}\n"
            f"https://localhost:{self.tls_port} {{\n\ttls internal\n\treverse_proxy 127.0.0.1:{moto_port}\n}}\n"
        )
        self.ca_file = root / "data" / "pki" / "authorities" / "local" / "root.crt"
        self.public_ca = root / "ca.crt"
        moto_bin = Path(sys.executable).parent / "moto_server"
        self.moto = subprocess.Popen([str(moto_bin), "-H", "127.0.0.1", "-p", str(moto_port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.caddy: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"https://localhost:{self.tls_port}"

    def start(self) -> None:
        """The endpoint answers, over TLS, with moto behind it (Caddy alone answers 502)."""
        self.caddy = subprocess.Popen(["caddy", "run", "--config", str(self.caddyfile), "--adapter", "caddyfile"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.moto.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.moto.returncode} (its port taken?)")
            try:
                if self.ca_file.exists():
                    # pgBackRest reads the CA as the service user: a world-readable copy.
                    shutil.copy(self.ca_file, self.public_ca)
                    self.public_ca.chmod(0o644)
                    answer = httpx.get(self.url, verify=ssl.create_default_context(cafile=str(self.public_ca)), timeout=5)
                    if answer.status_code != 502:
                        return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError("the S3 endpoint did not start within 120 s")

    def stop(self) -> None:
        """An outage: nothing answers on the endpoint; the stored objects are kept."""
        self.caddy.terminate()
        self.caddy.wait(timeout=30)

    def close(self) -> None:
        for process in (self.moto, self.caddy):
            if process and process.poll() is None:
                process.terminate()
                process.wait(timeout=30)

    def spec(self, bucket: str) -> dict:
        """The spec's backup.offsite section for a bucket of this endpoint."""
        return {"endpoint": "localhost", "port": self.tls_port, "bucket": bucket, "region": "us-east-1",
                "path": "/setpoint", "uri_style": "path", "ca_file": str(self.public_ca)}

    def create_bucket(self, bucket: str) -> None:
        import boto3

        boto3.client("s3", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                     aws_secret_access_key=SECRET_KEY, verify=str(self.public_ca)).create_bucket(Bucket=bucket)
