"""The CloneObject state machine: Pending → InProgress → Created | Failed. Pure.

`next_step` says what the engine does next, `apply` the status a transition writes,
`waiting` and `progress` the status while it waits for a slot or for its cluster;
`failure_of` what a copy's error means to the user (`COPY_ERRORS`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from clone_operator.api.cloneobjects import CloneObjectStatus, Destination, SourceKind, State
from clone_operator.api.cloningoperations import CopyMethod
from clone_operator.builders.objects import CopyError
from clone_operator.kube.errors import Invalid, NotFound
from clone_operator.reconcile.clusters import (
    Readiness,
    SourceNotFound,
    TargetExists,
    creation_failure,
    progress_message,
)
from clone_operator.reconcile.conditions import Reason, Transition, moved, set_condition
from clone_operator.reconcile.writes import OutsideAdmitted


class Step(StrEnum):
    ADMIT = "Admit"  # new: record Pending and the options that will be applied
    START = "Start"  # Pending: check source and destination namespace, go InProgress
    CLONE = "Clone"  # InProgress: create the destination and wait until it is usable
    FINISH = "Finish"  # terminal: remove a failed clone's partial objects, then finalize


def next_step(state: State | None) -> Step:
    if state is None:
        return Step.ADMIT
    if state.terminal:
        return Step.FINISH
    return Step.START if state is State.PENDING else Step.CLONE


# The cluster engine speaks of targets; a CloneObject's is its destination.
_DESTINATION_REASONS = {
    Reason.TARGET_EXISTS: Reason.DESTINATION_EXISTS,
    Reason.INVALID_TARGET: Reason.INVALID_DESTINATION,
}


def destination_reason(reason: Reason) -> Reason:
    """A failure reason of the cluster engine, in a CloneObject's words."""
    return _DESTINATION_REASONS.get(reason, reason)


COPY_ERRORS = (CopyError, SourceNotFound, TargetExists, OutsideAdmitted, Invalid, NotFound)
"""What making a copy may raise that ends the CloneObject Failed (`failure_of`)."""


def failure_of(
    kind: SourceKind, destination_namespace: str, error: Exception
) -> tuple[Reason, str]:
    """The reason and the message a user can act on, for an error of a copy of `kind`
    (one of `COPY_ERRORS`): the cluster engine's (`reconcile.clusters.creation_failure`)
    in a CloneObject's words, and the copy's own."""
    if isinstance(error, CopyError):
        return Reason.INVALID_SOURCE, str(error)
    if isinstance(error, NotFound):  # on create: the destination namespace is missing
        return (
            Reason.NAMESPACE_NOT_FOUND,
            f"destination namespace {destination_namespace} does not exist",
        )
    if isinstance(error, Invalid):
        return (
            Reason.INVALID_DESTINATION,
            f"the API server refused the {kind.value} built from the source and options: "
            f"{error.message}",
        )
    reason, message = creation_failure(error)
    return destination_reason(reason), message


def apply(
    status: CloneObjectStatus,
    transition: Transition[State],
    now: str,
    generation: int | None,
    parameters: dict[str, Any] | None = None,
    destination: Destination | None = None,
    copy_method: CopyMethod | None = None,
) -> CloneObjectStatus:
    """The status after a transition; a failure's message joins errorMessages."""
    state, reason, message = transition.to, transition.reason, transition.message
    conditions = set_condition(
        status.conditions, "Ready", state is State.CREATED, reason, message, now, generation
    )
    if state is State.FAILED:
        conditions = set_condition(conditions, "Failed", True, reason, message, now, generation)
    errors = list(status.error_messages)
    if state is State.FAILED and message not in errors:
        errors.append(message)
    updated = moved(
        status,
        {"state": state, "conditions": conditions, "error_messages": errors},
        now,
        generation,
        started=state is State.IN_PROGRESS,
    )
    if parameters is not None:
        updated.parameters = parameters
    if destination is not None:
        updated.destination = destination
    if copy_method is not None:
        updated.copy_method = copy_method
    return updated


def waiting(
    status: CloneObjectStatus, why: str, now: str, generation: int | None
) -> CloneObjectStatus | None:
    """A Pending cluster clone's status while it waits for a slot (`why`), in its `Ready`
    condition (reason WaitingForSlot); None when it says so already."""
    ready = next((c for c in status.conditions if c.type == "Ready"), None)
    if ready is not None and (ready.reason, ready.message) == (Reason.WAITING_FOR_SLOT, why):
        return None
    conditions = set_condition(
        status.conditions, "Ready", False, Reason.WAITING_FOR_SLOT, why, now, generation
    )
    return status.model_copy(update={"conditions": conditions, "updated_at": now})


def progress(
    status: CloneObjectStatus,
    target: str,
    readiness: Readiness,
    now: str,
    generation: int | None,
    note: str | None = None,
) -> CloneObjectStatus | None:
    """A cluster clone's readiness (and what it waits for, if known) in its `Ready`
    condition; None when nothing changed."""
    ready = next((c for c in status.conditions if c.type == "Ready"), None)
    message = progress_message(
        f"cluster {target}: {readiness} replicas ready", ready.message if ready else None, note
    )
    if ready is not None and ready.message == message:
        return None
    conditions = set_condition(
        status.conditions, "Ready", False, Reason.PROVISIONING, message, now, generation
    )
    return status.model_copy(update={"conditions": conditions, "updated_at": now})


def pvc_bound(pvc: dict[str, Any]) -> bool:
    return bool((pvc.get("status") or {}).get("phase") == "Bound")
