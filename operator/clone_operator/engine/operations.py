"""The CloningOperation lifecycle, one idempotent step at a time.

    (new) ─Admit─┬─(a slot is free)──────────────▶ InProgress ─Provision─▶ Succeeded | Failed
                 ├─▶ Pending ─Start─(a slot)─────▶ InProgress
                 │     └─Cancel─▶ Canceled
                 └─(another operation holds the source,
                    or timeoutSeconds > maxTimeoutSeconds)─▶ Failed
    (new, already canceled) ─Cancel─▶ Canceled

Each loop takes the newest body of the operation known (engine.loop), asks `reconcile.operations.next_step` what
to do, does it, and waits for a watch event (or a deadline). Status moves are
merge patches carrying the resourceVersion that the decision was made on, so a
cancel that lands first makes the move fail and the next loop cancels instead.
Terminal phases are finished afterwards (lock released, partial target
removed or handed over, notifications settled) and marked `status.finalized`,
so a restart at any line redoes only what is missing.

An InProgress operation holds a slot (services.runtime.Slots: `maxInProgress`, and a
namespace's share of it), as a CloneObject of a StatefulSet does (engine.objects).
An error a step does not handle is retried or fails the operation (engine.failures).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging

from clone_operator.api.cloningoperations import (
    KIND,
    CloningOperationSpec,
    CloningOperationStatus,
    Phase,
)
from clone_operator.api.common import API_VERSION, now_rfc3339
from clone_operator.builders import clusters as cluster_builders
from clone_operator.builders import locks
from clone_operator.builders.provenance import Owner
from clone_operator.engine import clusters, hooks, loop, storage
from clone_operator.engine.context import Context
from clone_operator.engine.loop import AGAIN, IDLE, ObjectLog, Resource, fail
from clone_operator.engine.writes import Writes
from clone_operator.k8s.api import JSON, Conflict
from clone_operator.reconcile import freeze as freeze_rules
from clone_operator.reconcile import operations as operation_rules
from clone_operator.reconcile import storage as storage_rules
from clone_operator.reconcile import volumes as volume_rules
from clone_operator.reconcile import writes
from clone_operator.reconcile.clusters import Readiness
from clone_operator.reconcile.conditions import Reason
from clone_operator.reconcile.operations import Resolution, Step, Transition
from clone_operator.reconcile.regions import UnknownRegion
from clone_operator.services import delivery

LEASE = ("coordination.k8s.io/v1", "Lease")


class Operation(Resource[CloningOperationSpec, CloningOperationStatus, Phase]):
    """One read of a CloningOperation, parsed."""

    @classmethod
    def parse(cls, body: JSON) -> Operation:
        return cls(*loop.parsed(body, CloningOperationSpec, CloningOperationStatus))

    @property
    def stage(self) -> Phase | None:
        return self.status.phase

    @property
    def failed(self) -> Phase:
        return Phase.FAILED

    def after(self, transition: Transition, now: str) -> CloningOperationStatus:
        return operation_rules.apply(self.status, transition, now, self.generation)


async def run(ctx: Context, namespace: str, name: str, uid: str, logger: logging.Logger) -> None:
    """Drive one operation until it is terminal and finalized (or deleted)."""

    async def step(body: JSON, log: ObjectLog) -> float | None:
        op = Operation.parse(body)
        return await STEPS[operation_rules.next_step(op.status.phase, op.spec.cancel)](ctx, op, log)

    async def give_up(body: JSON, reason: Reason, message: str, log: ObjectLog) -> bool:
        return await loop.give_up(ctx, Operation.parse(body), log, reason, message)

    try:
        await loop.drive(ctx, API_VERSION, KIND, namespace, name, uid, step, logger, give_up)
    except asyncio.CancelledError:
        ctx.slots.release(uid)  # deleted, or the operator is stopping
        raise
    ctx.slots.release(uid)  # finalized or deleted: the garbage collector does the rest


async def move(
    ctx: Context,
    op: Operation,
    transition: Transition,
    log: ObjectLog,
    resolution: Resolution | None = None,
    readiness: Readiness | None = None,
) -> bool:
    """Move by `transition`, recording the resolution (to InProgress) or the final
    readiness (to Succeeded) with it (engine.loop.moved)."""
    status = operation_rules.apply(
        op.status, transition, now_rfc3339(), op.generation, resolution, readiness
    )
    return await loop.moved(ctx, op, transition, status, log)


async def admit(ctx: Context, op: Operation, log: ObjectLog) -> float | None:
    """Take the per-source lock; the loser of a race fails with AnotherOperationActive.
    A timeout above the administrator's maximum fails first, before anything is made."""
    owner, source = op.owner, op.spec.source_cluster
    too_long = operation_rules.timeout_refused(op.spec, ctx.settings.max_timeout_seconds)
    if too_long is not None:
        await move(ctx, op, too_long, log)
        return AGAIN
    try:
        lease = await ctx.kube.create(locks.build_lock(owner, source))
        ctx.record(owner.uid).lock = lease["metadata"]["uid"]
    except Conflict:
        existing = await ctx.kube.get(*LEASE, owner.namespace, locks.lock_name(source))
        if existing is None:
            return AGAIN  # released in between: try again
        holder_name, holder_uid = locks.parse_holder(existing["spec"].get("holderIdentity", ""))
        if holder_uid != owner.uid:
            holder = await ctx.kube.get(API_VERSION, KIND, owner.namespace, holder_name)
            holder_phase = operation_rules.lock_holder_phase(holder, holder_uid)
            if holder_phase is None:  # a stale lock: break it (only that very version of it)
                await ctx.kube.delete(
                    existing, resource_version=existing["metadata"]["resourceVersion"]
                )
                return AGAIN
            transition = operation_rules.another_active(holder_name, holder_phase, source)
            await move(ctx, op, transition, log)
            return AGAIN
    if ctx.slots.try_take(owner.uid, op.created or "", owner.namespace):
        # A slot is free: start at once. Pending means "waiting for a slot".
        return await start(ctx, op, log)
    await move(ctx, op, Transition(Phase.PENDING, Reason.ACCEPTED, "waiting for a slot"), log)
    return AGAIN


