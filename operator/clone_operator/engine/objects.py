"""The CloneObject lifecycle: Pending → InProgress → Created | Failed.

ConfigMaps, Secrets and Services are copied in one create. A
PersistentVolumeClaim is a CSI clone (`dataSource` = the source) and is
Created once Bound. A StatefulSet is a whole cluster, cloned by the same
cluster engine as CloningOperation. The destination is never overwritten nor
adopted: a name already taken by an object this CloneObject did not create
ends Failed (the seed's 409), and the object stays byte-for-byte as it was.
Object bodies are never logged (Secrets).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
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
from clone_operator.api.common import API_VERSION, now_rfc3339
from clone_operator.builders import clusters as cluster_builders
from clone_operator.builders import objects as object_builders
from clone_operator.builders import provenance
from clone_operator.builders.provenance import Owner
from clone_operator.engine import clusters, loop, metrics
from clone_operator.engine.context import Context
from clone_operator.engine.loop import AGAIN, ObjectLog
from clone_operator.k8s.api import JSON, ApiError, Invalid, NotFound
from clone_operator.reconcile import objects as decide
from clone_operator.reconcile import operations as cluster_decide
from clone_operator.reconcile.objects import Reason, Step


@dataclass(frozen=True)
class CloneObject:
    body: JSON
    spec: CloneObjectSpec
    status: CloneObjectStatus

    @classmethod
    def parse(cls, body: JSON) -> CloneObject:
        return cls(
            body=body,
            spec=CloneObjectSpec.model_validate(body.get("spec") or {}),
            status=CloneObjectStatus.model_validate(body.get("status") or {}),
        )

    @property
    def owner(self) -> Owner:
        m = self.body["metadata"]
        return Owner(kind=KIND, name=m["name"], namespace=m["namespace"], uid=m["uid"])

    @property
    def kind(self) -> SourceKind:
        return SourceKind(self.spec.source.kind)

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"]["namespace"])

    @property
    def destination_name(self) -> str:
        if self.spec.options.name:
            return self.spec.options.name
        if self.kind is SourceKind.STATEFUL_SET:
            return cluster_builders.default_target_name(self.spec.source.name, self.owner.uid)
        return object_builders.default_name(self.spec.source.name, self.owner.uid)

    @property
    def destination_namespace(self) -> str:
        return self.spec.options.namespace or self.namespace

    @property
    def started(self) -> datetime:
        stamp = self.status.updated_at or self.status.created_at or now_rfc3339()
        return cluster_decide.parse_time(stamp)


async def run(ctx: Context, namespace: str, name: str, uid: str, logger: logging.Logger) -> None:
    async def step(body: JSON, log: ObjectLog) -> float | None:
        obj = CloneObject.parse(body)
        return await STEPS[decide.next_step(obj.status.state)](ctx, obj, log)

    await loop.drive(ctx, API_VERSION, KIND, namespace, name, uid, step, logger)


async def move(
    ctx: Context,
    obj: CloneObject,
    state: State,
    reason: Reason,
    message: str,
    log: ObjectLog,
    **resolved: Any,
) -> bool:
    generation = obj.body["metadata"].get("generation")
    status = decide.apply(obj.status, state, reason, message, now_rfc3339(), generation, **resolved)
    if not await loop.write_status(ctx, obj.body, status.wire()):
        return False
    log.info("%s → %s (%s): %s", obj.status.state or "new", state, reason, message)
    ctx.emit(obj.body, reason, message, state is State.FAILED)
    if state in (State.CREATED, State.FAILED):
        metrics.finished(KIND, state.value, obj.body["metadata"].get("creationTimestamp"))
    return True


async def fail(
    ctx: Context, obj: CloneObject, reason: Reason, message: str, log: ObjectLog
) -> float:
    await move(ctx, obj, State.FAILED, reason, message, log)
    return AGAIN


def parameters(obj: CloneObject) -> dict[str, Any]:
    """The options as applied, defaults resolved (the seed's `parameters`)."""
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
        State.PENDING,
        Reason.ACCEPTED,
        "waiting to start",
        log,
        parameters=parameters(obj),
    )
    return AGAIN


