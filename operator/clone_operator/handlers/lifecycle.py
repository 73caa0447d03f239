"""Operator startup and cleanup: kopf's settings and login, and the engine's Context in
kopf's memo."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from clone_operator.engine import lifecycle
from clone_operator.engine.context import Context
from clone_operator.handlers import admission
from clone_operator.kube.endpoint import Endpoint
from clone_operator.settings import Settings


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """kopf's own connection (its watches) as the engine's (`k8s.api.Kube.connect`) and
    the gateway's: where `kube.endpoint` finds the API server and the operator's
    identity, the one kubeconfig loading. kopf logs in again on a 401 (a rotated token)."""
    return connection_info(Endpoint.discover())


def connection_info(endpoint: Endpoint) -> kopf.ConnectionInfo:
    identity = endpoint.identity
    return kopf.ConnectionInfo(
        server=endpoint.server,
        ca_path=endpoint.ca_file,
        insecure=not endpoint.verify,
        token=identity.bearer(),
        certificate_path=identity.cert_file or None,
        private_key_path=identity.key_file or None,
    )


# A startup that meets an API server still initializing (429 "storage is
# (re)initializing" right after CRDs change) is retried in seconds, not kopf's 60.
@kopf.on.startup(backoff=2)
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = Settings()
    # Events are the engine's, one per transition: log lines never become Events.
    settings.posting.level = logging.CRITICAL
    settings.watching.server_timeout = 300
    settings.batching.batch_window = 0.01  # react at once; the engine coalesces wake-ups itself
    # kopf keeps each object's worker (and the last event it handled, a whole parsed
    # body) for `idle_timeout` after its events stop; ours only poke the engine, so a
    # worker started again is cheap. 5 s of them, in a burst of 1,000 clones, is
    # thousands of bodies alive at once.
    settings.queueing.idle_timeout = 0.5
    settings.networking.request_timeout = 60
    ctx = await lifecycle.start(config)
    try:
        await admission.configure(settings, config, ctx.kube)
    except BaseException:
        await lifecycle.stop(ctx)
        raise
    memo.ctx = ctx


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    ctx: Context | None = getattr(memo, "ctx", None)
    if ctx is not None:
        await lifecycle.stop(ctx)


@kopf.on.probe(id="engine")
async def engine_probe(memo: kopf.Memo, **_: Any) -> dict[str, int]:
    """Part of kopf's liveness answer (`/healthz` on the health port): what the engine holds."""
    ctx: Context | None = getattr(memo, "ctx", None)
    if ctx is None:
        raise kopf.PermanentError("the engine is not started")  # /healthz answers 500
    return {
        "inProgressSlots": len(ctx.slots.taken),
        "notificationWorkers": len(ctx.deliveries),
        "apiRequests": sum(ctx.kube.requests.values()),
    }
