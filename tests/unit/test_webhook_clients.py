"""Who the webhook answers in full: the API server, proven by a client certificate that
the trusted CA signed; anyone else is answered from the request alone (nothing read).
The TLS handshakes run in memory against the server's real context."""

from __future__ import annotations

import contextlib
import ssl
from pathlib import Path
from typing import Any

import pytest

from clone_operator import webhook_certs
from clone_operator.handlers.admission import WebhookServer
from clone_operator.reconcile.admission import Review, from_api_server, may_read
from tests.cluster import webhookclient

PEER = {"subject": ((("commonName", "kube-apiserver-webhook-client"),),)}


def review(**kw: Any) -> Review:
    base: dict[str, Any] = {
        "operation": "CREATE",
        "plural": "cloningoperations",
        "namespace": "team-a",
        "from_api_server": True,
    }
    return Review(**{**base, **kw})


def test_only_a_verified_peer_with_a_trusted_ca_is_the_api_server() -> None:
    assert from_api_server(PEER, trusted_ca=True)
    assert not from_api_server(PEER, trusted_ca=False)  # no CA: nothing was verified
    assert not from_api_server({}, trusted_ca=True)  # a certificate not verified reads empty
    assert not from_api_server(None, trusted_ca=True)


def test_reads_only_for_the_api_servers_create_of_an_operation_in_a_namespace() -> None:
    assert may_read(review())
    assert not may_read(review(from_api_server=False))  # a forged review: nothing read
    assert not may_read(review(operation="UPDATE"))  # kopf never filters by operation
    assert not may_read(review(operation="DELETE"))
    assert not may_read(review(plural="cloneobjects"))
    assert not may_read(review(namespace=None))
    assert not may_read(review(namespace=""))


def test_the_client_ca_is_pem_or_a_file_holding_it(tmp_path: Path) -> None:
    ca = webhookclient.make_ca()
    assert webhook_certs.client_ca("") is None
    assert webhook_certs.client_ca(ca.cert.decode()) == ca.cert.decode()
    (tmp_path / "ca.crt").write_bytes(ca.cert)
    assert webhook_certs.client_ca(str(tmp_path / "ca.crt")) == ca.cert.decode()
    (tmp_path / "junk").write_text("not a certificate")
    with pytest.raises(ValueError, match="holds no PEM certificate"):
        webhook_certs.client_ca(str(tmp_path / "junk"))


def handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> dict[str, Any] | None:
    """A TLS handshake in memory; the server's view of the client's certificate."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    tls_client = client.wrap_bio(c_in, c_out, server_hostname="127.0.0.1")
    tls_server = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for side, tls, out, into in (("client", tls_client, c_out, s_in),
                                     ("server", tls_server, s_out, c_in)):  # fmt: skip
            if not done[side]:
                try:
                    tls.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
            into.write(out.read())
        if all(done.values()):
            break
    with contextlib.suppress(ssl.SSLWantReadError):
        tls_server.read(1)  # TLS 1.3: the server judges the client's certificate after it
    peer = tls_server.getpeercert()
    return dict(peer) if peer is not None else None


def test_the_server_trusts_only_the_given_ca(tmp_path: Path) -> None:
    serving = webhook_certs.self_signed(["127.0.0.1"])
    ca = webhookclient.make_ca()
    server = WebhookServer(
        addr="127.0.0.1",
        port=1,
        certfile=str(serving.certfile),
        pkeyfile=str(serving.keyfile),
        cadata=serving.ca,
        verify_cadata=webhook_certs.client_ca(ca.cert.decode()),
    )
    cadata, context = server._build_ssl()
    assert context is not None
    assert cadata == serving.ca  # what the webhook configuration's caBundle carries
    assert context.verify_mode == ssl.CERT_OPTIONAL  # asked for, never required

    def client(pem: webhookclient.Pem | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(serving.certfile))
        if pem is not None:
            (tmp_path / "c.crt").write_bytes(pem.cert)
            (tmp_path / "c.key").write_bytes(pem.key)
            ctx.load_cert_chain(tmp_path / "c.crt", tmp_path / "c.key")
        return ctx

    peer = handshake(context, client(webhookclient.make_client(ca)))
    assert from_api_server(peer, trusted_ca=True), peer
    assert not from_api_server(handshake(context, client(None)), trusted_ca=True)
    with pytest.raises(ssl.SSLError):  # another CA's certificate: refused outright
        handshake(context, client(webhookclient.make_client(webhookclient.make_ca())))