async def start(ctx: Context, obj: CloneObject, log: ObjectLog) -> float | None:
    source = await ctx.kube.get(
        obj.kind.api_version, obj.kind.value, obj.namespace, obj.spec.source.name
    )
    if source is None:
        return await fail(
            ctx,
            obj,
            Reason.SOURCE_NOT_FOUND,
            f"source {obj.kind.value} {obj.namespace}/{obj.spec.source.name} does not exist",
            log,
        )
    if obj.destination_namespace != obj.namespace and (
        await ctx.kube.get("v1", "Namespace", None, obj.destination_namespace) is None
    ):
        return await fail(
            ctx,
            obj,
            Reason.NAMESPACE_NOT_FOUND,
            f"destination namespace {obj.destination_namespace} does not exist",
            log,
        )
    await move(
        ctx,
        obj,
        State.IN_PROGRESS,
        Reason.STARTED,
        f"cloning {obj.kind.value} {obj.spec.source.name} into {obj.destination_namespace}/{obj.destination_name}",
        log,
        destination=destination(obj),
    )
    return AGAIN


async def clone(ctx: Context, obj: CloneObject, log: ObjectLog) -> float | None:
    if obj.kind is SourceKind.STATEFUL_SET:
        return await clone_cluster(ctx, obj, log)
    try:
        created = await ensure_copy(ctx, obj)
    except CLONE_ERRORS as e:
        return await fail(ctx, obj, *failure_of(obj, e), log)
    if obj.kind is SourceKind.PERSISTENT_VOLUME_CLAIM and not decide.pvc_bound(created):
        ctx.targets.pop(obj.owner.uid, None)
        return 5.0  # the PVC watch wakes us sooner
    if obj.kind is SourceKind.PERSISTENT_VOLUME_CLAIM:
        await _hand_over_one(ctx, obj, created)
    await move(
        ctx,
        obj,
        State.CREATED,
        Reason.CREATED,
        f"created {obj.kind.value} {obj.destination_namespace}/{obj.destination_name}",
        log,
        destination=destination(obj, created["metadata"]["uid"]),
    )
    return AGAIN


CLONE_ERRORS = (
    object_builders.CopyError,
    cluster_builders.BuildError,
    clusters.SourceNotFound,
    clusters.TargetExists,
    Invalid,
    NotFound,
)


def failure_of(obj: CloneObject, error: Exception) -> tuple[Reason, str]:
    """The reason and the message a user can act on, for an error of a clone."""
    if isinstance(error, object_builders.CopyError | cluster_builders.BuildError):
        return Reason.INVALID_SOURCE, str(error)
    if isinstance(error, clusters.SourceNotFound):
        return Reason.SOURCE_NOT_FOUND, str(error)
    if isinstance(error, clusters.TargetExists):
        return Reason.DESTINATION_EXISTS, str(error)
    if isinstance(error, Invalid):
        return (
            Reason.INVALID_DESTINATION,
            f"the API server refused the {obj.kind.value} built from the source and options: "
            f"{error.message}",
        )
    # NotFound on create: the destination namespace is missing.
    return (
        Reason.NAMESPACE_NOT_FOUND,
        f"destination namespace {obj.destination_namespace} does not exist",
    )


async def ensure_copy(ctx: Context, obj: CloneObject) -> JSON:
    """Create the copy, or return it if this CloneObject created it before a restart."""
    owner = obj.owner
    existing = await ctx.kube.get(
        obj.kind.api_version, obj.kind.value, obj.destination_namespace, obj.destination_name
    )
    if existing is not None and provenance.created_by(existing, owner):
        return existing
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
    )
    copy = object_builders.build_copy(plan, obj.kind)
    [created] = await clusters.ensure(ctx.kube, [copy], owner)
    return created


