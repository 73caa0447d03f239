"""The CloneObject lifecycle: Pending → InProgress → Created | Failed.

ConfigMaps, Secrets and Services are copied in one create. A
PersistentVolumeClaim is a CSI clone (`dataSource` = the source) and is
Created once Bound. A StatefulSet is a whole cluster, cloned by the same
cluster engine as CloningOperation (`engine.clusters.follow_target`). PVC and
cluster clones fail after the operator setting `objectTimeoutSeconds`, counted
from when they went InProgress. A cluster clone holds an InProgress slot, as a
CloningOperation does (services.runtime.Slots): it waits Pending for one. The
destination is never overwritten nor adopted: a name already taken by an object
this CloneObject did not create ends Failed (DestinationExists), and the object
stays byte-for-byte as it was.
Object bodies are never logged (Secrets).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from clone_operator.api.cloneobjects import (
    KIND,
    CloneObjectSpec,
    CloneObjectStatus,
    Destination,
    SourceKind,
    State,
)
from clone_operator.api.cloningoperations import CopyMethod, VolumeStatus
from clone_operator.api.common import API_VERSION, VOLUME_SNAPSHOT, now_rfc3339
from clone_operator.builders import clusters as cluster_builders
from clone_operator.builders import objects as object_builders
from clone_operator.builders import provenance
from clone_operator.builders import snapshots as snapshot_builders
from clone_operator.engine import clusters, loop, snapshots, storage
from clone_operator.engine.context import Context
from clone_operator.engine.loop import AGAIN, IDLE, ObjectLog, Resource, fail
from clone_operator.engine.writes import Writes
from clone_operator.k8s.api import JSON, ApiError, Invalid, Kube
from clone_operator.reconcile import clusters as cluster_rules
from clone_operator.reconcile import objects as object_rules
from clone_operator.reconcile import storage as storage_rules
from clone_operator.reconcile import volumes as volume_rules
from clone_operator.reconcile import writes
from clone_operator.reconcile.conditions import Reason, Transition
from clone_operator.reconcile.objects import Step
from clone_operator.reconcile.writes import OutsideAdmitted


class CloneObject(Resource[CloneObjectSpec, CloneObjectStatus, State]):
    """One read of a CloneObject, parsed, with its options' defaults resolved."""

    @classmethod
    def parse(cls, body: JSON) -> CloneObject:
        return cls(*loop.parsed(body, CloneObjectSpec, CloneObjectStatus))

    @property
    def stage(self) -> State | None:
        return self.status.state

    @property
    def failed(self) -> State:
        return State.FAILED

    def after(self, transition: Transition[State], now: str) -> CloneObjectStatus:
        return object_rules.apply(self.status, transition, now, self.generation)

    @property
    def kind(self) -> SourceKind:
        return SourceKind(self.spec.source.kind)

    @property
    def destination_name(self) -> str:
        name, source, uid = self.spec.options.name, self.spec.source.name, self.owner.uid
        if self.kind is SourceKind.STATEFUL_SET:
            return cluster_builders.target_name(name, source, uid)
        return name or object_builders.default_name(source, uid)

    @property
    def destination_namespace(self) -> str:
        return self.spec.options.namespace or self.namespace

    def writes(self, kube: Kube) -> Writes:
        """The funnel for this clone: its declared destination (a whole cluster, for a
        StatefulSet), of the declared kind, and nothing else."""
        if self.kind is SourceKind.STATEFUL_SET:
            method = self.status.copy_method
            return Writes(
                kube,
                writes.cluster(self.namespace, self.destination_name, method and method.value),
            )
        admitted = writes.copy(
            self.kind.api_version,
            self.kind.value,
            self.destination_namespace,
            self.destination_name,
            self.status.copy_method.value if self.status.copy_method else None,
        )
        return Writes(kube, admitted)

    @property
    def method(self) -> CopyMethod:
        """The copy method a volume clone was started with (recorded in status)."""
        method = self.status.copy_method or CopyMethod.VOLUME_CLONE
        return CopyMethod.VOLUME_CLONE if method is CopyMethod.AUTO else method

    @property
    def started_at(self) -> str | None:
        """When it went InProgress. (Written since startedAt exists; before, the last
        status change before InProgress is the nearest there is.)"""
        return self.status.started_at or self.status.updated_at


