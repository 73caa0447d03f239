"""CloneObject: the Bridge clone-objects association as a custom resource."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field

from clone_operator.api.cloningoperations import SNAPSHOT_METHODS, CopyMethod, VolumeStatus
from clone_operator.api.common import (
    CamelModel,
    Conditions,
    DNSLabel,
    DNSSubdomain,
    ShortText,
    Timestamp,
    cel_rules,
    keyed_list,
    overrides_schema,
)

KIND = "CloneObject"
PLURAL = "cloneobjects"


class SourceKind(StrEnum):
    """Kinds that can be cloned; anything else is refused at `kubectl apply`."""

    STATEFUL_SET = "StatefulSet"
    PERSISTENT_VOLUME_CLAIM = "PersistentVolumeClaim"
    CONFIG_MAP = "ConfigMap"
    SECRET = "Secret"
    SERVICE = "Service"

    @property
    def api_version(self) -> str:
        return "apps/v1" if self is SourceKind.STATEFUL_SET else "v1"

    @property
    def namespace_local(self) -> bool:
        """Volume clones (CSI) only work within the source's namespace."""
        return self in (SourceKind.STATEFUL_SET, SourceKind.PERSISTENT_VOLUME_CLAIM)


SUPPORTED_KINDS = ", ".join(k.value for k in SourceKind)


class State(StrEnum):
    """Where a CloneObject is in its life; Created and Failed are terminal."""

    PENDING = "Pending"
    IN_PROGRESS = "InProgress"
    CREATED = "Created"
    FAILED = "Failed"

    @property
    def terminal(self) -> bool:
        return self in (State.CREATED, State.FAILED)


class SourceRef(CamelModel):
    """The object to clone, in this CloneObject's namespace."""

    model_config = cel_rules(
        {
            "rule": "!has(self.apiVersion) || self.apiVersion == "
            "(self.kind == 'StatefulSet' ? 'apps/v1' : 'v1')",
            "messageExpression": "'source.apiVersion must be ' + "
            "(self.kind == 'StatefulSet' ? 'apps/v1' : 'v1') + ' for kind ' + self.kind",
            "fieldPath": ".apiVersion",
        }
    )

    kind: Annotated[
        str,
        Field(
            max_length=64,
            description=f"Kind of the source: one of {SUPPORTED_KINDS}.",
            json_schema_extra={
                "x-kubernetes-validations": [
                    {
                        "rule": "self in [" + ", ".join(f"'{k.value}'" for k in SourceKind) + "]",
                        "messageExpression": "'source.kind ' + self + ' cannot be cloned; supported "
                        f"kinds: {SUPPORTED_KINDS}'",
                    }
                ]
            },
        ),
    ]
    name: DNSSubdomain
    """Name of the source object."""
    api_version: Annotated[str, Field(max_length=64)] | None = None
    """API version of the source; optional, implied by the kind."""


class CloneOptions(CamelModel):
    """Options applied to the copy: its name and namespace, added labels and annotations,
    and a merge patch."""

    name: DNSSubdomain | None = None
    """Name of the destination. Default: `<source>-clone-<id>`."""
    namespace: DNSLabel | None = None
    """Destination namespace (ConfigMap, Secret, Service only). Default: this namespace."""
    labels: Annotated[dict[str, Annotated[str, Field(max_length=63)]], Field(max_length=64)] = {}
    """Labels added to the destination."""
    annotations: Annotated[dict[str, ShortText], Field(max_length=64)] = {}
    """Annotations added to the destination."""
    overrides: Annotated[
        dict[str, Any] | None,
        Field(json_schema_extra=overrides_schema("options.overrides", "copy")),
    ] = None
    """A JSON merge patch (RFC 7386) applied to the copy, e.g. `{"data": {"key": "v"}}`.
    It changes content, never what the copy is: `apiVersion`, `kind`, `metadata.name`,
    `metadata.namespace`, owners and finalizers are refused (use `name` and `namespace`)."""
    copy_method: CopyMethod | None = None
    """PersistentVolumeClaim and StatefulSet only: how the data is copied, as a
    CloningOperation's spec.copyMethod (`GroupSnapshot`: StatefulSet only). Default:
    `Auto`."""
    volume_snapshot_class_name: DNSSubdomain | None = None
    """The snapshot class of a snapshot copy. Default: the class marked default for the
    volume's CSI driver (or its only class)."""
    keep_snapshots: bool | None = None
    """Keep the snapshots after a successful copy. Default: removed."""