async def _hand_over_one(ctx: Context, obj: CloneObject, created: JSON) -> None:
    kept = provenance.owner_references_without(created, obj.owner.uid)
    if len(kept) != len(created["metadata"].get("ownerReferences") or []):
        created.setdefault("apiVersion", obj.kind.api_version)
        created.setdefault("kind", obj.kind.value)
        await ctx.kube.merge_patch(created, {"metadata": {"ownerReferences": kept or None}})


async def clone_cluster(ctx: Context, obj: CloneObject, log: ObjectLog) -> float | None:
    """A StatefulSet source: the cluster engine that CloningOperation uses."""
    owner, target = obj.owner, obj.destination_name
    sts = ctx.targets.get(owner.uid) or await ctx.kube.get(
        "apps/v1", "StatefulSet", obj.namespace, target
    )
    if sts is not None and not provenance.created_by(sts, owner):
        return await fail(
            ctx,
            obj,
            Reason.DESTINATION_EXISTS,
            f"StatefulSet {obj.namespace}/{target} already exists and was not created by this "
            "CloneObject; it is left untouched",
            log,
        )
    if sts is None:
        try:
            source, service = await clusters.load_source(
                ctx.kube, obj.namespace, obj.spec.source.name
            )
            plan = cluster_builders.ClusterPlan(
                owner=owner,
                source=source,
                source_service=service,
                target_name=target,
                extra_labels=obj.spec.options.labels,
                extra_annotations=obj.spec.options.annotations,
            )
            sizes = await clusters.source_pvc_sizes(ctx.kube, plan)
            plan = cluster_builders.ClusterPlan(**{**plan.__dict__, "source_pvc_sizes": sizes})
            objects = cluster_builders.build_cluster(plan)
            if obj.spec.options.overrides:
                objects[-1] = object_builders.merge_patch(objects[-1], obj.spec.options.overrides)
            await clusters.ensure(ctx.kube, objects, owner)
        except CLONE_ERRORS as e:
            return await fail(ctx, obj, *failure_of(obj, e), log)
        return AGAIN
    ready, desired, done = cluster_decide.target_ready(sts)
    if done:
        await clusters.hand_over(ctx.kube, owner, obj.namespace)
        await move(
            ctx,
            obj,
            State.CREATED,
            Reason.CREATED,
            f"created cluster {target} ({ready}/{desired} replicas ready)",
            log,
            destination=destination(obj, sts["metadata"]["uid"]),
        )
        return AGAIN
    waited = (datetime.now(UTC) - obj.started).total_seconds()
    timeout = ctx.settings.object_timeout_seconds
    if waited > timeout:
        return await fail(
            ctx,
            obj,
            Reason.TIMEOUT,
            f"cluster {target} was not ready within {timeout} s ({ready}/{desired})",
            log,
        )
    stuck, next_look = await clusters.stuck_pods(
        ctx.kube, owner, obj.namespace, waited, ctx.settings.unschedulable_grace_seconds
    )
    if stuck is not None:
        return await fail(ctx, obj, Reason.PODS_CANNOT_START, stuck, log)
    return min(next_look, timeout - waited + 0.5)


async def finish(ctx: Context, obj: CloneObject, log: ObjectLog) -> float | None:
    """Terminal: remove what a failed clone left (never anything it did not create)."""
    if obj.status.state is State.FAILED and obj.kind in (
        SourceKind.STATEFUL_SET,
        SourceKind.PERSISTENT_VOLUME_CLAIM,
    ):
        try:
            removed = await clusters.remove(ctx.kube, obj.owner, obj.namespace)
        except ApiError as e:
            log.warning("could not remove partial objects yet: %s", e.message)
            return 5.0
        if removed:
            log.info("removed %d partial objects", removed)
    if not await loop.write_status(
        ctx, obj.body, obj.status.model_copy(update={"finalized": True}).wire()
    ):
        return AGAIN
    return None


STEPS = {Step.ADMIT: admit, Step.START: start, Step.CLONE: clone, Step.FINISHED: finish}
