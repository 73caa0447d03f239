"""The CloningOperation state machine and its resolution. Pure: observations in,
decisions out.

`next_step` says what the engine does next; `resolve` decides, once, what the
spec comes to against the source (target name, server version, regions) and
refuses a target that cannot work; `started` is the move to InProgress that
records it and `apply` the status a transition writes, `Resolution` values
included; `cluster_plan` is what the target is built from.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from clone_operator.api.cloningoperations import (
    CloningOperationSpec,
    CloningOperationStatus,
    CopyMethod,
    Phase,
)
from clone_operator.builders import clusters as cluster_builders
from clone_operator.builders.provenance import Owner
from clone_operator.reconcile import conditions
from clone_operator.reconcile.clusters import Readiness, progress_message
from clone_operator.reconcile.conditions import Reason, moved, set_condition
from clone_operator.reconcile.regions import RegionTable

Transition = conditions.Transition[Phase]
"""An operation's move: to a Phase (the type both front doors share)."""


class Step(StrEnum):
    """What the engine does next for an operation."""

    ADMIT = "Admit"  # new: take the per-source lock, then start (or wait Pending, or fail)
    CANCEL = "Cancel"  # Pending with spec.cancel: become Canceled
    START = "Start"  # Pending: wait for a slot, then the guarded move to InProgress
    PROVISION = "Provision"  # InProgress: ensure the target exists, follow it until ready
    FINISH = "Finish"  # terminal: release the lock, clean up, notify, mark finalized


def next_step(phase: Phase | None, cancel: bool) -> Step:
    if phase is None:
        return Step.CANCEL if cancel else Step.ADMIT
    if phase.terminal:
        return Step.FINISH
    if phase is Phase.PENDING:
        return Step.CANCEL if cancel else Step.START
    return Step.PROVISION


@dataclass(frozen=True)
class Resolution:
    """What an operation's spec comes to against its source, decided once when it starts.

    Written into status with the move to InProgress, so that the target is built
    from exactly these values, also after a restart (`recorded`)."""

    target_cluster: str
    server_version: str
    source_region: str | None
    target_region: str | None
    replicas: int
    target_overrides: dict[str, Any] | None = None
    copy_method: CopyMethod | None = None
    """The copy method (`Auto` resolved); None: not decided yet (`resolve`), or an
    operation started before copy methods were recorded (its spec's then)."""
    snapshot_class: str | None = None

    @classmethod
    def recorded(cls, status: CloningOperationStatus) -> Resolution:
        """The resolution an InProgress operation's status holds."""
        return cls(
            copy_method=status.copy_method,
            snapshot_class=status.volume_snapshot_class,
            target_cluster=str(status.target_cluster),
            server_version=status.server_version or "",
            source_region=status.source_region,
            target_region=status.target_region,
            replicas=status.replicas or 0,
            target_overrides=status.target_overrides,
        )


def resolve(
    spec: CloningOperationSpec,
    owner: Owner,
    source: dict[str, Any],
    source_service: dict[str, Any] | None,
    source_region: str | None,
    regions: RegionTable,
) -> Resolution:
    """Defaults filled in from the source; raises UnknownRegion, or BuildError for a
    source that cannot be cloned as asked (checked, not built)."""
    resolution = Resolution(
        target_cluster=cluster_builders.target_name(
            spec.target_name, spec.source_cluster, owner.uid
        ),
        server_version=spec.server_version
        or cluster_builders.source_server_version(source, spec.server_container),
        source_region=source_region,
        target_region=regions.resolve(spec.target_region) if spec.target_region else source_region,
        replicas=int(source["spec"].get("replicas", 1)),
        target_overrides=spec.target_overrides,
    )
    cluster_builders.check(cluster_plan(spec, owner, resolution, source, source_service))
    return resolution


def started(spec: CloningOperationSpec, resolution: Resolution) -> Transition:
    """The move to InProgress that records `resolution`."""
    where = f" in {resolution.target_region}" if resolution.target_region else ""
    method = resolution.copy_method or spec.copy_method
    how = f", copy method {method.value}"
    if resolution.snapshot_class:
        how += f" (snapshot class {resolution.snapshot_class})"
    return Transition(
        Phase.IN_PROGRESS,
        Reason.STARTED,
        f"cloning {spec.source_cluster} into {resolution.target_cluster}{where} "
        f"on version {resolution.server_version}{how}",
    )


def cluster_plan(
    spec: CloningOperationSpec,
    owner: Owner,
    resolution: Resolution,
    source: dict[str, Any],
    source_service: dict[str, Any] | None,
) -> cluster_builders.ClusterPlan:
    """What the target's objects are built from."""
    return cluster_builders.ClusterPlan(
        owner=owner,
        source=source,
        source_service=source_service,
        target_name=resolution.target_cluster,
        server_version=resolution.server_version or None,
        server_container=spec.server_container,
        region=resolution.target_region,
        copy_method=method_of(spec.copy_method, resolution.copy_method),
        statefulset_overrides=spec.target_overrides,
    )


def method_of(requested: CopyMethod, resolved: CopyMethod | None) -> CopyMethod:
    """The method a target is built with: the resolved one; before it is resolved, `Auto`
    stands for the volumes to copy (VolumeClone builds the same PVC names)."""
    if resolved is not None:
        return resolved
    return CopyMethod.VOLUME_CLONE if requested is CopyMethod.AUTO else requested


