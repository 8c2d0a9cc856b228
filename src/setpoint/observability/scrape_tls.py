"""Mutual TLS between the host's Prometheus and its Redis exporter.

The Redis exporter (Debian's 1.45) takes no password, and its `/scrape?target=` answers anyone on
loopback: with the passwords it holds it showed every instance's Redis to any local account (an
instance's Superset account among them), and it would connect to any address it was given, its
errors telling a closed port from an open one. It now asks for a client certificate signed by
a CA of the host's own, which only Prometheus holds: both run as the monitoring account, which
alone reads these files (root's, 0640 to its group). The CA's key is not kept once the two
certificates are made, so no other client certificate can be issued; deleting the directory
makes a new set at the next `up`.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from setpoint.home import own_directory, write_file

VALID_DAYS = 3650


@dataclass(frozen=True)
class ScrapeTls:
    directory: Path

    ca = property(lambda self: self.directory / "ca.pem")
    server_cert = property(lambda self: self.directory / "exporter.pem")
    server_key = property(lambda self: self.directory / "exporter-key.pem")
    client_cert = property(lambda self: self.directory / "prometheus.pem")
    client_key = property(lambda self: self.directory / "prometheus-key.pem")

    def files(self) -> tuple[Path, ...]:
        return self.ca, self.server_cert, self.server_key, self.client_cert, self.client_key


def ensure(anchor: Path, tls: ScrapeTls, user: str) -> bool:
    """The CA and the two certificates, made once, for the account `user` alone to read; whether
    they were made."""
    own_directory(anchor, tls.directory, "root", user, mode=0o750)
    if all(path.exists() for path in tls.files()):
        return False
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Setpoint host monitoring CA")])
    ca = _certificate(ca_name, ca_name, ca_key.public_key(), ca_key,
                      [(x509.BasicConstraints(ca=True, path_length=0), True),
                       (x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                      data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                                      encipher_only=False, decipher_only=False), True)])
    issued = {
        (tls.server_cert, tls.server_key): ("Setpoint Redis exporter", ExtendedKeyUsageOID.SERVER_AUTH,
                                            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
        (tls.client_cert, tls.client_key): ("Setpoint Prometheus", ExtendedKeyUsageOID.CLIENT_AUTH, []),
    }
    for (cert_path, key_path), (name, usage, alt_names) in issued.items():
        key = ec.generate_private_key(ec.SECP256R1())
        extensions = [(x509.BasicConstraints(ca=False, path_length=None), True),
                      (x509.ExtendedKeyUsage([usage]), False)]
        if alt_names:
            extensions.append((x509.SubjectAlternativeName(alt_names), False))
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        certificate = _certificate(subject, ca_name, key.public_key(), ca_key, extensions)
        _write(key_path, _pem_key(key), user)
        _write(cert_path, certificate.public_bytes(serialization.Encoding.PEM).decode(), user)
    _write(tls.ca, ca.public_bytes(serialization.Encoding.PEM).decode(), user)
    return True


def _write(path: Path, text: str, user: str) -> None:
    write_file(path, text, mode=0o640, owner="root", group=user)


def _certificate(subject: x509.Name, issuer: x509.Name, public_key, signing_key, extensions) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=VALID_DAYS)))
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signing_key, hashes.SHA256())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()
