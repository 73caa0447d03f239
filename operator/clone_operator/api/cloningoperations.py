"""CloningOperation: the Typesense cluster-cloning operation as a custom resource."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, JsonValue, StringConstraints

from clone_operator.api.common import (
    CamelModel,
    Conditions,
    DNSLabel,
    DNSSubdomain,
    EmailAddress,
    RegionName,
    ShortText,
    StatefulSetName,
    Timestamp,
    cel_rules,
    keyed_list,
    overrides_schema,
)

KIND = "CloningOperation"
PLURAL = "cloningoperations"

ImageTag = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", max_length=128)
]
"""A container image tag, as the OCI distribution spec allows it: what `serverVersion` is."""


class Phase(StrEnum):
    """Where an operation is in its life; terminal phases never change again."""

    PENDING = "Pending"
    IN_PROGRESS = "InProgress"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELED = "Canceled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_PHASES


TERMINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELED})


class CopyMethod(StrEnum):
    """How the target's volumes get their data (docs/copy-methods.md).

    `Auto` is resolved once, when the operation starts, into one of the others
    (`reconcile.storage.choose` writes the rule down); the resolved method is recorded in
    status.copyMethod."""

    AUTO = "Auto"
    SNAPSHOT = "Snapshot"
    GROUP_SNAPSHOT = "GroupSnapshot"
    VOLUME_CLONE = "VolumeClone"
    TRANSFER = "Transfer"
    """A snapshot of each volume, restored where the source lives, copied by mover pods
    into new volumes where the target runs (rsync over TLS): reaches any region."""
    NONE = "None"

    @property
    def snapshots(self) -> bool:
        """Whether the copy is cut with VolumeSnapshots (one each, or one group)."""
        return self in (CopyMethod.SNAPSHOT, CopyMethod.GROUP_SNAPSHOT, CopyMethod.TRANSFER)

    @property
    def transfers(self) -> bool:
        """Whether mover pods copy the data (the target's volumes start empty)."""
        return self is CopyMethod.TRANSFER

    @property
    def copies_data(self) -> bool:
        return self is not CopyMethod.NONE


SNAPSHOT_METHODS = "['Auto', 'Snapshot', 'GroupSnapshot', 'Transfer']"
"""CEL: the methods that may take snapshots (and so use a snapshot class)."""


class HookOnError(StrEnum):
    """What a failed pre hook does (Velero's `onError`)."""

    FAIL = "Fail"
    """Thaw (run the post hooks) and fail the operation: nothing is cut."""
    CONTINUE = "Continue"
    """Report it (an Event) and go on to the cut."""


HookCommand = Annotated[
    list[Annotated[str, StringConstraints(max_length=4096)]],
    Field(min_length=1, max_length=64),
]
"""An exec command: the program and its arguments, no shell unless it names one."""

HOOK_TIMEOUT_SECONDS = 300
"""A hook's default timeout. Velero's 30 s default is known too short for real flushes
(its users raise it for databases and search indexes that write gigabytes on a flush);
five minutes covers a large index's flush while a hung command still fails well within
the default freeze deadline (600 s) and the operation's timeout (1800 s)."""


class PostHook(CamelModel):
    """A command run in each of the source's pods after the cut (or when the freeze ends
    early). Runs at least once, maybe more (after a leader change): it must be
    idempotent, a thaw of a thawed application harmless."""

    model_config = cel_rules(
        {
            "rule": "size(self.command[0]) > 0",
            "message": "a hook's command[0] names the program to run: it cannot be empty",
            "fieldPath": ".command",
        }
    )

    container: DNSLabel | None = None
    """The container to run it in. Default: the pod's first container."""
    command: HookCommand
    """The command (exec form, no shell), e.g. `["curl", "-XPOST", "localhost:8108/resume"]`."""
    timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = HOOK_TIMEOUT_SECONDS
    """How long the operator waits for the command to exit. The command itself is not
    killed when the wait ends (Kubernetes' exec cannot): bound it yourself, e.g. with
    `timeout 60 …`."""


class PreHook(PostHook):
    """A command run in each of the source's pods before the cut: flush and pause writes.
    Runs again if the operator is replaced before the cut is taken: it must be idempotent."""

    on_error: HookOnError = HookOnError.FAIL
    """`Fail` (default): a non-zero exit, a timeout or an exec error thaws and fails the
    operation; `Continue`: it is reported and the cut goes ahead."""


FREEZE_DEADLINE_SECONDS = 600


class Consistency(CamelModel):
    """Application hooks around a snapshot copy's cut: the pre hooks quiesce the source
    (flush, pause writes), the snapshots are taken, and the post hooks release it as soon
    as every snapshot has a creationTime (not when they are readyToUse). The post hooks
    always run: after the cut, on a failure, at the freeze deadline, and after the
    operator was replaced mid-freeze."""

    model_config = cel_rules(
        {
            "rule": "(has(self.pre) ? size(self.pre) : 0) + (has(self.post) ? size(self.post) : 0) > 0",
            "message": "spec.consistency needs at least one pre or post hook",
        },
        {
            "rule": "!has(self.pre) || self.pre.all(h, !has(h.timeoutSeconds) || "
            "!has(self.freezeDeadlineSeconds) || h.timeoutSeconds < self.freezeDeadlineSeconds)",
            "message": "spec.consistency.pre: each hook's timeoutSeconds must be below "
            "freezeDeadlineSeconds (a hook that may run longer than the freeze may last "
            "can never let the cut happen)",
            "fieldPath": ".pre",
        },
    )

    pre: Annotated[list[PreHook], Field(max_length=8)] = []
    """Run in order, in every pod of the source, before the snapshots are taken."""
    post: Annotated[list[PostHook], Field(max_length=8)] = []
    """Run in order, in every pod of the source, once the cut is taken or the freeze ends
    early."""
    freeze_deadline_seconds: Annotated[int, Field(ge=10, le=86400)] = FREEZE_DEADLINE_SECONDS
    """The longest the source stays quiesced, counted from the first pre hook: past it the
    post hooks run and the operation fails (CloudNativePG's default, 10 minutes)."""


class FreezeStage(StrEnum):
    """Where a consistent cut is: `Freezing` (pre hooks) → `Cutting` (snapshots requested,
    until each has a creationTime) → `Thawing` (post hooks) → `Thawed`."""

    IDLE = "Idle"
    FREEZING = "Freezing"
    CUTTING = "Cutting"
    THAWING = "Thawing"
    THAWED = "Thawed"

    @property
    def frozen(self) -> bool:
        """The application may be paused: the post hooks are owed."""
        return self in (FreezeStage.FREEZING, FreezeStage.CUTTING, FreezeStage.THAWING)


class FreezeStatus(CamelModel):
    """The freeze of the source around the cut, recorded before each step so that any
    leader resumes it."""

    stage: FreezeStage = FreezeStage.IDLE
    """Idle, Freezing, Cutting, Thawing or Thawed."""
    started_at: Timestamp | None = None
    """When the pre hooks began: the freeze deadline counts from here."""
    thawed_at: Timestamp | None = None
    """When the post hooks ran."""
    failure: Annotated[str, StringConstraints(max_length=1024)] | None = None
    """Why the freeze ended early (a pre hook, the deadline, the operation's failure)."""
    post_attempts: Annotated[int, Field(ge=0, le=1000)] = 0
    """How often the post hooks were started (more than once after a leader change)."""
    post_failure: Annotated[str, StringConstraints(max_length=1024)] | None = None
    """What the post hooks answered when one failed: the source may still be paused."""


class VolumeStatus(CamelModel):
    """One target volume: where its data comes from and how far it is."""

    name: Annotated[str, StringConstraints(max_length=253)]
    """The target PVC."""
    source: Annotated[str, StringConstraints(max_length=253)]
    """The source PVC it is copied from."""
    snapshot: Annotated[str, StringConstraints(max_length=253)] | None = None
    """The VolumeSnapshot it is restored from (Snapshot, GroupSnapshot)."""
    cut_at: Timestamp | None = None
    """When the storage took the snapshot (its creationTime): the data's point in time."""
    snapshot_ready: bool | None = None
    """Whether the snapshot is readyToUse."""
    restore_size: Annotated[str, StringConstraints(max_length=64)] | None = None
    """The snapshot's restoreSize: the least the restored volume may ask for."""
    bound: bool | None = None
    """Whether the target PVC is Bound."""
    bytes_done: Annotated[int, Field(ge=0)] | None = None
    """Transfer: bytes of the volume on the target (sent, or found there already)."""
    bytes_total: Annotated[int, Field(ge=0)] | None = None
    """Transfer: bytes to move (rsync's file list is complete before it sends)."""
    bytes_per_second: Annotated[int, Field(ge=0)] | None = None
    """Transfer: the rate rsync measured last."""
    matched_bytes: Annotated[int, Field(ge=0)] | None = None
    """Transfer, once done: bytes the target held already (a resumed transfer's head
    start: a mover killed mid-way does not start over)."""
    transfer_attempts: Annotated[int, Field(ge=0)] | None = None
    """Transfer: attempts of the sending side (a restarted mover is one more)."""
    progress_at: Timestamp | None = None
    """Transfer: when bytesDone last grew (or the transfer began): a transfer without new
    bytes for the operator's transferStallSeconds fails (TransferStalled)."""
    transferred: bool | None = None
    """Transfer: whether every byte is on the target volume."""


TRANSFER_FIELDS = (
    "bytes_done",
    "bytes_total",
    "bytes_per_second",
    "matched_bytes",
    "transfer_attempts",
    "progress_at",
    "transferred",
)
"""A volume's transfer progress: kept when a later look at the snapshots alone omits it."""


def _immutable(field: str) -> JsonValue:
    return {
        "rule": f"has(self.{field}) == has(oldSelf.{field}) && "
        f"(!has(self.{field}) || self.{field} == oldSelf.{field})",
        "message": f"spec.{field} is immutable; create a new CloningOperation instead",
        "fieldPath": f".{field}",
    }


IMMUTABLE_RULES: list[JsonValue] = [
    _immutable(f)
    for f in (
        "sourceCluster",
        "serverVersion",
        "targetRegion",
        "notificationEmailAddresses",
        "targetName",
        "copyMethod",
        "volumeSnapshotClassName",
        "keepSnapshots",
        "timeoutSeconds",
        "serverContainer",
        "keepTargetOnFailure",
        "targetOverrides",
        "consistency",
    )
]


def _any_object(description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "description": description,
    }


# The schema of spec.targetOverrides: any merge patch, except on the clone's identity
# (common.overrides_schema), nor on the fields that make it a clone of its own.
_OVERRIDES = overrides_schema("targetOverrides", "target StatefulSet")
TARGET_OVERRIDES_SCHEMA: dict[str, Any] = {
    **_OVERRIDES,
    "properties": {
        **_OVERRIDES["properties"],
        "spec": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "description": "Merged into the target StatefulSet's spec (replicas, template, "
            "…); not its selector, serviceName or volumeClaimTemplates.",
            "properties": {
                "selector": _any_object("Refused: the clone selects its own pods."),
                "serviceName": {
                    "type": "string",
                    "maxLength": 253,
                    "description": "Refused: the clone has its own Service.",
                },
                "volumeClaimTemplates": {
                    "type": "array",
                    "maxItems": 256,
                    "items": _any_object("Refused: the clone's volumes are its source's."),
                },
            },
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.selector) && !has(self.serviceName) && "
                    "!has(self.volumeClaimTemplates)",
                    "message": "targetOverrides cannot change spec.selector, spec.serviceName "
                    "or spec.volumeClaimTemplates: they are the clone's own identity (its "
                    "selector, its Service, the names of its cloned volumes)",
                }
            ],
        },
    },
}


