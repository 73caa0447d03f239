"""The local kube-apiserver's identity towards admission webhooks: a client certificate.

A real cluster can make its API server present a client certificate to webhooks
(`--admission-control-config-file`, a WebhookAdmissionConfiguration whose
kubeconfig names a certificate per webhook host, `*` for all); the operator
trusts the CA that signed it (`CLONE_OPERATOR_WEBHOOK_CLIENT_CA`) and answers
such reviews in full. The local cluster does the same, with a CA of its own
(never the cluster's CA, which also signs users' certificates): made once in the
cluster's work directory, so that the API server's flags never change.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CLIENT_NAME = "kube-apiserver-webhook-client"


@dataclass(frozen=True)
class Pem:
    cert: bytes
    key: bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Pem:
    return Pem(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def _builder(
    subject: str, issuer: str, public: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
    )


def make_ca(common_name: str = "clone-operator-test webhook-client CA") -> Pem:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(common_name, common_name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return _pem(cert, key)


def make_client(ca: Pem, common_name: str = CLIENT_NAME) -> Pem:
    """A client certificate (clientAuth) signed by `ca`."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert)
    ca_key = serialization.load_pem_private_key(ca.key, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    issuer = ca_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    cert = (
        _builder(common_name, str(issuer), key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return _pem(cert, key)


@dataclass(frozen=True)
class Files:
    ca: Path
    """What the operator trusts (CLONE_OPERATOR_WEBHOOK_CLIENT_CA)."""
    client_cert: Path
    client_key: Path
    kubeconfig: Path
    admission_config: Path
    """The API server's `--admission-control-config-file`."""


def files_in(directory: Path) -> Files:
    names = ("ca.crt", "client.crt", "client.key", "webhook-kubeconfig.json", "admission.json")
    return Files(*(directory / name for name in names))


def ensure(files: Files) -> None:
    """The CA, the API server's client pair and its admission configuration, made once."""
    files.ca.parent.mkdir(parents=True, exist_ok=True)
    if not (files.ca.exists() and files.client_cert.exists() and files.client_key.exists()):
        ca = make_ca()
        client = make_client(ca)
        files.client_key.write_bytes(client.key)
        files.client_key.chmod(0o600)
        files.client_cert.write_bytes(client.cert)
        files.ca.write_bytes(ca.cert)  # the CA's key is not kept: nothing else is signed
    files.kubeconfig.write_text(json.dumps({
        "apiVersion": "v1",
        "kind": "Config",
        # `*`: every webhook host (127.0.0.1:<port> in process mode, <svc>.<ns>.svc in a pod).
        "users": [{"name": "*", "user": {"client-certificate": str(files.client_cert),
                                         "client-key": str(files.client_key)}}],
    }, indent=2))  # fmt: skip
    plugin = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "WebhookAdmissionConfiguration",
        "kubeConfigFile": str(files.kubeconfig),
    }
    files.admission_config.write_text(json.dumps({
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AdmissionConfiguration",
        "plugins": [{"name": name, "configuration": plugin}
                    for name in ("ValidatingAdmissionWebhook", "MutatingAdmissionWebhook")],
    }, indent=2))  # fmt: skip