async def run(ctx: Context, namespace: str, name: str, uid: str, logger: logging.Logger) -> None:
    async def step(body: JSON, log: ObjectLog) -> float | None:
        obj = CloneObject.parse(body)
        return await STEPS[object_rules.next_step(obj.status.state)](ctx, obj, log)

    async def give_up(body: JSON, reason: Reason, message: str, log: ObjectLog) -> bool:
        return await loop.give_up(ctx, CloneObject.parse(body), log, reason, message)

    try:
        await loop.drive(ctx, API_VERSION, KIND, namespace, name, uid, step, logger, give_up)
    finally:
        ctx.slots.release(uid)  # finalized, deleted, or the operator is stopping


async def move(
    ctx: Context,
    obj: CloneObject,
    transition: Transition[State],
    log: ObjectLog,
    parameters: dict[str, Any] | None = None,
    destination: Destination | None = None,
    copy_method: CopyMethod | None = None,
) -> bool:
    """Move by `transition`, recording the applied options, the destination or the copy
    method with it (engine.loop.moved)."""
    status = object_rules.apply(
        obj.status,
        transition,
        now_rfc3339(),
        obj.generation,
        parameters,
        destination,
        copy_method,
    )
    return await loop.moved(ctx, obj, transition, status, log)


def parameters(obj: CloneObject) -> dict[str, Any]:
    """The options as applied, defaults resolved (status.parameters)."""
    options = obj.spec.options
    applied: dict[str, Any] = {"name": obj.destination_name, "namespace": obj.destination_namespace}
    if options.labels:
        applied["labels"] = options.labels
    if options.annotations:
        applied["annotations"] = options.annotations
    if options.overrides:
        applied["overrides"] = options.overrides
    return applied


def destination(obj: CloneObject, uid: str | None = None) -> Destination:
    return Destination(
        api_version=obj.kind.api_version,
        kind=obj.kind.value,
        name=obj.destination_name,
        namespace=obj.destination_namespace,
        uid=uid,
    )


async def admit(ctx: Context, obj: CloneObject, log: ObjectLog) -> float | None:
    await move(
        ctx,
        obj,
        Transition(State.PENDING, Reason.ACCEPTED, "waiting to start"),
        log,
        parameters=parameters(obj),
    )
    return AGAIN


async def start(ctx: Context, obj: CloneObject, log: ObjectLog) -> float | None:
    owner = obj.owner
    if obj.kind is SourceKind.STATEFUL_SET and not ctx.slots.try_take(
        owner.uid, obj.created or "", owner.namespace
    ):
        why = ctx.slots.why_waiting(owner.namespace)
        waiting = object_rules.waiting(obj.status, why, now_rfc3339(), obj.generation)
        if waiting is not None:
            await loop.write_status(ctx, obj.body, waiting.wire())
        return IDLE
    source = await ctx.kube.get(
        obj.kind.api_version, obj.kind.value, obj.namespace, obj.spec.source.name
    )
    if source is None:
        return await fail(
            ctx,
            obj,
            log,
            Reason.SOURCE_NOT_FOUND,
            f"source {obj.kind.value} {obj.namespace}/{obj.spec.source.name} does not exist",
        )
    if obj.destination_namespace != obj.namespace and (
        await ctx.kube.get("v1", "Namespace", None, obj.destination_namespace) is None
    ):
        return await fail(
            ctx,
            obj,
            log,
            Reason.NAMESPACE_NOT_FOUND,
            f"destination namespace {obj.destination_namespace} does not exist",
        )
    method = None
    if obj.kind.namespace_local:  # volumes: what the storage can do, before anything is made
        try:
            method = await copy_method_of(ctx, obj, source)
        except storage_rules.Refused as e:
            return await fail(ctx, obj, log, Reason.COPY_METHOD_UNSUITABLE, str(e))
    await move(
        ctx,
        obj,
        Transition(
            State.IN_PROGRESS,
            Reason.STARTED,
            f"cloning {obj.kind.value} {obj.spec.source.name} into {obj.destination_namespace}/{obj.destination_name}"
            + (f", copy method {method.value}" if method else ""),
        ),
        log,
        destination=destination(obj),
        copy_method=method,
    )
    return AGAIN