class CloningOperationSpec(CamelModel):
    """What to clone and how. Immutable after creation, except `cancel`."""

    model_config = cel_rules(
        *IMMUTABLE_RULES,
        {
            "rule": "!has(oldSelf.cancel) || !oldSelf.cancel || (has(self.cancel) && self.cancel)",
            "message": "spec.cancel cannot be unset once it is true",
            "fieldPath": ".cancel",
        },
        {
            "rule": f"!has(self.volumeSnapshotClassName) || self.copyMethod in {SNAPSHOT_METHODS}",
            "message": "spec.volumeSnapshotClassName is only used by copyMethod Auto, Snapshot, "
            "GroupSnapshot or Transfer",
            "fieldPath": ".volumeSnapshotClassName",
        },
        {
            "rule": f"!has(self.consistency) || self.copyMethod in {SNAPSHOT_METHODS}",
            "message": "spec.consistency: hooks run around a snapshot's cut; copyMethod "
            "VolumeClone and None take no snapshot (use Snapshot, GroupSnapshot, Transfer or Auto)",
            "fieldPath": ".consistency",
        },
        {
            "rule": "!has(self.consistency) || "
            "self.consistency.freezeDeadlineSeconds <= self.timeoutSeconds",
            "message": "spec.consistency.freezeDeadlineSeconds cannot exceed spec.timeoutSeconds",
            "fieldPath": ".consistency.freezeDeadlineSeconds",
        },
    )

    source_cluster: DNSLabel
    """Name of the source cluster: a StatefulSet in this namespace (with its governing
    Service and PersistentVolumeClaims)."""
    server_version: ImageTag | None = None
    """Image tag for the target's server container. Default: the source's tag."""
    target_region: RegionName | None = None
    """Region to place the target in: a `topology.kubernetes.io/region` node label value,
    or an alias from the operator's region table. Default: the source's region."""
    notification_email_addresses: Annotated[
        list[EmailAddress],
        Field(max_length=20, json_schema_extra={"x-kubernetes-list-type": "set"}),
    ] = []
    """Addresses emailed once when the operation ends: Succeeded, Failed or Canceled."""
    cancel: bool = False
    """Set to true to cancel. Accepted only while status.phase is Pending; cannot be unset."""
    target_name: StatefulSetName | None = None
    """Name of the target StatefulSet (and its Service). Default: `<source>-clone-<id>`."""
    copy_method: CopyMethod = CopyMethod.AUTO
    """`Snapshot` takes a VolumeSnapshot of each source PVC and restores the target's PVCs
    from them; `GroupSnapshot` takes one VolumeGroupSnapshot of all of them (one
    crash-consistent point for every replica); `VolumeClone` pre-creates the target's PVCs
    as CSI clones of the source's; `Transfer` snapshots each source PVC, restores it
    where the source lives and copies it with mover pods (rsync over TLS) into new
    volumes where the target runs: the one method that reaches another region; `None`
    gives the target empty volumes; `Auto` picks what the storage can do where the
    target runs, and `Transfer` only when no storage-level copy reaches it
    (status.copyMethod says what it picked). A method that cannot deliver volumes where the target must run is refused
    when the operation starts, before anything is created."""
    volume_snapshot_class_name: DNSSubdomain | None = None
    """VolumeSnapshotClass (or, for GroupSnapshot, VolumeGroupSnapshotClass) of the
    snapshots. Default: the class marked default for the volumes' CSI driver (or its only
    class)."""
    keep_snapshots: bool = False
    """Keep the snapshots after a successful copy (they outlive the operation, like the
    target). By default they are removed once the target's volumes are bound, and always
    when the operation fails or is deleted."""
    timeout_seconds: Annotated[int, Field(ge=30, le=86400)] = 1800
    """How long the target may take to become ready before the operation fails."""
    server_container: DNSLabel | None = None
    """Container whose image tag `serverVersion` sets. Default: the first container."""
    keep_target_on_failure: bool = False
    """Keep a failed operation's partial target for inspection instead of removing it."""
    consistency: Consistency | None = None
    """Hooks run in the source's pods around the cut (pre: flush and pause; post: resume),
    and the freeze deadline. Needs a snapshot copy method (`Auto` then uses snapshots only,
    or is refused when it starts) and the requester's right to `create pods/exec`."""
    target_overrides: Annotated[
        dict[str, Any] | None, Field(json_schema_extra=TARGET_OVERRIDES_SCHEMA)
    ] = None
    """A JSON merge patch (RFC 7386) applied to the target StatefulSet after it is built,
    e.g. `{"spec": {"template": {"metadata": {"annotations": {"a": "b"}}}}}`; a list (such
    as `containers`) is replaced whole. It cannot change the clone's identity
    (`apiVersion`, `kind`, `metadata.name`, `metadata.namespace`, its owners and
    finalizers, `spec.selector`, `spec.serviceName`, `spec.volumeClaimTemplates`), nor make
    the source's selectors pick the clone's pods.
    The API server's verdict on the result is quoted if it refuses it."""


