"""The CloningOperation state machine: which step comes next, and what each
transition writes into the status. Pure: observations in, decisions out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from clone_operator.api.cloningoperations import CloningOperationStatus, Phase
from clone_operator.reconcile.conditions import set_condition


class Reason(StrEnum):
    """CamelCase reasons of status, conditions and Events."""

    ACCEPTED = "Accepted"
    WAITING_FOR_SLOT = "WaitingForSlot"
    STARTED = "Started"
    PROVISIONING = "Provisioning"
    TARGET_READY = "TargetReady"
    CANCELED = "Canceled"
    ANOTHER_OPERATION_ACTIVE = "AnotherOperationActive"
    SOURCE_NOT_FOUND = "SourceNotFound"
    UNKNOWN_REGION = "UnknownRegion"
    INVALID_SOURCE = "InvalidSource"
    TARGET_EXISTS = "TargetExists"
    TIMEOUT = "Timeout"
    PODS_CANNOT_START = "PodsCannotStart"
    INVALID_TARGET = "InvalidTarget"


class Step(StrEnum):
    """What the engine does next for an operation."""

    ADMIT = "Admit"  # new: take the per-source lock, become Pending (or Failed)
    CANCEL = "Cancel"  # Pending with spec.cancel: become Canceled
    START = "Start"  # Pending: wait for a slot, then the guarded move to InProgress
    PROVISION = "Provision"  # InProgress: ensure the target exists, watch it get ready
    FINISHED = "Finished"  # terminal: only make sure the lock is released


def next_step(phase: Phase | None, cancel: bool) -> Step:
    if phase is None:
        return Step.CANCEL if cancel else Step.ADMIT
    if phase.terminal:
        return Step.FINISHED
    if phase is Phase.PENDING:
        return Step.CANCEL if cancel else Step.START
    return Step.PROVISION


@dataclass(frozen=True)
class Transition:
    """A move to `phase`, with the reason and message users see."""

    phase: Phase
    reason: Reason
    message: str

    @property
    def warning(self) -> bool:
        return self.phase is Phase.FAILED


def apply(
    status: CloningOperationStatus,
    transition: Transition,
    now: str,
    generation: int | None,
    **resolved: Any,
) -> CloningOperationStatus:
    """The status after a transition: phase, timestamps, reason, conditions."""
    phase = transition.phase
    conditions = status.conditions
    progressing = phase in (Phase.PENDING, Phase.IN_PROGRESS)
    conditions = set_condition(
        conditions,
        "Progressing",
        progressing,
        transition.reason,
        transition.message,
        now,
        generation,
    )
    conditions = set_condition(
        conditions,
        "Ready",
        phase is Phase.SUCCEEDED,
        transition.reason,
        transition.message,
        now,
        generation,
    )
    if phase is Phase.FAILED:
        conditions = set_condition(
            conditions, "Failed", True, transition.reason, transition.message, now, generation
        )
    updates: dict[str, Any] = {
        "phase": phase,
        "reason": transition.reason.value,
        "message": transition.message,
        "updated_at": now,
        "conditions": conditions,
        "observed_generation": generation,
        **resolved,
    }
    if status.created_at is None:
        updates["created_at"] = now
    if phase is Phase.IN_PROGRESS and status.started_at is None:
        updates["started_at"] = now
    if phase.terminal and status.completed_at is None:
        updates["completed_at"] = now
    return status.model_copy(update=updates)


def progress(
    status: CloningOperationStatus, ready: int, desired: int, now: str
) -> CloningOperationStatus | None:
    """The status with readiness progress, or None when nothing changed."""
    if status.ready_replicas == ready and status.replicas == desired:
        return None
    return status.model_copy(
        update={
            "ready_replicas": ready,
            "replicas": desired,
            "ready": f"{ready}/{desired}",
            "updated_at": now,
            "message": f"target {status.target_cluster}: {ready}/{desired} replicas ready",
        }
    )


def target_ready(statefulset: dict[str, Any]) -> tuple[int, int, bool]:
    """(ready, desired, done): done once every desired replica is ready and the
    StatefulSet controller has observed the current generation."""
    spec = statefulset.get("spec") or {}
    st = statefulset.get("status") or {}
    desired = int(spec.get("replicas", 1))
    ready = int(st.get("readyReplicas") or 0)
    observed = st.get("observedGeneration") == statefulset["metadata"].get("generation")
    return ready, desired, observed and ready >= desired


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def timed_out(started_at: str | None, timeout_seconds: int, now: datetime) -> bool:
    if started_at is None:
        return False
    return (now - parse_time(started_at)).total_seconds() >= timeout_seconds


def seconds_left(started_at: str | None, timeout_seconds: int, now: datetime) -> float:
    if started_at is None:
        return float(timeout_seconds)
    return max(0.0, timeout_seconds - (now - parse_time(started_at)).total_seconds())


def unschedulable_message(
    pods: list[dict[str, Any]], now: datetime, grace_seconds: int
) -> str | None:
    """Why the target cannot start, once a pod stayed unschedulable past the grace period."""
    for pod in pods:
        for c in (pod.get("status") or {}).get("conditions") or []:
            if c.get("type") != "PodScheduled" or c.get("status") != "False":
                continue
            if c.get("reason") != "Unschedulable" or not c.get("lastTransitionTime"):
                continue
            since = parse_time(c["lastTransitionTime"])
            if (now - since).total_seconds() >= grace_seconds:
                name = pod["metadata"]["name"]
                return f"pod {name} cannot be scheduled: {c.get('message', 'no reason given')}"
    return None
