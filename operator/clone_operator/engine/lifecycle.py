"""One operator instance's start and stop: its Context, slots, metrics endpoint."""

from __future__ import annotations

import logging

from clone_operator.engine import metrics, notifications, operations
from clone_operator.engine.context import Context, EventSink
from clone_operator.k8s.api import Kube
from clone_operator.settings import Settings

log = logging.getLogger("clone_operator")


async def start(settings: Settings, emit: EventSink) -> Context:
    """Connect, count the slots already taken, serve the metrics and readiness."""
    kube = await Kube.connect()
    ctx = Context(
        kube=kube, settings=settings, emit=emit, metrics=metrics.Metrics(lambda: kube.requests)
    )
    in_progress = await operations.take_slots_in_progress(ctx)
    if settings.metrics_port:
        ctx.monitoring = await metrics.serve(
            ctx.metrics, settings.metrics_host, settings.metrics_port, lambda: ctx.ready
        )
    ctx.ready = True  # /readyz: startup is done, kopf starts watching now
    log.info(
        "clone-operator started (maxInProgress=%d, %d InProgress, namespaces=%s)",
        settings.max_in_progress,
        in_progress,
        ",".join(settings.namespaces) or "all",
    )
    return ctx


async def stop(ctx: Context) -> None:
    """Stop every engine task and delivery worker, then the client and the endpoint."""
    ctx.ready = False
    await ctx.runners.stop_all()
    await notifications.stop_all(ctx)
    counts = ctx.kube.requests
    log.info(
        "api requests: total=%d %s",
        sum(counts.values()),
        " ".join(f"{method}={n}" for method, n in sorted(counts.items())),
    )
    await ctx.kube.close()
    if ctx.monitoring is not None:
        await ctx.monitoring.cleanup()
