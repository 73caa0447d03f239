"""Shared building blocks of the resource models: base model, formats, conditions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints
from pydantic.alias_generators import to_camel

GROUP = "cloning.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
LABEL_PREFIX = f"{GROUP}/"

VOLUME_SNAPSHOT = ("snapshot.storage.k8s.io/v1", "VolumeSnapshot")
VOLUME_GROUP_SNAPSHOT = ("groupsnapshot.storage.k8s.io/v1", "VolumeGroupSnapshot")
"""The (apiVersion, kind) of the snapshots a snapshot copy takes."""

# Kubernetes adds `controller-revision-hash: <name>-<10 chars>` to StatefulSet
# pods, a label value of at most 63 characters: so StatefulSet names stop at 52.
STATEFULSET_NAME_MAX = 52

DNSLabel = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", min_length=1, max_length=63),
]
StatefulSetName = Annotated[
    str,
    StringConstraints(
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", min_length=1, max_length=STATEFULSET_NAME_MAX
    ),
]
DNSSubdomain = Annotated[
    str,
    StringConstraints(
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        min_length=1,
        max_length=253,
    ),
]
RegionName = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$", max_length=63),
]
EmailAddress = Annotated[
    str,
    StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254),
]
Timestamp = Annotated[
    str,
    Field(json_schema_extra={"format": "date-time"}),
]
ShortText = Annotated[str, StringConstraints(max_length=32768)]


def keyed_list(key: str, max_items: int) -> Any:
    """A list that Kubernetes merges as a map keyed by `key` (listType=map)."""
    return Field(
        max_length=max_items,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": [key]},
    )


def rfc3339(t: datetime) -> str:
    """A time as RFC 3339 in UTC with a `Z`, to the second, as Kubernetes writes it."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_rfc3339() -> str:
    """The current time as `rfc3339` writes it."""
    return rfc3339(datetime.now(UTC))


def parse_rfc3339(value: str) -> datetime:
    """A Kubernetes timestamp (`...Z` or with an offset) as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def cel_rules(*rules: JsonValue) -> ConfigDict:
    """The model config of a CamelModel whose schema carries these CEL rules
    (`x-kubernetes-validations`): the API server enforces them on every write."""
    return ConfigDict(
        **CamelModel.model_config, json_schema_extra={"x-kubernetes-validations": list(rules)}
    )


class CamelModel(BaseModel):
    """Base of every resource model: camelCase on the wire, docstrings as descriptions."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
        extra="ignore",
    )

    def wire(self) -> dict[str, Any]:
        """The JSON-ready camelCase form, without unset optional fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Condition(CamelModel):
    """A metav1.Condition: one aspect of the object's state."""

    type: Annotated[str, StringConstraints(max_length=316)]
    """Type of condition in CamelCase, e.g. `Ready`."""
    status: Annotated[str, Field(json_schema_extra={"enum": ["True", "False", "Unknown"]})]
    """`True`, `False` or `Unknown`."""
    reason: Annotated[str, StringConstraints(max_length=1024)] = ""
    """A programmatic identifier of the last transition, in CamelCase."""
    message: ShortText = ""
    """A human-readable explanation of the last transition."""
    last_transition_time: Timestamp | None = None
    """When the condition last changed its status."""
    observed_generation: int | None = None
    """The .metadata.generation this condition was set for."""


Conditions = Annotated[list[Condition], keyed_list("type", 16)]


# ---- merge-patch overrides: content, never identity -----------------------------------

_REFUSED_METADATA = ("name", "namespace", "generateName", "ownerReferences", "finalizers")


def overrides_schema(field: str, what: str) -> dict[str, Any]:
    """The schema of a merge patch a user writes over a copy (`field`, e.g.
    `options.overrides`): any content, but never what the copy *is* — its apiVersion
    and kind, its name and namespace, its owners and finalizers — which admission
    checked. CEL cannot see fields a schema does not declare (under
    `x-kubernetes-preserve-unknown-fields`), so these are declared here (typed, not
    nullable: a `null` is pruned by the API server and changes nothing)."""

    def refused(schema: dict[str, Any]) -> dict[str, Any]:
        return {**schema, "description": "Refused: it is the copy's identity."}

    return {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {
            "apiVersion": refused({"type": "string", "maxLength": 253}),
            "kind": refused({"type": "string", "maxLength": 63}),
            "metadata": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "description": f"Merged into the {what}'s metadata (labels, annotations).",
                "properties": {
                    "name": refused({"type": "string", "maxLength": 253}),
                    "namespace": refused({"type": "string", "maxLength": 63}),
                    "generateName": refused({"type": "string", "maxLength": 253}),
                    "ownerReferences": refused(
                        {
                            "type": "array",
                            "maxItems": 64,
                            "items": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                        }
                    ),
                    "finalizers": refused(
                        {
                            "type": "array",
                            "maxItems": 64,
                            "items": {"type": "string", "maxLength": 253},
                        }
                    ),
                },
                "x-kubernetes-validations": [
                    {
                        "rule": " && ".join(f"!has(self.{k})" for k in _REFUSED_METADATA),
                        "message": f"{field} cannot set metadata."
                        + ", metadata.".join(_REFUSED_METADATA)
                        + ": the copy's name and namespace are its own, and it has no owners "
                        "or finalizers but the operator's",
                    }
                ],
            },
        },
        "x-kubernetes-validations": [
            {
                "rule": "!has(self.apiVersion) && !has(self.kind)",
                "message": f"{field} cannot set apiVersion or kind: a copy is of its source's kind",
            }
        ],
    }