class NotificationState(StrEnum):
    """Where one recipient's outcome email is.

    `Pending` (not delivered yet; retried at `nextAttemptAt`) → `Sending` (the SMTP
    server accepted the recipient and the message is being transferred) → `Sent`;
    or `Failed` (rejected by the server, or retries exhausted); `Unconfirmed` (the
    operator stopped while the message was being transferred: it is not sent again,
    so it may or may not have arrived); `Disabled` (the operator has no SMTP server
    configured). Every state but `Pending` and `Sending` is final.
    """

    PENDING = "Pending"
    SENDING = "Sending"
    SENT = "Sent"
    FAILED = "Failed"
    UNCONFIRMED = "Unconfirmed"
    DISABLED = "Disabled"

    @property
    def final(self) -> bool:
        return self not in (NotificationState.PENDING, NotificationState.SENDING)


class Notification(CamelModel):
    """Delivery of the outcome email to one address of spec.notificationEmailAddresses."""

    model_config = cel_rules(
        {
            "rule": "!has(oldSelf.sentAt) || (has(self.sentAt) && self.sentAt == oldSelf.sentAt"
            " && self.state == oldSelf.state)",
            "message": "a sent notification is final: sentAt and state cannot change",
            "fieldPath": ".sentAt",
        }
    )

    address: EmailAddress
    """The recipient."""
    state: NotificationState = NotificationState.PENDING
    """Pending, Sending, Sent, Failed, Unconfirmed or Disabled."""
    attempts: Annotated[int, Field(ge=0, le=1000)] = 0
    """SMTP delivery attempts made so far."""
    sent_at: Timestamp | None = None
    """When the SMTP server accepted the message for this address."""
    last_attempt_at: Timestamp | None = None
    """When the last attempt started."""
    next_attempt_at: Timestamp | None = None
    """When a Pending notification is tried again (after a transient error)."""
    last_error: Annotated[str, StringConstraints(max_length=1024)] | None = None
    """Why the last attempt failed (the SMTP server's reply, or the connection error), or why
    nothing is sent (Disabled)."""