async def copy_method_of(ctx: Context, obj: CloneObject, source: JSON) -> CopyMethod:
    """The copy method of a volume clone (raises Refused), as a CloningOperation's."""
    requested = obj.spec.options.copy_method or CopyMethod.AUTO
    if obj.kind is SourceKind.PERSISTENT_VOLUME_CLAIM:
        pvcs = [obj.spec.source.name]
    else:
        plan = cluster_builders.ClusterPlan(
            owner=obj.owner,
            source=source,
            source_service=None,
            target_name=obj.destination_name,
            copy_method=CopyMethod.VOLUME_CLONE if requested is CopyMethod.AUTO else requested,
        )
        pvcs = cluster_builders.source_pvc_names(plan)
    choice = await storage.decide(
        ctx.storage_lists,
        obj.body,
        obj.namespace,
        pvcs,
        requested,
        None,
        None,
        obj.spec.options.volume_snapshot_class_name,
    )
    return choice.method


async def clone(ctx: Context, obj: CloneObject, log: ObjectLog) -> float | None:
    if obj.kind is SourceKind.STATEFUL_SET:
        return await clone_cluster(ctx, obj, log)
    snapshot = None
    pvc = obj.kind is SourceKind.PERSISTENT_VOLUME_CLAIM
    if pvc and obj.method.snapshots:
        cut = await snapshot_of(ctx, obj)
        if isinstance(cut, snapshots.Refused):
            return await fail(ctx, obj, log, Reason.STORAGE_REFUSED, cut.message)
        pair = [(obj.spec.source.name, obj.destination_name)]
        volumes = snapshots.volume_statuses(pair, {obj.spec.source.name: cut})
        if await write_progress(ctx, obj, volumes, snapshot_builders.cut_at([cut])):
            return AGAIN
        if not (cut.get("status") or {}).get("readyToUse"):
            return storage_rules.next_cut_look([cut], datetime.now(UTC))  # not ready yet
        snapshot = str(cut["metadata"]["name"])
    try:
        created = await ensure_copy(ctx, obj, snapshot)
    except object_rules.COPY_ERRORS as e:
        reason, message = object_rules.failure_of(obj.kind, obj.destination_namespace, e)
        return await fail(ctx, obj, log, reason, message)
    if pvc:
        bound = {obj.destination_name: (obj.spec.source.name, object_rules.pvc_bound(created))}
        if await write_progress(ctx, obj, bound=bound):
            return AGAIN
        if not object_rules.pvc_bound(created):
            refused = await refusal_of(ctx, obj, created)
            if refused is not None:
                return await fail(ctx, obj, log, Reason.STORAGE_REFUSED, refused)
            timeout = ctx.settings.object_timeout_seconds
            left = cluster_rules.seconds_left(obj.started_at, timeout, datetime.now(UTC))
            if left <= 0:
                return await fail(
                    ctx,
                    obj,
                    log,
                    Reason.TIMEOUT,
                    f"PersistentVolumeClaim {obj.namespace}/{obj.destination_name} was not "
                    f"bound within {timeout} s",
                )
            return max(min(left, 5.0), 0.1)  # the PVC watch wakes us sooner
        funnel = obj.writes(ctx.kube)
        if obj.method.snapshots and not obj.spec.options.keep_snapshots:
            await snapshots.remove(funnel, obj.owner, obj.namespace)  # the copy is independent
        elif obj.method.snapshots:
            for kept in await snapshots.owned(funnel, obj.owner, obj.namespace, VOLUME_SNAPSHOT):
                await clusters.release(funnel, kept, obj.owner)
        await clusters.release(funnel, created, obj.owner)
    await move(
        ctx,
        obj,
        Transition(
            State.CREATED,
            Reason.CREATED,
            f"created {obj.kind.value} {obj.destination_namespace}/{obj.destination_name}",
        ),
        log,
        destination=destination(obj, created["metadata"]["uid"]),
    )
    return AGAIN


