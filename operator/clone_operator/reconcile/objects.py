"""The CloneObject state machine: Pending → InProgress → Created | Failed. Pure."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from clone_operator.api.cloneobjects import CloneObjectStatus, State
from clone_operator.reconcile.conditions import set_condition


class Reason(StrEnum):
    ACCEPTED = "Accepted"
    STARTED = "Started"
    CREATED = "Created"
    SOURCE_NOT_FOUND = "SourceNotFound"
    NAMESPACE_NOT_FOUND = "NamespaceNotFound"
    DESTINATION_EXISTS = "DestinationExists"
    INVALID_DESTINATION = "InvalidDestination"
    INVALID_SOURCE = "InvalidSource"
    TIMEOUT = "Timeout"
    PODS_CANNOT_START = "PodsCannotStart"


class Step(StrEnum):
    ADMIT = "Admit"  # new: record Pending and the options that will be applied
    START = "Start"  # Pending: check source and destination namespace, go InProgress
    CLONE = "Clone"  # InProgress: create the destination and wait until it is usable
    FINISHED = "Finished"  # terminal: hand over or remove partial objects, then finalize


def next_step(state: State | None) -> Step:
    if state is None:
        return Step.ADMIT
    if state.terminal:
        return Step.FINISHED
    return Step.START if state is State.PENDING else Step.CLONE


def apply(
    status: CloneObjectStatus,
    state: State,
    reason: Reason,
    message: str,
    now: str,
    generation: int | None,
    **resolved: Any,
) -> CloneObjectStatus:
    """The status after moving to `state`; a failure's message joins errorMessages."""
    conditions = set_condition(
        status.conditions, "Ready", state is State.CREATED, reason, message, now, generation
    )
    if state is State.FAILED:
        conditions = set_condition(conditions, "Failed", True, reason, message, now, generation)
    errors = list(status.error_messages)
    if state is State.FAILED and message not in errors:
        errors.append(message)
    updates: dict[str, Any] = {
        "state": state,
        "updated_at": now,
        "conditions": conditions,
        "error_messages": errors,
        "observed_generation": generation,
        **resolved,
    }
    if status.created_at is None:
        updates["created_at"] = now
    return status.model_copy(update=updates)


def pvc_bound(pvc: dict[str, Any]) -> bool:
    return bool((pvc.get("status") or {}).get("phase") == "Bound")