class CloningOperationStatus(CamelModel):
    """Observed state, written by the operator through the status subresource."""

    model_config = cel_rules(
        {
            "rule": "!has(oldSelf.phase) || !(oldSelf.phase in ['Succeeded', 'Failed', "
            "'Canceled']) || (has(self.phase) && self.phase == oldSelf.phase)",
            "message": "status.phase is terminal and cannot change",
            "fieldPath": ".phase",
        },
        {
            "rule": "!has(oldSelf.phase) || !has(self.phase) || self.phase == oldSelf.phase"
            " || (oldSelf.phase == 'Pending' && self.phase in ['InProgress', 'Canceled',"
            " 'Failed']) || (oldSelf.phase == 'InProgress' && self.phase in "
            "['Succeeded', 'Failed'])",
            "messageExpression": "'status.phase cannot move from ' + oldSelf.phase + "
            "' to ' + self.phase",
            "fieldPath": ".phase",
        },
    )

    phase: Phase | None = None
    """Pending → InProgress → Succeeded | Failed; Pending → Canceled."""
    source_region: RegionName | None = None
    """Region the source cluster runs in."""
    target_region: RegionName | None = None
    """Region the target was placed in (a node label value)."""
    server_version: ImageTag | None = None
    """Image tag the target runs."""
    target_overrides: Annotated[
        dict[str, Any] | None,
        Field(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}),
    ] = None
    """The merge patch applied to the target StatefulSet (spec.targetOverrides), as applied."""
    overridden: Annotated[str, StringConstraints(max_length=1024)] | None = None
    """The fields spec.targetOverrides sets or removes, e.g. `spec.replicas,
    spec.template.spec.containers` (for `kubectl get -o wide`)."""
    target_cluster: StatefulSetName | None = None
    """Name of the new StatefulSet (the clone)."""
    copy_method: CopyMethod | None = None
    """The copy method used (spec.copyMethod, with `Auto` resolved), decided when the
    operation started."""
    volume_snapshot_class: DNSSubdomain | None = None
    """The snapshot class used (Snapshot, GroupSnapshot)."""
    point_in_time: Timestamp | None = None
    """When the data was cut: the latest snapshot creationTime (one instant for a
    GroupSnapshot)."""
    volumes: Annotated[list[VolumeStatus], keyed_list("name", 256)] = []
    """Per target volume: its source, snapshot and progress."""
    transfer: Annotated[str, StringConstraints(max_length=64)] | None = None
    """Transfer: bytes moved of all volumes, e.g. `12.0/60.0 MiB (20%), 8.1 MiB/s`."""
    freeze: FreezeStatus | None = None
    """The source's freeze around the cut (spec.consistency)."""
    replicas: Annotated[int, Field(ge=0)] | None = None
    """Desired replicas of the target."""
    ready_replicas: Annotated[int, Field(ge=0)] | None = None
    """Ready replicas of the target."""
    ready: Annotated[str, Field(max_length=32)] | None = None
    """Readiness as `ready/desired`, for `kubectl get`."""
    created_at: Timestamp | None = None
    """When the operator first saw the operation."""
    started_at: Timestamp | None = None
    """When the operation went InProgress."""
    updated_at: Timestamp | None = None
    """When the status last changed."""
    completed_at: Timestamp | None = None
    """When the operation reached a terminal phase."""
    reason: Annotated[str, Field(max_length=128)] | None = None
    """CamelCase reason of the current phase, e.g. `AnotherOperationActive`."""
    message: ShortText | None = None
    """Human-readable explanation of the current phase."""
    conditions: Conditions = []
    """Latest observations: `Ready`, `Progressing`, `Failed`; for snapshot copies
    `SnapshotsTaken` and `VolumesReady`; with hooks, `Quiesced`."""
    observed_generation: int | None = None
    """The .metadata.generation the status reflects."""
    notifications: Annotated[
        list[Notification],
        keyed_list("address", 20),
    ] = []
    """Delivery of the outcome email (Succeeded, Failed or Canceled), one entry per address of
    spec.notificationEmailAddresses. Delivery never changes the phase; each address is sent at
    most once."""
    finalized: bool | None = None
    """True once a terminal operation's lock is released, its partial target removed
    (or, on success, handed over) and its notifications settled; until then the operator
    keeps working on it."""


