"""The webhook's TLS certificate: mounted (cert-manager) or self-signed at startup.

Self-signed certificates are made with `cryptography` (kopf's own generator
needs certbuilder/oscrypto, which break on OpenSSL 3). The certificate is its
own CA: kopf puts it into the webhook configuration's caBundle.
"""

from __future__ import annotations

import datetime
import ipaddress
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Certificate:
    certfile: Path
    keyfile: Path
    ca: bytes
    """PEM of the CA that signed `certfile`, for the webhook configuration's caBundle."""


def mounted(directory: Path) -> Certificate:
    """A cert-manager style secret mounted as a directory: tls.crt, tls.key, ca.crt."""
    ca = directory / "ca.crt"
    cert = directory / "tls.crt"
    return Certificate(cert, directory / "tls.key", (ca if ca.exists() else cert).read_bytes())


def self_signed(hosts: list[str], days: int = 365) -> Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = Path(tempfile.mkdtemp(prefix="clone-operator-webhook-"))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (directory / "tls.crt").write_bytes(pem)
    (directory / "tls.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(directory / "tls.crt", directory / "tls.key", pem)
