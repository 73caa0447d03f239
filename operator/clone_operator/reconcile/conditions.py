"""Status bookkeeping both kinds share: the reasons users read, and metav1.Conditions."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

from clone_operator.api.cloneobjects import CloneObjectStatus, State
from clone_operator.api.cloningoperations import CloningOperationStatus, Phase
from clone_operator.api.common import Condition

Status = TypeVar("Status", CloningOperationStatus, CloneObjectStatus)
To = TypeVar("To", Phase, State)


class Reason(StrEnum):
    """CamelCase reasons of status, conditions and Events, of both kinds."""

    ACCEPTED = "Accepted"
    WAITING_FOR_SLOT = "WaitingForSlot"
    STARTED = "Started"
    PROVISIONING = "Provisioning"
    TARGET_READY = "TargetReady"
    CREATED = "Created"
    CANCELED = "Canceled"
    ANOTHER_OPERATION_ACTIVE = "AnotherOperationActive"
    SOURCE_NOT_FOUND = "SourceNotFound"
    NAMESPACE_NOT_FOUND = "NamespaceNotFound"
    UNKNOWN_REGION = "UnknownRegion"
    INVALID_SOURCE = "InvalidSource"
    TARGET_EXISTS = "TargetExists"
    """A CloningOperation's target name is taken by an object it did not create."""
    DESTINATION_EXISTS = "DestinationExists"
    """The same for a CloneObject's destination (the seed API's 409)."""
    INVALID_TARGET = "InvalidTarget"
    INVALID_DESTINATION = "InvalidDestination"
    SOURCE_REFERENCED = "SourceReferenced"
    """The built target would still refer to its source's pods or Service: nothing made."""
    OUTSIDE_ADMITTED = "OutsideAdmitted"
    """A write outside what admission checked for the requester (an override that would
    change a copy's kind, name or namespace): refused, nothing written."""
    IDENTITY_REWRITTEN = "IdentityRewritten"
    """An Event: what the identity rewrite changed, for the user's audit."""
    COPY_METHOD_UNSUITABLE = "CopyMethodUnsuitable"
    """The copy method cannot deliver volumes where the target must run (or the storage
    lacks what it needs): refused at pickup, nothing created."""
    STORAGE_REFUSED = "StorageRefused"
    """The storage refused a snapshot or a target volume mid-copy (its own words)."""
    SNAPSHOTS_TAKEN = "SnapshotsTaken"
    """An Event and a condition: every snapshot of the source is cut (creationTime)."""
    VOLUMES_READY = "VolumesReady"
    """A condition: every target volume is Bound."""
    TRANSFERRING = "Transferring"
    """An Event: the mover pods of a Transfer copy were made (one pair per volume)."""
    TRANSFERRED = "Transferred"
    """An Event: every byte of every volume is on the target's volumes; the movers,
    their keys and the temporary volumes are removed."""
    TRANSFER_STALLED = "TransferStalled"
    """A Transfer moved no new byte for the operator's transferStallSeconds (a mover
    that cannot start, a target it cannot reach): the operation fails, naming the pods'
    state, rather than waiting out its timeout."""
    QUIESCED = "Quiesced"
    """An Event and a condition: the pre hooks ran in every source pod (spec.consistency)."""
    THAWED = "Thawed"
    """An Event and a condition: the post hooks ran; the source is released."""
    HOOK_FAILED = "HookFailed"
    """A hook failed (a non-zero exit, its timeout, an exec error): a pre hook with
    `onError: Fail` fails the operation after the post hooks ran; otherwise a Warning Event."""
    FREEZE_DEADLINE_EXCEEDED = "FreezeDeadlineExceeded"
    """The cut was not taken within spec.consistency.freezeDeadlineSeconds: the post hooks
    ran and the operation failed."""
    TIMEOUT = "Timeout"
    PODS_CANNOT_START = "PodsCannotStart"
    TIMEOUT_TOO_LONG = "TimeoutTooLong"
    """spec.timeoutSeconds is above the operator setting maxTimeoutSeconds: nothing made."""
    API_REFUSED = "ApiRefused"
    """The API server refused a request for a reason a retry cannot fix (a 4xx other than
    409/429: exceeded quota, a kind it does not serve, ...): engine.failures."""
    INTERNAL_ERROR = "InternalError"
    """The operator met an error of its own (a bug) on this resource and stopped: engine.failures."""


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: bool | None,
    reason: str,
    message: str,
    now: str,
    generation: int | None,
) -> list[Condition]:
    """The list with `type_` set; lastTransitionTime moves only when status changes."""
    value = "Unknown" if status is None else ("True" if status else "False")
    old = next((c for c in conditions if c.type == type_), None)
    new = Condition(
        type=type_,
        status=value,
        reason=reason,
        message=message,
        last_transition_time=old.last_transition_time
        if old is not None and old.status == value
        else now,
        observed_generation=generation,
    )
    if old is None:
        return [*conditions, new]
    return [new if c.type == type_ else c for c in conditions]


def moved(
    status: Status, update: dict[str, Any], now: str, generation: int | None, started: bool
) -> Status:
    """The status after a move of either kind: `update` (its own fields), stamped with
    updatedAt and observedGeneration; createdAt on the first move, startedAt on the
    first move to InProgress (`started`)."""
    updated = status.model_copy(
        update={**update, "updated_at": now, "observed_generation": generation}
    )
    if updated.created_at is None:
        updated.created_at = now
    if started and updated.started_at is None:
        updated.started_at = now
    return updated


@dataclass(frozen=True)
class Transition(Generic[To]):
    """A move to `to` (an operation's phase, a clone object's state), with the reason
    and message users see: both front doors move by one."""

    to: To
    reason: Reason
    message: str

    @property
    def warning(self) -> bool:
        """A failure: its Event is a Warning."""
        return self.to.value == "Failed"