# Rules that need both spec and status: they sit at the schema's root.
ROOT_VALIDATIONS: list[dict[str, Any]] = [
    {
        "rule": "!has(self.spec.cancel) || !self.spec.cancel || (has(oldSelf.spec.cancel) && "
        "oldSelf.spec.cancel) || !has(oldSelf.status) || !has(oldSelf.status.phase) || "
        "oldSelf.status.phase == 'Pending'",
        "messageExpression": "'spec.cancel: only a Pending operation can be canceled; this one is '"
        " + oldSelf.status.phase",
        "fieldPath": ".spec.cancel",
        "reason": "FieldValueForbidden",
    },
    {
        "rule": "!has(self.spec.cancel) || !self.spec.cancel || !has(self.status) || "
        "!has(self.status.phase) || self.status.phase in ['Pending', 'Canceled'] || "
        "(has(oldSelf.status) && has(oldSelf.status.phase) && oldSelf.status.phase == self.status.phase)",
        "message": "status.phase: a canceled operation can only become Canceled",
        "fieldPath": ".status.phase",
    },
]

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Source", "type": "string", "jsonPath": ".spec.sourceCluster"},
    {"name": "Target", "type": "string", "jsonPath": ".status.targetCluster"},
    {"name": "Ready", "type": "string", "jsonPath": ".status.ready"},
    {"name": "Method", "type": "string", "jsonPath": ".status.copyMethod"},
    {"name": "Freeze", "type": "string", "jsonPath": ".status.freeze.stage", "priority": 1},
    {"name": "Transfer", "type": "string", "jsonPath": ".status.transfer", "priority": 1},
    {"name": "Point-In-Time", "type": "string", "jsonPath": ".status.pointInTime", "priority": 1},
    {"name": "Region", "type": "string", "jsonPath": ".status.targetRegion", "priority": 1},
    {"name": "Version", "type": "string", "jsonPath": ".status.serverVersion", "priority": 1},
    {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": 1},
    {"name": "Overrides", "type": "string", "jsonPath": ".status.overridden", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

SELECTABLE_FIELDS = [".spec.sourceCluster", ".status.phase"]