async def write_progress(
    ctx: Context,
    obj: CloneObject,
    volumes: list[VolumeStatus] | None = None,
    point_in_time: str | None = None,
    bound: dict[str, tuple[str, bool]] | None = None,
) -> bool:
    """Write a volume copy's progress (its snapshot, its PVC Bound) and the stage
    conditions, when it changed; True then (the step ends: the next one reads it)."""
    updated = volume_rules.copy_progress(
        obj.status, volumes, point_in_time, bound, now_rfc3339(), obj.generation
    )
    if updated is None:
        return False
    if await loop.write_status(ctx, obj.body, updated.wire()):
        for stage in volume_rules.stages_ended(obj.status, updated):
            ctx.metrics.stage_done(stage, obj.method.value, obj.started_at)
            if stage == "cut":
                message = f"snapshot {updated.volumes[0].snapshot} cut at {point_in_time} and ready"
                ctx.emit(obj.body, Reason.SNAPSHOTS_TAKEN, message, False)
    return True


async def snapshot_of(ctx: Context, obj: CloneObject) -> JSON | snapshots.Refused:
    """The VolumeSnapshot a PVC copy is restored from (taken here if missing), as it is
    now, or the storage's refusal (a failed snapshot, or one late past the deadline)."""
    funnel, name = obj.writes(ctx.kube), obj.destination_name
    snap = await funnel.get(*VOLUME_SNAPSHOT, obj.namespace, name)
    if snap is None:
        source = await ctx.kube.get(
            "v1", "PersistentVolumeClaim", obj.namespace, obj.spec.source.name
        )
        if source is None:
            return snapshots.Refused(
                f"source PersistentVolumeClaim {obj.spec.source.name} no longer exists"
            )
        plan = object_builders.CopyPlan(
            owner=obj.owner, source=source, name=name, namespace=obj.namespace,
            labels=obj.spec.options.labels,
        )  # fmt: skip
        try:
            [snap] = await clusters.ensure(
                funnel,
                [
                    snapshot_builders.copy_snapshot(
                        plan, obj.spec.options.volume_snapshot_class_name
                    )
                ],
                obj.owner,
            )
        except (clusters.TargetExists, OutsideAdmitted, Invalid) as e:
            return snapshots.Refused(str(e))
    body = {"apiVersion": VOLUME_SNAPSHOT[0], "kind": VOLUME_SNAPSHOT[1], **snap}
    error = storage_rules.snapshot_error(body) or storage_rules.snapshot_late(
        body, datetime.now(UTC), ctx.settings.snapshot_deadline_seconds
    )
    if error is not None:
        return snapshots.Refused(error)
    return body


async def refusal_of(ctx: Context, obj: CloneObject, pvc: JSON) -> str | None:
    """The storage's own words if it refused to provision the copy (ProvisioningFailed)."""
    events = await ctx.kube.list(
        "v1",
        "Event",
        obj.destination_namespace,
        field_selector=f"involvedObject.name={obj.destination_name},"
        f"reason={storage_rules.PROVISIONING_FAILED}",
    )
    storage_class = (pvc.get("spec") or {}).get("storageClassName")
    return storage_rules.storage_refusal(events, obj.destination_name, storage_class)


