"""One operator instance's start and stop: its Context, leadership, metrics endpoint.

With leader election (the default), every replica starts the same way, serves
its probes and the webhook, and ignores watch events until it leads. On
becoming leader it counts the InProgress operations (the cluster-wide limit is
derived from the resources, never carried over in memory) and starts an engine
task for every unfinished resource; on losing the lead it stops them all before
anyone else may take over (services/election.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clone_operator.api import cloneobjects, cloningoperations
from clone_operator.api.common import API_VERSION
from clone_operator.engine import objects, operations
from clone_operator.engine.context import Context
from clone_operator.k8s.api import JSON, ApiError, Kube
from clone_operator.reconcile.leadership import Timing
from clone_operator.services import delivery, events, memory, metrics
from clone_operator.services.election import LEASE_API, Elector
from clone_operator.services.runtime import Fresh
from clone_operator.settings import Settings

log = logging.getLogger("clone_operator")

Run = Callable[[Context, str, str, str, logging.Logger], Coroutine[Any, Any, None]]
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class FrontDoor:
    """One custom resource and the engine that drives each of its objects."""

    kind: str
    plural: str
    run: Run
    log: logging.Logger


FRONT_DOORS = (
    FrontDoor(
        cloningoperations.KIND,
        cloningoperations.PLURAL,
        operations.run,
        logging.getLogger("clone_operator.operations"),
    ),
    FrontDoor(
        cloneobjects.KIND,
        cloneobjects.PLURAL,
        objects.run,
        logging.getLogger("clone_operator.objects"),
    ),
)


def resource_changed(ctx: Context, door: FrontDoor, event_type: str | None, body: JSON) -> None:
    """A watch event (or a rescan) of one resource: make sure its engine runs."""
    meta = body["metadata"]
    namespace, name, uid = str(meta["namespace"]), str(meta["name"]), str(meta["uid"])
    ctx.resource_changed(
        event_type, body, uid, lambda: door.run(ctx, namespace, name, uid, door.log), door.log
    )


async def start(settings: Settings) -> Context:
    """Connect, serve the metrics and readiness; lead at once, or join the election."""
    kube = await Kube.connect()
    poster = events.Poster(kube)
    ctx = Context(
        kube=kube,
        settings=settings,
        emit=poster.emit,
        metrics=metrics.Metrics(lambda: kube.requests),
        events=poster,
    )
    ctx.trimming = asyncio.get_running_loop().create_task(
        memory.trim_periodically(), name="malloc-trim"
    )
    try:
        if settings.leader_election:
            ctx.leading = False
            ctx.elector = elector(ctx)
            ctx.election = asyncio.get_running_loop().create_task(
                ctx.elector.run(), name="leader-election"
            )
        else:
            await take_slots_in_progress(ctx)
        if settings.metrics_port:
            ctx.monitoring = await metrics.serve(
                ctx.metrics, settings.metrics_host, settings.metrics_port, lambda: ctx.ready
            )
    except BaseException:
        await stop(ctx)
        raise
    ctx.ready = True  # /readyz: startup is done, kopf starts watching now
    log.info(
        "clone-operator started (maxInProgress=%d, per namespace %d, namespaces=%s, "
        "leader election %s)",
        settings.max_in_progress,
        settings.namespace_share,
        ",".join(settings.namespaces) or "all",
        f"on Lease {ctx.elector.namespace}/{ctx.elector.name} as {ctx.elector.me}"
        if ctx.elector
        else "off: acting alone",
    )
    return ctx


def elector(ctx: Context) -> Elector:
    settings = ctx.settings
    namespace = settings.leader_election_namespace or (
        SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        if SERVICE_ACCOUNT_NAMESPACE.exists()
        else "default"
    )
    chosen = Elector(
        kube=ctx.kube,
        namespace=namespace,
        name=settings.leader_election_lease,
        on_lead=lambda lease: lead(ctx, lease),
        on_lose=lambda lease: step_down(ctx, lease),
        log=log,
        timing=Timing(
            lease_duration=settings.leader_election_lease_seconds,
            renew_deadline=settings.leader_election_renew_deadline_seconds,
            retry_period=settings.leader_election_retry_seconds,
        ),
    )

    def fence() -> bool:
        if chosen.may_act():
            return True
        ctx.metrics.writes_refused.inc()
        return False

    ctx.kube.fence = fence
    ctx.kube.identify(chosen.me)
    if ctx.events is not None:
        ctx.events.instance = chosen.me
    return chosen


async def lead(ctx: Context, lease: JSON) -> None:
    """Just became leader: take over in the background (the elector must keep renewing)."""
    ctx.metrics.leading(True)
    me = ctx.elector.me if ctx.elector else "?"
    await lease_event(ctx, lease, "LeaderElected", f"{me} leads")
    ctx.takeover = asyncio.get_running_loop().create_task(take_over(ctx), name="take-over")


async def take_over(ctx: Context) -> None:
    """Count the slots from the resources, then drive every unfinished resource (events
    seen while standing by were ignored). Retried until it succeeds or the lead is lost."""
    delay = 0.5
    while True:
        try:
            ctx.reset_slots()
            in_progress = await take_slots_in_progress(ctx)
            ctx.leading = True
            namespaces: list[str | None] = [*ctx.settings.namespaces] or [None]
            for door in FRONT_DOORS:
                for namespace in namespaces:
                    for body in await ctx.kube.list(API_VERSION, door.kind, namespace):
                        resource_changed(ctx, door, None, body)
        except (ApiError, OSError, TimeoutError) as e:
            log.warning("taking over as leader: %s; again in %.1f s", e, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
            continue
        log.info("took over as leader: %d clones InProgress", in_progress)
        return


IN_PROGRESS = (
    (cloningoperations.KIND, "status.phase=InProgress"),
    (
        cloneobjects.KIND,
        f"status.state=InProgress,spec.source.kind={cloneobjects.SourceKind.STATEFUL_SET.value}",
    ),
)
"""Every whole-cluster clone InProgress, of either front door: each holds a slot."""


async def take_slots_in_progress(ctx: Context) -> int:
    """At startup: clones already InProgress hold their slots before anything new starts.
    (Namespaced RBAC allows listing only in the watched namespaces.)"""
    namespaces: list[str | None] = [*ctx.settings.namespaces] or [None]
    for kind, selector in IN_PROGRESS:
        for namespace in namespaces:
            for found in await ctx.kube.list(API_VERSION, kind, namespace, field_selector=selector):
                meta = found["metadata"]
                ctx.slots.occupy(meta["uid"], meta["namespace"])
    return len(ctx.slots.taken)


async def step_down(ctx: Context, lease: JSON) -> None:
    """Lost the lead (could not renew in time): stop every engine task and worker."""
    ctx.leading = False
    if ctx.takeover is not None:
        ctx.takeover.cancel()
        await asyncio.gather(ctx.takeover, return_exceptions=True)
    await ctx.runners.stop_all()
    await delivery.stop_all(ctx)
    ctx.fresh = Fresh()
    ctx.metrics.leading(False)
    me = ctx.elector.me if ctx.elector else "?"
    await lease_event(
        ctx, lease, "LeadershipLost", f"{me} stopped leading: the Lease was not renewed in time"
    )


async def lease_event(ctx: Context, lease: JSON, reason: str, message: str) -> None:
    """An Event on the Lease (`kubectl describe lease`), posted at once and unfenced:
    a replica that just lost the lead still says so."""
    meta = lease.get("metadata") or {}
    if not meta.get("uid"):
        return
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    event: JSON = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}-", "namespace": meta["namespace"]},
        "eventTime": now,
        "type": "Warning" if reason == "LeadershipLost" else "Normal",
        "reason": reason,
        "action": reason,
        "note": message,
        "reportingController": "cloning.dev/clone-operator",
        "reportingInstance": ctx.elector.me if ctx.elector else "clone-operator",
        "regarding": {
            "apiVersion": LEASE_API,
            "kind": "Lease",
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
        },
    }
    try:
        await ctx.kube.call(
            "POST", f"/apis/events.k8s.io/v1/namespaces/{meta['namespace']}/events",
            body=event, fenced=False,
        )  # fmt: skip
    except ApiError as e:  # an Event is a courtesy; the log says it too
        log.warning("could not post the %s event: %s", reason, e)


async def stop(ctx: Context) -> None:
    """Stop every engine task and delivery worker, hand the Lease back, then the client
    and the endpoint."""
    ctx.ready = False
    for task in (ctx.election, ctx.takeover, ctx.trimming):
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    await ctx.runners.stop_all()
    await delivery.stop_all(ctx)
    if ctx.events is not None:
        await ctx.events.stop()
    if ctx.elector is not None:
        await ctx.elector.release()
    counts = ctx.kube.requests
    log.info(
        "api requests: total=%d %s",
        sum(counts.values()),
        " ".join(f"{method}={n}" for method, n in sorted(counts.items())),
    )
    log.info(
        "api requests by resource: %s",
        ", ".join(f"{what}={n}" for what, n in ctx.kube.by_resource.most_common()),
    )
    await ctx.kube.close()
    if ctx.monitoring is not None:
        await ctx.monitoring.cleanup()
