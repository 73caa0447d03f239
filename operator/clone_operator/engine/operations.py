"""The CloningOperation lifecycle, one idempotent step at a time.

    (new) ─Admit─▶ Pending ─Start─▶ InProgress ─Provision─▶ Succeeded | Failed
      │              ├─Cancel─▶ Canceled
      └──────────────┴─(another operation holds the source)─▶ Failed

Each loop re-reads the operation, asks `reconcile.operations.next_step` what
to do, does it, and waits for a watch event (or a deadline). Status moves are
merge patches carrying the resourceVersion that the decision was made on, so a
cancel that lands first makes the move fail and the next loop cancels instead.
Terminal phases are finalized afterwards (lock released, partial target
removed or handed over) and marked `status.finalized`, so a restart at any
line redoes only what is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clone_operator.api.cloningoperations import (
    KIND,
    CloningOperationSpec,
    CloningOperationStatus,
    Phase,
)
from clone_operator.api.common import API_VERSION, now_rfc3339
from clone_operator.builders import clusters as cluster_builders
from clone_operator.builders import locks, provenance
from clone_operator.builders.provenance import Owner
from clone_operator.engine import clusters, loop, metrics, notifications
from clone_operator.engine.context import Context
from clone_operator.engine.loop import AGAIN, IDLE, ObjectLog
from clone_operator.k8s.api import JSON, Conflict, Invalid
from clone_operator.reconcile import operations as decide
from clone_operator.reconcile.operations import Reason, Step, Transition
from clone_operator.reconcile.regions import RegionTable, UnknownRegion

LEASE = ("coordination.k8s.io/v1", "Lease")


@dataclass(frozen=True)
class Operation:
    """One read of a CloningOperation, parsed."""

    body: JSON
    spec: CloningOperationSpec
    status: CloningOperationStatus

    @classmethod
    def parse(cls, body: JSON) -> Operation:
        return cls(
            body=body,
            spec=CloningOperationSpec.model_validate(body.get("spec") or {}),
            status=CloningOperationStatus.model_validate(body.get("status") or {}),
        )

    @property
    def meta(self) -> JSON:
        return dict(self.body["metadata"])

    @property
    def owner(self) -> Owner:
        m = self.meta
        return Owner(kind=KIND, name=m["name"], namespace=m["namespace"], uid=m["uid"])

    @property
    def generation(self) -> int | None:
        return self.meta.get("generation")


async def run(ctx: Context, namespace: str, name: str, uid: str, logger: logging.Logger) -> None:
    """Drive one operation until it is terminal and finalized."""

    async def step(body: JSON, log: ObjectLog) -> float | None:
        op = Operation.parse(body)
        return await STEPS[decide.next_step(op.status.phase, op.spec.cancel)](ctx, op, log)

    await loop.drive(ctx, API_VERSION, KIND, namespace, name, uid, step, logger)


async def write_status(ctx: Context, op: Operation, status: CloningOperationStatus) -> bool:
    return await loop.write_status(ctx, op.body, status.wire())


async def move(
    ctx: Context, op: Operation, transition: Transition, log: ObjectLog, **resolved: Any
) -> bool:
    status = decide.apply(op.status, transition, now_rfc3339(), op.generation, **resolved)
    if not await write_status(ctx, op, status):
        return False
    log.info(
        "%s → %s (%s): %s",
        op.status.phase or "new",
        transition.phase,
        transition.reason,
        transition.message,
    )
    ctx.emit(op.body, transition.reason, transition.message, transition.warning)
    if transition.phase.terminal:
        ctx.slots.release(op.owner.uid)
        metrics.finished(KIND, transition.phase.value, op.meta.get("creationTimestamp"))
    return True


async def admit(ctx: Context, op: Operation, log: ObjectLog) -> float | None:
    """Take the per-source lock; the loser of a race fails with AnotherOperationActive."""
    owner, source = op.owner, op.spec.source_cluster
    lease = locks.build_lock(owner, source)
    try:
        await ctx.kube.create(lease)
        holder_name, holder_uid = owner.name, owner.uid
    except Conflict:
        existing = await ctx.kube.get(*LEASE, owner.namespace, locks.lock_name(source))
        if existing is None:
            return AGAIN  # released in between: try again
        holder_name, holder_uid = locks.parse_holder(existing["spec"].get("holderIdentity", ""))
        if holder_uid != owner.uid:
            holder = await ctx.kube.get(API_VERSION, KIND, owner.namespace, holder_name)
            holder_phase = ((holder or {}).get("status") or {}).get("phase")
            alive = (
                holder is not None
                and holder["metadata"]["uid"] == holder_uid
                and not (holder_phase and Phase(holder_phase).terminal)
            )
            if not alive:  # a stale lock: break it (only that very version of it)
                await ctx.kube.delete(
                    existing, resource_version=existing["metadata"]["resourceVersion"]
                )
                return AGAIN
            await move(
                ctx,
                op,
                Transition(
                    Phase.FAILED,
                    Reason.ANOTHER_OPERATION_ACTIVE,
                    f"operation {holder_name} is already {holder_phase or 'Pending'} for source "
                    f"cluster {source}; only one operation per cluster may be active. Wait for it "
                    "to finish (or cancel it while Pending) and create a new operation.",
                ),
                log,
            )
            return AGAIN
    if ctx.slots.try_take(owner.uid, op.meta.get("creationTimestamp", "")):
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
    """Wait for a slot, resolve everything, then the guarded move to InProgress."""
    owner, spec = op.owner, op.spec
    if not ctx.slots.try_take(owner.uid, op.meta.get("creationTimestamp", "")):
        if op.status.reason != Reason.WAITING_FOR_SLOT:
            waiting = op.status.model_copy(
                update={
                    "reason": Reason.WAITING_FOR_SLOT.value,
                    "message": f"waiting: {ctx.settings.max_in_progress} operations are already "
                    "InProgress (operator setting maxInProgress)",
                    "updated_at": now_rfc3339(),
                }
            )
            await write_status(ctx, op, waiting)
        return IDLE
    fail = _failer(ctx, op, log)
    try:
        source, service = await clusters.load_source(ctx.kube, owner.namespace, spec.source_cluster)
    except clusters.SourceNotFound as e:
        return await fail(Reason.SOURCE_NOT_FOUND, str(e))
    try:
        source_region = await clusters.source_region(ctx.kube, source, ctx.node_regions)
        table = RegionTable(
            node_regions=frozenset(ctx.node_regions.values()),
            aliases=ctx.settings.region_aliases,
            allowed=frozenset(ctx.settings.allowed_regions),
        )
        target_region = table.resolve(spec.target_region) if spec.target_region else source_region
        version = spec.server_version or cluster_builders.source_server_version(
            source, spec.server_container
        )
        plan = cluster_builders.ClusterPlan(
            owner=owner,
            source=source,
            source_service=service,
            target_name=spec.target_name
            or cluster_builders.default_target_name(spec.source_cluster, owner.uid),
            server_version=version,
            server_container=spec.server_container,
            region=target_region,
            copy_method=spec.copy_method,
        )
        cluster_builders.build_statefulset(plan)  # refuses a plan that cannot work
    except UnknownRegion as e:
        return await fail(Reason.UNKNOWN_REGION, str(e))
    except cluster_builders.BuildError as e:
        return await fail(Reason.INVALID_SOURCE, str(e))
    region_text = f" in {target_region}" if target_region else ""
    await move(
        ctx,
        op,
        Transition(
            Phase.IN_PROGRESS,
            Reason.STARTED,
            f"cloning {spec.source_cluster} into {plan.target_name}{region_text} on version {version}",
        ),
        log,
        source_region=source_region,
        target_region=target_region,
        server_version=version,
        target_cluster=plan.target_name,
        replicas=plan.replicas,
        ready_replicas=0,
        ready=f"0/{plan.replicas}",
    )
    return AGAIN


async def provision(ctx: Context, op: Operation, log: ObjectLog) -> float | None:
    """Ensure the target exists, follow its readiness, succeed or fail."""
    owner, spec, status = op.owner, op.spec, op.status
    ctx.slots.occupy(owner.uid)
    fail = _failer(ctx, op, log)
    target = str(status.target_cluster)
    now = datetime.now(UTC)
    if decide.timed_out(status.started_at, spec.timeout_seconds, now):
        return await fail(
            Reason.TIMEOUT,
            f"target {target} was not ready within {spec.timeout_seconds} s "
            f"({status.ready or '0'} replicas ready)",
        )
    sts = ctx.targets.get(owner.uid) or await ctx.kube.get(
        "apps/v1", "StatefulSet", owner.namespace, target
    )
    if sts is not None and not provenance.created_by(sts, owner):
        return await fail(
            Reason.TARGET_EXISTS,
            f"StatefulSet {target} already exists and was not created by this operation; "
            "choose another spec.targetName",
        )
    if sts is None:
        try:
            source, service = await clusters.load_source(
                ctx.kube, owner.namespace, spec.source_cluster
            )
            plan = cluster_builders.ClusterPlan(
                owner=owner,
                source=source,
                source_service=service,
                target_name=target,
                server_version=status.server_version,
                server_container=spec.server_container,
                region=status.target_region,
                copy_method=spec.copy_method,
            )
            sizes = await clusters.source_pvc_sizes(ctx.kube, plan)
            plan = cluster_builders.ClusterPlan(**{**plan.__dict__, "source_pvc_sizes": sizes})
            await clusters.ensure(ctx.kube, cluster_builders.build_cluster(plan), owner)
        except clusters.SourceNotFound as e:
            return await fail(Reason.SOURCE_NOT_FOUND, str(e))
        except cluster_builders.BuildError as e:
            return await fail(Reason.INVALID_SOURCE, str(e))
        except clusters.TargetExists as e:
            return await fail(Reason.TARGET_EXISTS, str(e))
        except Invalid as e:
            return await fail(
                Reason.INVALID_TARGET, f"the API server refused the target: {e.message}"
            )
        ctx.emit(op.body, Reason.PROVISIONING, f"created target cluster {target}", False)
        return AGAIN
    ready, desired, done = decide.target_ready(sts)
    if done:
        await clusters.hand_over(ctx.kube, owner, owner.namespace)
        await move(
            ctx,
            op,
            Transition(
                Phase.SUCCEEDED,
                Reason.TARGET_READY,
                f"target cluster {target} is ready ({ready}/{desired})",
            ),
            log,
            ready_replicas=ready,
            replicas=desired,
            ready=f"{ready}/{desired}",
        )
        return AGAIN
    updated = decide.progress(status, ready, desired, now_rfc3339())
    if updated is not None and not await write_status(ctx, op, updated):
        return AGAIN
    left = decide.seconds_left(status.started_at, spec.timeout_seconds, now)
    waited = spec.timeout_seconds - left
    stuck, next_look = await clusters.stuck_pods(
        ctx.kube, owner, owner.namespace, waited, ctx.settings.unschedulable_grace_seconds
    )
    if stuck is not None:
        return await fail(Reason.PODS_CANNOT_START, stuck)
    return max(min(left, next_look), 0.1)


async def finish(ctx: Context, op: Operation, log: ObjectLog) -> float | None:
    """Terminal: hand over or remove the target, release the lock, email the outcome,
    mark finalized.

    Finalizing waits until every notification is settled: until then the operation's
    engine task stays (it runs while `status.finalized` is not true), also across
    restarts, which start the delivery worker again. The worker runs beside this
    loop (engine.notifications), writes only `status.notifications`, and pokes the
    loop when it ends. Every terminal phase is told, Canceled included: whoever waits
    for the clone learns that it will not come.
    """
    owner = op.owner
    if notifications.running(ctx, owner.uid):
        return IDLE  # cleaned up when the worker started; it wakes us when it is done
    ctx.slots.release(owner.uid)
    # A Succeeded target was handed over before the phase was written.
    if op.status.phase is not Phase.SUCCEEDED and not op.spec.keep_target_on_failure:
        removed = await clusters.remove(ctx.kube, owner, owner.namespace)
        if removed:
            log.info("removed %d objects of the partial target", removed)
    lease = await ctx.kube.get(*LEASE, owner.namespace, locks.lock_name(op.spec.source_cluster))
    if (
        lease is not None
        and locks.parse_holder(lease["spec"].get("holderIdentity", ""))[1] == owner.uid
    ):
        await ctx.kube.delete(lease, uid=lease["metadata"]["uid"])
    if not notifications.settled(op.spec, op.status):
        notifications.start(ctx, op.body, log)
        return IDLE
    if not await write_status(ctx, op, op.status.model_copy(update={"finalized": True})):
        return AGAIN
    return None


def _failer(
    ctx: Context, op: Operation, log: ObjectLog
) -> Callable[[Reason, str], Awaitable[float]]:
    async def fail(reason: Reason, message: str) -> float:
        await move(ctx, op, Transition(Phase.FAILED, reason, message), log)
        return AGAIN

    return fail


STEPS = {
    Step.ADMIT: admit,
    Step.CANCEL: cancel,
    Step.START: start,
    Step.PROVISION: provision,
    Step.FINISHED: finish,
}