async def ensure_copy(ctx: Context, obj: CloneObject, snapshot: str | None = None) -> JSON:
    """Create the copy, or return it if this CloneObject created it before a restart."""
    owner = obj.owner
    existing = await ctx.kube.get(
        obj.kind.api_version, obj.kind.value, obj.destination_namespace, obj.destination_name
    )
    if existing is not None and provenance.created_by(existing, owner):
        return {"apiVersion": obj.kind.api_version, "kind": obj.kind.value, **existing}
    source = await ctx.kube.get(
        obj.kind.api_version, obj.kind.value, obj.namespace, obj.spec.source.name
    )
    if source is None:
        raise clusters.SourceNotFound(
            f"source {obj.kind.value} {obj.namespace}/{obj.spec.source.name} no longer exists"
        )
    size = None
    if obj.kind is SourceKind.PERSISTENT_VOLUME_CLAIM:
        size = ((source.get("status") or {}).get("capacity") or {}).get("storage")
    plan = object_builders.CopyPlan(
        owner=owner,
        source=source,
        name=obj.destination_name,
        namespace=obj.destination_namespace,
        labels=obj.spec.options.labels,
        annotations=obj.spec.options.annotations,
        overrides=obj.spec.options.overrides,
        source_size=size,
        snapshot=snapshot,
    )
    copy = object_builders.build_copy(plan, obj.kind)
    [created] = await clusters.ensure(obj.writes(ctx.kube), [copy], owner)
    return {"apiVersion": obj.kind.api_version, "kind": obj.kind.value, **created}


async def clone_cluster(ctx: Context, obj: CloneObject, log: ObjectLog) -> float | None:
    """A StatefulSet source: the cluster engine that CloningOperation uses."""
    owner, options = obj.owner, obj.spec.options
    ctx.slots.occupy(owner.uid, owner.namespace)
    method = obj.method
    followed = await clusters.follow_target(
        ctx,
        clusters.Target(
            owner=owner,
            owner_body=obj.body,
            source_name=obj.spec.source.name,
            name=obj.destination_name,
            started_at=obj.started_at,
            timeout_seconds=ctx.settings.object_timeout_seconds,
            plan=lambda source, service: cluster_builders.ClusterPlan(
                owner=owner,
                source=source,
                source_service=service,
                target_name=obj.destination_name,
                copy_method=method,
                extra_labels=options.labels,
                extra_annotations=options.annotations,
                statefulset_overrides=options.overrides,
            ),
            method=method,
            snapshot_class=obj.spec.options.volume_snapshot_class_name,
            keep_snapshots=bool(options.keep_snapshots),
        ),
    )
    if isinstance(followed, clusters.Failed):
        reason = object_rules.destination_reason(followed.reason)
        return await fail(ctx, obj, log, reason, followed.message)
    if isinstance(followed, clusters.Ready):
        if await move(
            ctx,
            obj,
            Transition(
                State.CREATED,
                Reason.CREATED,
                f"created cluster {obj.destination_name} ({followed.readiness} replicas ready)",
            ),
            log,
            destination=destination(obj, followed.uid),
        ):
            ctx.metrics.done_after_ready(KIND, ctx.record(owner.uid).take_ready_seen())
        return AGAIN
    now = now_rfc3339()
    status = volume_rules.copy_progress(
        obj.status, followed.volumes, followed.point_in_time, followed.bound, now, obj.generation
    )
    if followed.readiness is not None:
        status = (
            object_rules.progress(
                status or obj.status,
                obj.destination_name,
                followed.readiness,
                now,
                obj.generation,
                followed.note,
            )
            or status
        )
    if status is not None and not await loop.write_status(ctx, obj.body, status.wire()):
        return AGAIN
    return followed.wait


async def finish(ctx: Context, obj: CloneObject, log: ObjectLog) -> float | None:
    """Terminal: remove what a failed clone left (never anything it did not create)."""
    if obj.status.state is State.FAILED and obj.kind.namespace_local:
        try:
            removed = await clusters.remove(obj.writes(ctx.kube), obj.owner, obj.namespace)
        except ApiError as e:
            log.warning("could not remove partial objects yet: %s", e.message)
            return 5.0
        if removed:
            log.info("removed %d partial objects", removed)
    finalized = obj.status.model_copy(update={"finalized": True})
    if not await loop.write_status(ctx, obj.body, finalized.wire()):
        return AGAIN
    return None


STEPS = {Step.ADMIT: admit, Step.START: start, Step.CLONE: clone, Step.FINISH: finish}
