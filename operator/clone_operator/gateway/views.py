"""The seeds' request and response shapes, and resource ⇄ seed JSON; pure, no I/O.

Typesense (CloningOperation): `id` is the resource's name (a UUID when the
gateway made it); `status` is the phase in the seed's spelling; times are Unix
seconds. Bridge (CloneObject): `id` is the integer of the `cloning.dev/object-id`
label; `source_id`/`destination_id` are Kubernetes object *names* and
`source_type`/`destination_type` kinds; times are ISO 8601 with an offset.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from clone_operator.api.cloneobjects import CloneOptions, SourceKind, State
from clone_operator.api.cloningoperations import Phase
from clone_operator.api.common import API_VERSION, LABEL_PREFIX

JSON = dict[str, Any]
OBJECT_ID_LABEL = f"{LABEL_PREFIX}object-id"
"""The Bridge id of a CloneObject made through the gateway."""
OPERATION_ID_LABEL = f"{LABEL_PREFIX}operation-id"
"""A gateway-made CloningOperation's id (its name) as a label, so that one list with a
set-based selector (`in (…)`) reads a whole page of them."""

OperationStatus = Literal["pending", "in_progress", "canceled", "succeeded", "failed"]
PHASES: dict[Phase, OperationStatus] = {
    Phase.PENDING: "pending",
    Phase.IN_PROGRESS: "in_progress",
    Phase.CANCELED: "canceled",
    Phase.SUCCEEDED: "succeeded",
    Phase.FAILED: "failed",
}
ObjectState = Literal["pending", "in_progress", "created", "failed"]
STATES: dict[State, ObjectState] = {
    State.PENDING: "pending",
    State.IN_PROGRESS: "in_progress",
    State.CREATED: "created",
    State.FAILED: "failed",
}


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def unix(value: str | None) -> int | None:
    moment = parse_time(value)
    return int(moment.timestamp()) if moment else None


def iso(value: str | None) -> str | None:
    moment = parse_time(value)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds") if moment else None


def uuid7() -> str:
    """A time-ordered UUID (RFC 9562 version 7): names sort in creation order."""
    millis = time.time_ns() // 1_000_000
    value = (millis & (2**48 - 1)) << 80 | int.from_bytes(os.urandom(10)) & (2**80 - 1)
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def any_of(label: str, values: list[str]) -> str:
    """A set-based label selector: `label in (a,b,…)`."""
    return f"{label} in ({','.join(values)})"


UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
"""The canonical text of a version-7 UUID (a regular expression, no per-name parsing:
a list checks every name of a cluster's operations)."""


UUID7_LINES = re.compile(rf"(?:{UUID7.pattern}\n)*{UUID7.pattern}")


def is_uuid7(name: str) -> bool:
    """A name made by `uuid7`: sorting such names sorts by creation (to the millisecond)."""
    return UUID7.fullmatch(name) is not None


def all_uuid7(names: list[str]) -> bool:
    """Every name made by `uuid7` (one match over the joined names: a third of the time of
    one match per name, for the thousand names of a list). The length check makes it exact:
    as many 36-character UUIDs as names, so no name holds two."""
    joined = "\n".join(names)
    return not names or (
        len(joined) == 37 * len(names) - 1 and UUID7_LINES.fullmatch(joined) is not None
    )


def etag(body: Any) -> str:
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return f'"{digest[:32]}"'


# --- Typesense: cloning operations ---------------------------------------------------


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateOperationRequest(StrictModel):
    """Start a cloning operation (all fields optional, as in the seed)."""

    typesense_server_version: Annotated[str, Field(max_length=128)] | None = None
    """Server version (image tag) of the clone; default: the source's."""
    target_region: Annotated[str, Field(max_length=63)] | None = None
    """Region of the clone (a node region or an alias such as `oregon`); default: the source's."""
    notification_email_addresses: Annotated[list[str], Field(max_length=20)] = []
    """Emailed once when the operation ends: succeeded, failed or canceled."""


class UpdateOperationRequest(StrictModel):
    """Cancel a pending operation: the only change the seed allows."""

    status: Literal["canceled"]


class CloningOperationView(BaseModel):
    id: str
    status: OperationStatus
    created_at: int
    updated_at: int
    completed_at: int | None
    source_region: str | None
    target_region: str | None
    typesense_server_version: str | None
    target_cluster_reference_id: str | None
    notification_email_addresses: list[str]


class OperationEnvelope(BaseModel):
    success: bool
    cloning_operation: CloningOperationView


class OperationPage(BaseModel):
    page: int
    per_page: int
    total: int
    cloning_operations: list[CloningOperationView]


class Failure(BaseModel):
    success: Literal[False] = False
    message: str


Responses = dict[int | str, dict[str, Any]]
"""FastAPI's `responses=`: the other answers a route documents in OpenAPI."""
NOT_MODIFIED: Responses = {304: {"description": "Not Modified (the ETag in If-None-Match)"}}


def failures(model: type[BaseModel], *codes: int) -> Responses:
    """The error answers of a route, each with the seed's error body."""
    return {code: {"model": model} for code in codes}


def operation_manifest(name: str, cluster: str, request: CreateOperationRequest) -> JSON:
    spec: JSON = {"sourceCluster": cluster}
    if request.typesense_server_version is not None:
        spec["serverVersion"] = request.typesense_server_version
    if request.target_region is not None:
        spec["targetRegion"] = request.target_region
    if request.notification_email_addresses:
        spec["notificationEmailAddresses"] = request.notification_email_addresses
    return {
        "apiVersion": API_VERSION,
        "kind": "CloningOperation",
        "metadata": {"name": name, "labels": {OPERATION_ID_LABEL: name}},
        "spec": spec,
    }


def operation_status(obj: JSON) -> OperationStatus:
    """The seed's status. A cancel the API server accepted can only end Canceled (a CEL rule
    on status allows no other phase), so a Pending operation with `spec.cancel` reads
    `canceled` at once, as the seed's PATCH response does."""
    phase = Phase((obj.get("status") or {}).get("phase") or Phase.PENDING)
    if phase is Phase.PENDING and (obj.get("spec") or {}).get("cancel"):
        return "canceled"
    return PHASES[phase]


def operation_view(obj: JSON) -> CloningOperationView:
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    created = unix(status.get("createdAt")) or unix(meta.get("creationTimestamp")) or 0
    phase = status.get("phase")
    return CloningOperationView(
        id=meta["name"],
        status=operation_status(obj),
        created_at=created,
        updated_at=unix(status.get("updatedAt")) or created,
        completed_at=unix(status.get("completedAt")),
        source_region=status.get("sourceRegion"),
        target_region=spec.get("targetRegion") or status.get("targetRegion"),
        typesense_server_version=spec.get("serverVersion") or status.get("serverVersion"),
        target_cluster_reference_id=status.get("targetCluster")
        if phase == Phase.SUCCEEDED
        else None,
        notification_email_addresses=list(spec.get("notificationEmailAddresses") or []),
    )


def newest_first(items: list[JSON]) -> list[JSON]:
    """By creation time, then name: the gateway's UUIDv7 names order within a second."""
    return sorted(
        items,
        key=lambda o: (o["metadata"].get("creationTimestamp") or "", o["metadata"]["name"]),
        reverse=True,
    )


# --- Bridge: clone objects -----------------------------------------------------------


class ObjectOptions(CloneOptions):
    """The seed's `options`: the CloneObject options; unknown keys are refused."""

    model_config = ConfigDict(**CloneOptions.model_config)
    model_config["extra"] = "forbid"


class CloneObjectRequest(StrictModel):
    source_id: StrictInt | Annotated[str, Field(min_length=1, max_length=253)]
    """Name of the source object (an integer is taken as the name it spells)."""
    source_type: Annotated[str, Field(min_length=1, max_length=64)]
    """Kubernetes kind of the source: StatefulSet, PersistentVolumeClaim, ConfigMap, Secret
    or Service."""
    options: JSON = {}
    """CloneObject options: `name`, `namespace`, `labels`, `annotations`, `overrides`."""


class CreateObjectsRequest(StrictModel):
    clone_objects: Annotated[list[CloneObjectRequest], Field(min_length=1)]


class CloneObjectView(BaseModel):
    id: int
    state: ObjectState
    destination_id: str | None
    destination_type: str
    source_id: str
    source_type: str
    error_messages: list[str]
    created_at: str
    updated_at: str
    parameters: JSON


class ObjectsEnvelope(BaseModel):
    clone_objects: list[CloneObjectView]


class ObjectPage(BaseModel):
    meta: JSON
    clone_objects: list[CloneObjectView]


class ObjectFailure(BaseModel):
    message: str
    error_messages: list[str]


def object_name(object_id: int) -> str:
    return f"clone-object-{object_id}"


def object_manifest(object_id: int, kind: SourceKind, source: str, options: ObjectOptions) -> JSON:
    return {
        "apiVersion": API_VERSION,
        "kind": "CloneObject",
        "metadata": {
            "name": object_name(object_id),
            "labels": {OBJECT_ID_LABEL: str(object_id)},
        },
        "spec": {"source": {"kind": kind.value, "name": source}, "options": options.wire()},
    }


def id_of_name(name: str) -> int | None:
    """The id in a gateway-made CloneObject's name (`clone-object-<id>`), else None."""
    prefix = object_name(0)[:-1]
    number = name.removeprefix(prefix)
    return int(number) if name.startswith(prefix) and number.isdigit() else None


def object_id(obj: JSON) -> int | None:
    value = ((obj.get("metadata") or {}).get("labels") or {}).get(OBJECT_ID_LABEL, "")
    return int(value) if str(value).isdigit() else None


def object_view(obj: JSON) -> CloneObjectView:
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    source, options = spec.get("source") or {}, spec.get("options") or {}
    created = iso(status.get("createdAt")) or iso(meta.get("creationTimestamp")) or ""
    destination = status.get("destination") or {}
    return CloneObjectView(
        id=object_id(obj) or 0,
        state=STATES[State(status.get("state") or State.PENDING)],
        destination_id=destination.get("name") or options.get("name"),
        destination_type=destination.get("kind") or source.get("kind", ""),
        source_id=source.get("name", ""),
        source_type=source.get("kind", ""),
        error_messages=list(status.get("errorMessages") or []),
        created_at=created,
        updated_at=iso(status.get("updatedAt")) or created,
        parameters=status.get("parameters") or options,
    )