def timeout_refused(spec: CloningOperationSpec, max_timeout_seconds: int) -> Transition | None:
    """The move to Failed of an operation asking a longer timeout than the operator
    setting maxTimeoutSeconds allows (None: it may go on). Refused, not shortened: the
    requester gets what they asked for or a clear no, before anything is made."""
    if spec.timeout_seconds <= max_timeout_seconds:
        return None
    return Transition(
        Phase.FAILED,
        Reason.TIMEOUT_TOO_LONG,
        f"spec.timeoutSeconds: {spec.timeout_seconds} is more than this operator allows "
        f"(maxTimeoutSeconds: {max_timeout_seconds}); nothing was made. Create a new "
        f"operation with timeoutSeconds of at most {max_timeout_seconds}.",
    )


def lock_holder_phase(holder: dict[str, Any] | None, holder_uid: str) -> Phase | None:
    """Where the operation a source's lock names stands while it still holds the lock
    (it exists as that very object, by its uid, and is not terminal); None: the lock is
    stale (its holder is gone, was made anew, or is finished) and may be broken."""
    if holder is None or holder["metadata"]["uid"] != holder_uid:
        return None
    phase = ((holder.get("status") or {}).get("phase")) or None
    if phase is None:
        return Phase.PENDING  # not admitted yet
    return None if Phase(phase).terminal else Phase(phase)


def another_active(holder_name: str, holder_phase: Phase, source: str) -> Transition:
    """The move to Failed of an operation whose source another live operation holds."""
    return Transition(
        Phase.FAILED,
        Reason.ANOTHER_OPERATION_ACTIVE,
        f"operation {holder_name} is already {holder_phase.value} for source cluster "
        f"{source}; only one operation per cluster may be active. Wait for it to finish "
        "(or cancel it while Pending) and create a new operation.",
    )


def waiting(status: CloningOperationStatus, why: str, now: str) -> CloningOperationStatus | None:
    """A Pending operation's status while it waits for a slot (`why`: services.runtime.Slots),
    or None when it says so already."""
    if status.reason == Reason.WAITING_FOR_SLOT and status.message == why:
        return None
    return status.model_copy(
        update={"reason": Reason.WAITING_FOR_SLOT.value, "message": why, "updated_at": now}
    )


def overridden_fields(patch: dict[str, Any] | None) -> str | None:
    """The leaf paths a merge patch sets or removes, comma-separated (at most 1024 chars)."""
    if not patch:
        return None

    def leaves(value: Any, prefix: str) -> list[str]:
        if isinstance(value, dict) and value:
            return [p for k, v in value.items() for p in leaves(v, f"{prefix}{k}.")]
        return [prefix.rstrip(".")]

    text = ", ".join(leaves(patch, ""))
    return text if len(text) <= 1024 else text[:1021] + "..."


def apply(
    status: CloningOperationStatus,
    transition: Transition,
    now: str,
    generation: int | None,
    resolution: Resolution | None = None,
    readiness: Readiness | None = None,
) -> CloningOperationStatus:
    """The status after a transition: phase, timestamps, reason, conditions, and the
    resolved values (on the move to InProgress) or the final readiness."""
    phase = transition.to
    conditions = status.conditions
    progressing = phase in (Phase.PENDING, Phase.IN_PROGRESS)
    for type_, value in (("Progressing", progressing), ("Ready", phase is Phase.SUCCEEDED)):
        conditions = set_condition(
            conditions, type_, value, transition.reason, transition.message, now, generation
        )
    if phase is Phase.FAILED:
        conditions = set_condition(
            conditions, "Failed", True, transition.reason, transition.message, now, generation
        )
    method = resolution.copy_method if resolution is not None else status.copy_method
    if phase is Phase.SUCCEEDED and method is not None and method.copies_data:
        # Every replica is ready, so every volume it mounts is Bound.
        message = "every target volume is Bound (every replica is ready)"
        conditions = set_condition(
            conditions, "VolumesReady", True, Reason.VOLUMES_READY.value, message, now, generation
        )
    updated = moved(
        status,
        {
            "phase": phase,
            "reason": transition.reason.value,
            "message": transition.message,
            "conditions": conditions,
        },
        now,
        generation,
        started=phase is Phase.IN_PROGRESS,
    )
    if phase.terminal and status.completed_at is None:
        updated.completed_at = now
    if resolution is not None:
        updated.target_cluster = resolution.target_cluster
        updated.server_version = resolution.server_version
        updated.source_region = resolution.source_region
        updated.target_region = resolution.target_region
        updated.target_overrides = resolution.target_overrides
        updated.copy_method = resolution.copy_method
        updated.volume_snapshot_class = resolution.snapshot_class
        updated.overridden = overridden_fields(resolution.target_overrides)
        readiness = readiness or Readiness(0, resolution.replicas, False)
    if readiness is not None:
        updated.ready_replicas, updated.replicas = readiness.ready, readiness.desired
        updated.ready = str(readiness)
    return updated


def progress(
    status: CloningOperationStatus, readiness: Readiness, now: str, note: str | None = None
) -> CloningOperationStatus | None:
    """The status with readiness progress (and what the target waits for, if known),
    or None when nothing changed."""
    message = progress_message(
        f"target {status.target_cluster}: {readiness} replicas ready", status.message, note
    )
    same_counts = status.ready_replicas == readiness.ready and status.replicas == readiness.desired
    if same_counts and (note is None or status.message == message):
        return None  # without a look at the pods, only new counts are worth a write
    return status.model_copy(
        update={
            "ready_replicas": readiness.ready,
            "replicas": readiness.desired,
            "ready": str(readiness),
            "updated_at": now,
            "message": message,
        }
    )
