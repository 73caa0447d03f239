"""The webhook's TLS certificate: mounted (cert-manager) or self-signed at startup.

Self-signed certificates are made with `cryptography` (kopf's own generator
needs certbuilder/oscrypto, which break on OpenSSL 3). The certificate is its
own CA: kopf puts it into the webhook configuration's caBundle.

Every replica serves the webhook behind one Service and writes its CA into
the one webhook configuration, so replicas must serve the same certificate:
with two certificates each replica would overwrite the other's caBundle and
the API server would fail to reach half the endpoints. A self-signed pair is
therefore shared through a Secret (`to_secret`/`from_secret`, stored by
engine/certificates.py); this module only makes, checks and writes pairs.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def client_ca(setting: str) -> str | None:
    """The PEM of the CA that signs the API server's webhook client certificate: the
    setting itself, or the file it names; None when unset. A value that holds no
    certificate stops the operator at startup rather than silently trusting no one."""
    if not setting.strip():
        return None
    text = setting if setting.lstrip().startswith("-----BEGIN") else Path(setting).read_text()
    try:
        x509.load_pem_x509_certificates(text.encode())
    except ValueError as e:
        raise ValueError(f"the webhook client CA holds no PEM certificate: {e}") from None
    return text


def mounted(directory: Path) -> Certificate:
    """A cert-manager style secret mounted as a directory: tls.crt, tls.key, ca.crt."""
    ca = directory / "ca.crt"
    cert = directory / "tls.crt"
    return Certificate(cert, directory / "tls.key", (ca if ca.exists() else cert).read_bytes())


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, PEM."""

    cert: bytes
    key: bytes


MANAGED_BY = {"app.kubernetes.io/managed-by": "clone-operator"}
RENEW_BEFORE = datetime.timedelta(days=30)


def self_signed(hosts: list[str], days: int = 365) -> Certificate:
    """A fresh pair written to files (one replica, or none to share with)."""
    return write(generate(hosts, days))


def write(pair: KeyPair) -> Certificate:
    directory = Path(tempfile.mkdtemp(prefix="clone-operator-webhook-"))
    (directory / "tls.crt").write_bytes(pair.cert)
    (directory / "tls.key").write_bytes(pair.key)
    (directory / "tls.key").chmod(0o600)
    return Certificate(directory / "tls.crt", directory / "tls.key", pair.cert)


def usable(pair: KeyPair, hosts: list[str], now: datetime.datetime) -> bool:
    """Names every host, valid now and for RENEW_BEFORE yet, and the key is its own."""
    try:
        cert = x509.load_pem_x509_certificate(pair.cert)
        key = serialization.load_pem_private_key(pair.key, password=None)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, x509.ExtensionNotFound):
        return False
    covered = {str(n) for n in names.get_values_for_type(x509.DNSName)}
    covered |= {str(a) for a in names.get_values_for_type(x509.IPAddress)}
    own_key = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return (
        own_key
        and set(hosts) <= covered
        and cert.not_valid_before_utc <= now
        and now + RENEW_BEFORE < cert.not_valid_after_utc
    )


def to_secret(name: str, namespace: str, pair: KeyPair) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "data": {
            "tls.crt": base64.b64encode(pair.cert).decode(),
            "tls.key": base64.b64encode(pair.key).decode(),
        },
    }


def ours(secret: dict[str, Any]) -> bool:
    labels = secret.get("metadata", {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in MANAGED_BY.items())


def from_secret(secret: dict[str, Any]) -> KeyPair | None:
    data = secret.get("data") or {}
    try:
        return KeyPair(base64.b64decode(data["tls.crt"]), base64.b64decode(data["tls.key"]))
    except (KeyError, ValueError):
        return None


def generate(hosts: list[str], days: int = 365) -> KeyPair:
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
    return KeyPair(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