class CloneObjectSpec(CamelModel):
    """What to clone and the options to apply. Immutable after creation."""

    model_config = cel_rules(
        {
            "rule": "self == oldSelf",
            "message": "spec is immutable; create a new CloneObject instead",
        },
        {
            "rule": "!has(self.options) || !has(self.options.namespace) || "
            "!(self.source.kind in ['StatefulSet', 'PersistentVolumeClaim'])",
            "message": "options.namespace is not supported for StatefulSet and "
            "PersistentVolumeClaim: volume clones stay in the source's namespace",
            "fieldPath": ".options.namespace",
        },
        {
            "rule": "!has(self.options) || (!has(self.options.copyMethod) && "
            "!has(self.options.volumeSnapshotClassName) && !has(self.options.keepSnapshots)) "
            "|| self.source.kind in ['StatefulSet', 'PersistentVolumeClaim']",
            "message": "options.copyMethod, volumeSnapshotClassName and keepSnapshots apply to "
            "StatefulSet and PersistentVolumeClaim sources only",
            "fieldPath": ".options",
        },
        {
            "rule": "!has(self.options) || !has(self.options.copyMethod) || "
            "self.options.copyMethod != 'GroupSnapshot' || self.source.kind == 'StatefulSet'",
            "message": "options.copyMethod GroupSnapshot needs a StatefulSet source (a group of "
            "volumes); a single PersistentVolumeClaim takes Snapshot",
            "fieldPath": ".options.copyMethod",
        },
        {
            "rule": "!has(self.options) || !has(self.options.volumeSnapshotClassName) || "
            f"!has(self.options.copyMethod) || self.options.copyMethod in {SNAPSHOT_METHODS}",
            "message": "options.volumeSnapshotClassName is only used by copyMethod Auto, "
            "Snapshot or GroupSnapshot",
            "fieldPath": ".options.volumeSnapshotClassName",
        },
        {
            "rule": "!has(self.options) || !has(self.options.copyMethod) || "
            "self.options.copyMethod != 'Transfer'",
            "message": "options.copyMethod Transfer moves a cluster's data into another region: "
            "use a CloningOperation with targetRegion (a CloneObject copies in place)",
            "fieldPath": ".options.copyMethod",
        },
    )

    source: SourceRef
    """The object to clone: its kind and name, in this namespace."""
    options: CloneOptions = CloneOptions()
    """Options applied to the destination."""


class Destination(CamelModel):
    """The object the clone created."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None
    uid: str | None = None


class CloneObjectStatus(CamelModel):
    """Observed state, written by the operator through the status subresource."""

    state: State | None = None
    """Pending → InProgress → Created | Failed."""
    destination: Destination | None = None
    """The object the clone created."""
    error_messages: Annotated[list[ShortText], Field(max_length=32)] = []
    """Every problem met, in words a user can act on."""
    copy_method: CopyMethod | None = None
    """PersistentVolumeClaim and StatefulSet: the copy method used (`Auto` resolved)."""
    point_in_time: Timestamp | None = None
    """When the data was cut (the snapshots' latest creationTime)."""
    volumes: Annotated[list[VolumeStatus], keyed_list("name", 256)] = []
    """Per destination volume: its source, snapshot and progress."""
    parameters: Annotated[
        dict[str, Any] | None,
        Field(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}),
    ] = None
    """The options actually applied (with defaults resolved)."""
    created_at: Timestamp | None = None
    """When the operator first saw the CloneObject."""
    started_at: Timestamp | None = None
    """When the clone went InProgress: a PVC or cluster clone's timeout counts from here."""
    updated_at: Timestamp | None = None
    """When the status last changed."""
    conditions: Conditions = []
    """Latest observations: `Ready`, `Failed`; for volume copies, the stages
    `SnapshotsTaken` and `VolumesReady`."""
    observed_generation: int | None = None
    """The .metadata.generation the status reflects."""
    finalized: bool | None = None
    """True once a terminal CloneObject's partial objects are removed (or, when Created,
    handed over); until then the operator keeps working on it."""


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Kind", "type": "string", "jsonPath": ".spec.source.kind"},
    {"name": "Source", "type": "string", "jsonPath": ".spec.source.name"},
    {"name": "Destination", "type": "string", "jsonPath": ".status.destination.name"},
    {"name": "State", "type": "string", "jsonPath": ".status.state"},
    {"name": "Method", "type": "string", "jsonPath": ".status.copyMethod", "priority": 1},
    {"name": "Point-In-Time", "type": "string", "jsonPath": ".status.pointInTime", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

SELECTABLE_FIELDS = [".spec.source.kind", ".status.state"]
