"""The webhook's self-signed certificate, shared by every replica through one Secret.

The first replica to start makes the pair and creates the Secret; the others
(and later restarts) read it. A pair that no longer names the webhook's host
or expires within 30 days is replaced, under a resourceVersion precondition,
so replicas racing to renew agree on one. A Secret of that name that this
operator did not create is never touched: startup fails, naming it.

These writes are not the engine's: every replica makes them before any
election, so they bypass the leader fence.
"""

from __future__ import annotations

import datetime
import logging

from clone_operator import webhook_certs
from clone_operator.k8s.api import Conflict, Kube, path

log = logging.getLogger(__name__)
ATTEMPTS = 5


class NotOurs(RuntimeError):
    """The Secret's name is taken by something this operator did not create."""


async def shared(kube: Kube, namespace: str, name: str, hosts: list[str]) -> webhook_certs.KeyPair:
    url = path("v1", "Secret", namespace, name)
    for _ in range(ATTEMPTS):
        existing = await kube.get("v1", "Secret", namespace, name)
        if existing is not None and not webhook_certs.ours(existing):
            raise NotOurs(
                f"Secret {namespace}/{name} exists and was not made by clone-operator: "
                "remove it or choose another name (CLONE_OPERATOR_WEBHOOK_CERT_SECRET)"
            )
        found = webhook_certs.from_secret(existing) if existing else None
        now = datetime.datetime.now(datetime.UTC)
        if found is not None and webhook_certs.usable(found, hosts, now):
            return found
        fresh = webhook_certs.generate(hosts)
        body = webhook_certs.to_secret(name, namespace, fresh)
        try:
            if existing is None:
                await kube.call("POST", path("v1", "Secret", namespace), body=body, fenced=False)
                log.info(
                    "made the webhook's certificate for %s in Secret %s/%s", hosts, namespace, name
                )
            else:
                body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
                await kube.call("PUT", url, body=body, fenced=False)
                log.info("renewed the webhook's certificate in Secret %s/%s", namespace, name)
        except Conflict:
            continue  # another replica wrote first: read theirs
        return fresh
    raise RuntimeError(f"Secret {namespace}/{name}: {ATTEMPTS} conflicting writes in a row")