async def cancel(ctx: Context, op: Operation, log: ObjectLog) -> float | None:
    await move(
        ctx,
        op,
        Transition(Phase.CANCELED, Reason.CANCELED, "canceled while Pending; nothing was created"),
        log,
    )
    return AGAIN


async def start(ctx: Context, op: Operation, log: ObjectLog) -> float | None:
    """Wait for a slot, resolve the spec against the source, then the guarded move to
    InProgress that records the resolution."""
    owner, spec = op.owner, op.spec
    if not ctx.slots.try_take(owner.uid, op.created or "", owner.namespace):
        why = ctx.slots.why_waiting(owner.namespace)
        waiting = operation_rules.waiting(op.status, why, now_rfc3339())
        if waiting is not None:
            await loop.write_status(ctx, op.body, waiting.wire())
        return IDLE
    # (Not bounded by `ctx.building`: queued behind the creates, pickup p95 at 1,000 went
    # from 1.6 s to 4-10 s.)
    try:
        source, service = await clusters.load_source(ctx.kube, owner.namespace, spec.source_cluster)
        resolution = await resolve(ctx, op.body, spec, owner, source, service)
        # The target is built from this very read:
        ctx.record(owner.uid).keep_source(source, service)
        del source, service
    except storage_rules.Refused as e:
        return await fail(ctx, op, log, Reason.COPY_METHOD_UNSUITABLE, str(e))
    except clusters.SourceNotFound as e:
        return await fail(ctx, op, log, Reason.SOURCE_NOT_FOUND, str(e))
    except UnknownRegion as e:
        return await fail(ctx, op, log, Reason.UNKNOWN_REGION, str(e))
    except cluster_builders.BuildError as e:
        return await fail(ctx, op, log, Reason.INVALID_SOURCE, str(e))
    if not await move(ctx, op, operation_rules.started(spec, resolution), log, resolution):
        ctx.record(owner.uid).source = None  # decided on a stale read: the next step reads again
    return AGAIN


async def resolve(
    ctx: Context,
    body: JSON,
    spec: CloningOperationSpec,
    owner: Owner,
    source: JSON,
    service: JSON | None,
) -> Resolution:
    """The spec against its source: the regions, the target, and the copy method the
    storage allows (`reconcile.storage.choose`, decided before anything is created).
    Pickup records it; the webhook asks it too, to refuse at `kubectl apply` what pickup
    would. Raises UnknownRegion, BuildError, or storage's Refused (also for consistency
    hooks on a method that takes no snapshot)."""
    region = await clusters.source_region(ctx.kube, source, ctx.node_regions)
    resolution = operation_rules.resolve(spec, owner, source, service, region, ctx.regions())
    plan = operation_rules.cluster_plan(spec, owner, resolution, source, service)
    choice = await storage.decide(
        ctx.storage_lists,
        body,
        owner.namespace,
        cluster_builders.source_pvc_names(plan),
        spec.copy_method,
        resolution.source_region,
        resolution.target_region,
        spec.volume_snapshot_class_name,
    )
    no_hooks = freeze_rules.hooks_refusal(spec, choice.method)
    if no_hooks is not None:
        raise storage_rules.Refused(f"{no_hooks}. {choice.why}".rstrip(". "))
    too_long = storage_rules.transfer_name_refusal(choice.method, resolution.target_cluster)
    if too_long is not None:
        raise storage_rules.Refused(too_long)
    return dataclasses.replace(
        resolution, copy_method=choice.method, snapshot_class=choice.snapshot_class
    )


