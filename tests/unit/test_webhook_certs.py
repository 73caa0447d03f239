"""The shared webhook certificate: when a stored pair may be served, and its Secret form."""

from __future__ import annotations

import datetime

from clone_operator import webhook_certs

HOST = "clone-operator-webhook.clone-operator.svc"


def now() -> datetime.datetime:
    """Read per check: a pair is made "now", and a suite may run long after import."""
    return datetime.datetime.now(datetime.UTC)


def test_a_fresh_pair_is_usable_for_its_host_only() -> None:
    pair = webhook_certs.generate([HOST])
    assert webhook_certs.usable(pair, [HOST], now())
    assert not webhook_certs.usable(pair, ["other-webhook.clone-operator.svc"], now())
    assert not webhook_certs.usable(pair, [HOST, "127.0.0.1"], now())


def test_a_pair_expiring_within_the_renewal_window_is_replaced() -> None:
    short = webhook_certs.generate([HOST], days=29)
    assert not webhook_certs.usable(short, [HOST], now())
    assert webhook_certs.usable(webhook_certs.generate([HOST], days=31), [HOST], now())
    # Valid today, but not for the 30 days the renewal wants.
    assert not webhook_certs.usable(
        webhook_certs.generate([HOST]), [HOST], now() + datetime.timedelta(days=340)
    )


def test_a_certificate_with_someone_elses_key_is_not_usable() -> None:
    a, b = webhook_certs.generate([HOST]), webhook_certs.generate([HOST])
    assert not webhook_certs.usable(webhook_certs.KeyPair(a.cert, b.key), [HOST], now())
    assert not webhook_certs.usable(webhook_certs.KeyPair(b"junk", a.key), [HOST], now())


def test_secret_round_trip_and_ownership() -> None:
    pair = webhook_certs.generate([HOST])
    secret = webhook_certs.to_secret("co-webhook-cert", "clone-operator", pair)
    assert secret["type"] == "kubernetes.io/tls"
    assert webhook_certs.ours(secret)
    assert webhook_certs.from_secret(secret) == pair
    foreign = {**secret, "metadata": {"name": "co-webhook-cert", "labels": {}}}
    assert not webhook_certs.ours(foreign)
    assert webhook_certs.from_secret({"data": {}}) is None
