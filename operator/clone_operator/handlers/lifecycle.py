"""Operator startup and cleanup: build the engine's context into kopf's memo."""

from __future__ import annotations

import logging
from typing import Any, cast

import kopf

from clone_operator.api.cloningoperations import KIND as OPERATION_KIND
from clone_operator.api.common import API_VERSION, GROUP
from clone_operator.engine import metrics, notifications
from clone_operator.engine.context import Context
from clone_operator.engine.runtime import Slots, Wakeups
from clone_operator.handlers import admission
from clone_operator.k8s.api import Kube
from clone_operator.settings import Settings

log = logging.getLogger("clone_operator")


def post_event(body: dict[str, Any], reason: str, message: str, warning: bool) -> None:
    kopf.event(
        cast(kopf.Body, body),
        type="Warning" if warning else "Normal",
        reason=str(reason),
        message=message,
    )


# Retried every 2 s, not kopf's 60: on a fresh `helm install` the CRDs arrive with
# the pod, and the API server answers "storage is (re)initializing" at first.
@kopf.on.startup(backoff=2)
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = Settings()
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    # Events are the engine's, one per transition: log lines never become Events.
    settings.posting.level = logging.CRITICAL
    settings.watching.server_timeout = 300
    settings.batching.batch_window = 0.01  # react at once; the engine coalesces wake-ups itself
    settings.networking.request_timeout = 60
    admission.configure(settings, config)
    kube = await Kube.connect()
    wakeups = Wakeups()
    slots = Slots(limit=config.max_in_progress, on_free=wakeups.poke)
    # Operations already InProgress hold their slots before anything new starts.
    # Namespaced RBAC allows listing only in the watched namespaces.
    namespaces: list[str | None] = [*config.namespaces] or [None]
    try:
        for namespace in namespaces:
            in_progress = await kube.list(
                API_VERSION, OPERATION_KIND, namespace, field_selector="status.phase=InProgress"
            )
            for op in in_progress:
                slots.occupy(op["metadata"]["uid"])
    except BaseException:
        await kube.close()  # the retry connects afresh
        raise
    memo.ctx = Context(kube=kube, settings=config, slots=slots, wakeups=wakeups, emit=post_event)
    metrics.expose_api_requests(lambda: kube.requests)
    memo.monitoring = None
    if config.metrics_port:
        memo.monitoring = await metrics.serve(
            config.metrics_host,
            config.metrics_port,
            ready=lambda: bool(getattr(memo, "ready", False)),
        )
    memo.ready = True  # /readyz: startup is done, kopf starts watching now
    log.info(
        "clone-operator started (maxInProgress=%d, %d InProgress, namespaces=%s)",
        config.max_in_progress,
        len(slots.taken),
        ",".join(config.namespaces) or "all",
    )


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    memo.ready = False
    ctx: Context | None = getattr(memo, "ctx", None)
    if ctx is not None:
        await ctx.runners.stop_all()
        await notifications.stop_all(ctx)
        counts = ctx.kube.requests
        log.info(
            "api requests: total=%d %s",
            sum(counts.values()),
            " ".join(f"{method}={n}" for method, n in sorted(counts.items())),
        )
        await ctx.kube.close()
    runner = getattr(memo, "monitoring", None)
    if runner is not None:
        await runner.cleanup()


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