async def provision(ctx: Context, op: Operation, log: ObjectLog) -> float | None:
    """Follow the target (the cluster engine) and write what it found."""
    owner, spec, status = op.owner, op.spec, op.status
    ctx.slots.occupy(owner.uid, owner.namespace)
    resolution = Resolution.recorded(status)
    target = clusters.Target(
        owner=owner,
        owner_body=op.body,
        source_name=spec.source_cluster,
        name=resolution.target_cluster,
        started_at=status.started_at,
        # An administrator may lower the maximum while it runs: it bounds this one too.
        timeout_seconds=min(spec.timeout_seconds, ctx.settings.max_timeout_seconds),
        plan=lambda source, service: operation_rules.cluster_plan(
            spec, owner, resolution, source, service
        ),
        method=operation_rules.method_of(spec.copy_method, resolution.copy_method),
        snapshot_class=resolution.snapshot_class,
        keep_snapshots=spec.keep_snapshots,
        source_region=resolution.source_region,
        volumes=tuple(status.volumes),
    )
    if freeze_rules.owed(spec, status):  # the source is quiesced around the cut first
        frozen = await hooks.drive(ctx, op.body, spec, status, target, log)
        if isinstance(frozen, hooks.Frozen):
            return frozen.wait
        if frozen.reason is not None:
            return await fail(ctx, Operation.parse(frozen.body), log, frozen.reason, frozen.message)
        return AGAIN
    followed = await clusters.follow_target(ctx, target)
    if isinstance(followed, clusters.Failed):
        return await fail(ctx, op, log, followed.reason, followed.message)
    if isinstance(followed, clusters.Ready):
        ready = followed.readiness
        message = f"target cluster {resolution.target_cluster} is ready ({ready})"
        transition = Transition(Phase.SUCCEEDED, Reason.TARGET_READY, message)
        if await move(ctx, op, transition, log, readiness=ready):
            ctx.metrics.done_after_ready(KIND, ctx.record(owner.uid).take_ready_seen())
        return AGAIN
    changed = volume_rules.copy_progress(
        status, followed.volumes, followed.point_in_time, followed.bound, now_rfc3339(),
        op.generation,
    )  # fmt: skip
    if changed is not None:
        if not await loop.write_status(ctx, op.body, changed.wire()):
            return AGAIN
        status = changed
    if followed.readiness is not None:
        updated = operation_rules.progress(status, followed.readiness, now_rfc3339(), followed.note)
        if updated is not None and not await loop.write_status(ctx, op.body, updated.wire()):
            return AGAIN
    return followed.wait


async def finish(ctx: Context, op: Operation, log: ObjectLog) -> float | None:
    """Terminal: hand over or remove the target, release the lock, email the outcome,
    mark finalized.

    Finalizing waits until every notification is settled: until then the operation's
    engine task stays (it runs while `status.finalized` is not true), also across
    restarts, which start the delivery worker again. The worker runs beside this
    loop (services.delivery), writes only `status.notifications`, and pokes the
    loop when it ends. Every terminal phase is told, Canceled included: whoever waits
    for the clone learns that it will not come.
    """
    owner = op.owner
    if freeze_rules.owed(op.spec, op.status):  # ended mid-freeze: the post hooks first
        await hooks.thaw_ended(ctx, op.body, op.spec, op.status, log)
        return AGAIN
    if delivery.running(ctx, owner.uid):
        return IDLE  # cleaned up when the worker started; it wakes us when it is done
    ctx.slots.release(owner.uid)
    # A Succeeded target was handed over before the phase was written.
    if op.status.phase is not Phase.SUCCEEDED and not op.spec.keep_target_on_failure:
        target = op.status.target_cluster  # recorded before anything was created
        method = op.status.copy_method or op.spec.copy_method
        admitted = writes.cluster(owner.namespace, target, method.value) if target else ()
        removed = await clusters.remove(Writes(ctx.kube, admitted), owner, owner.namespace)
        if removed:
            log.info("removed %d objects of the partial target", removed)
    await release_lock(ctx, op)
    if not delivery.settled(op.spec, op.status):
        delivery.start(ctx, op.body, log)
        return IDLE
    finalized = op.status.model_copy(update={"finalized": True})
    if not await loop.write_status(ctx, op.body, finalized.wire()):
        return AGAIN
    return None


async def release_lock(ctx: Context, op: Operation) -> None:
    """Delete the lock Lease if this operation holds it (never another's)."""
    owner, name = op.owner, locks.lock_name(op.spec.source_cluster)
    created = ctx.record(owner.uid).take_lock()
    if created is not None:  # created here: that very Lease, by its uid, without a read
        lease: JSON = {"apiVersion": LEASE[0], "kind": LEASE[1]}
        lease["metadata"] = {"namespace": owner.namespace, "name": name}
        with contextlib.suppress(Conflict):  # broken as stale, taken by another: not ours
            await ctx.kube.delete(lease, uid=created)
        return
    found = await ctx.kube.get(*LEASE, owner.namespace, name)
    if (
        found is not None
        and locks.parse_holder(found["spec"].get("holderIdentity", ""))[1] == owner.uid
    ):
        await ctx.kube.delete(found, uid=found["metadata"]["uid"])


STEPS = {
    Step.ADMIT: admit,
    Step.CANCEL: cancel,
    Step.START: start,
    Step.PROVISION: provision,
    Step.FINISH: finish,
}
