"""Copies of single objects for CloneObject: strip, apply options, mark provenance.

A copy must be a *new* object: everything the API server or a controller
assigned to the source (uid, resourceVersion, managedFields, owners, status,
cluster IPs, node ports, bound volume names, …) is stripped, so the API server
assigns the destination's own.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from clone_operator.api.cloneobjects import SourceKind
from clone_operator.api.common import LABEL_PREFIX
from clone_operator.builders import provenance
from clone_operator.builders.provenance import Owner

# Metadata the API server or controllers own; never copied.
_SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "ownerReferences",
    "finalizers",
    "selfLink",
    "generateName",
)
# Annotations that describe the source's own history or binding.
_DROPPED_ANNOTATION_PREFIXES = (
    "kubectl.kubernetes.io/last-applied-configuration",
    "pv.kubernetes.io/",
    "volume.kubernetes.io/",
    "volume.beta.kubernetes.io/",
    "control-plane.alpha.kubernetes.io/",
)
# Secret types the API server fills in itself; a copy would be meaningless or refused.
UNCLONEABLE_SECRET_TYPES = ("kubernetes.io/service-account-token",)


class CopyError(ValueError):
    """The source cannot be copied as asked; the message is for the user."""


IDENTITY_KEYS = ("apiVersion", "kind")
"""Top-level keys an override must not set: what the copy is (admission checked it)."""
IDENTITY_METADATA = ("name", "namespace", "generateName", "ownerReferences", "finalizers")
"""Metadata an override must not set: where the copy is, and who owns it."""


def identity_overrides(overrides: dict[str, Any] | None) -> list[str]:
    """The identity fields (`kind`, `metadata.name`, …) that a merge patch touches. The
    CRDs refuse them at `kubectl apply` already; this holds for any path in."""
    patch = overrides or {}
    metadata = patch.get("metadata")
    return [key for key in IDENTITY_KEYS if key in patch] + [
        f"metadata.{key}"
        for key in IDENTITY_METADATA
        if isinstance(metadata, dict) and key in metadata
    ]


@dataclass(frozen=True)
class CopyPlan:
    """What a copy is built from (the options, already defaulted)."""

    owner: Owner
    source: dict[str, Any]
    name: str
    namespace: str
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    overrides: dict[str, Any] | None = None
    source_size: str | None = None
    """For a PVC: the source's capacity (a clone is at least that large)."""
    snapshot: str | None = None
    """For a PVC copied by `Snapshot`: the VolumeSnapshot it is restored from."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge, `null` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def default_name(source_name: str, uid: str) -> str:
    """The default destination name, as long as an object name may be."""
    return provenance.clone_name(source_name, uid, 253)


def _strip_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    out = {k: copy.deepcopy(v) for k, v in meta.items() if k not in _SERVER_METADATA}
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if not k.startswith(_DROPPED_ANNOTATION_PREFIXES)
    }
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if not k.startswith(LABEL_PREFIX)}
    out["annotations"], out["labels"] = annotations, labels
    return out


def _strip_service(spec: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(spec)
    headless = out.get("clusterIP") == "None"
    for key in ("clusterIP", "clusterIPs", "healthCheckNodePort", "loadBalancerIP"):
        out.pop(key, None)
    if headless:
        out["clusterIP"] = "None"
    out["ports"] = [{k: v for k, v in p.items() if k != "nodePort"} for p in out.get("ports") or []]
    return out


def _strip_pvc(
    spec: dict[str, Any], source_name: str, size: str | None, snapshot: str | None = None
) -> dict[str, Any]:
    out = copy.deepcopy(spec)
    for key in ("volumeName", "dataSourceRef", "selector"):
        out.pop(key, None)
    out["dataSource"] = (
        {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": snapshot}
        if snapshot
        else {"kind": "PersistentVolumeClaim", "name": source_name}
    )
    if size:
        out.setdefault("resources", {}).setdefault("requests", {})["storage"] = size
    return out


def stripped(
    source: dict[str, Any],
    kind: SourceKind,
    source_size: str | None = None,
    snapshot: str | None = None,
) -> dict[str, Any]:
    """The source with every server-assigned field removed, ready to be created anew."""
    meta = source["metadata"]
    obj: dict[str, Any] = {
        "apiVersion": kind.api_version,
        "kind": kind.value,
        "metadata": _strip_metadata(meta),
    }
    if kind is SourceKind.CONFIG_MAP:
        for key in ("data", "binaryData", "immutable"):
            if key in source:
                obj[key] = copy.deepcopy(source[key])
    elif kind is SourceKind.SECRET:
        if source.get("type") in UNCLONEABLE_SECRET_TYPES:
            raise CopyError(
                f"Secret {meta['name']} is of type {source['type']}, which the API server fills "
                "in itself; it cannot be cloned"
            )
        for key in ("type", "data", "immutable"):
            if key in source:
                obj[key] = copy.deepcopy(source[key])
    elif kind is SourceKind.SERVICE:
        obj["spec"] = _strip_service(source.get("spec") or {})
    elif kind is SourceKind.PERSISTENT_VOLUME_CLAIM:
        obj["spec"] = _strip_pvc(source.get("spec") or {}, meta["name"], source_size, snapshot)
    else:
        raise CopyError(f"{kind.value} is cloned by the cluster engine, not copied")
    return obj


def build_copy(plan: CopyPlan, kind: SourceKind) -> dict[str, Any]:
    """The destination object: stripped source, overrides, options, provenance."""
    obj = stripped(plan.source, kind, plan.source_size, plan.snapshot)
    if plan.overrides:
        touched = identity_overrides(plan.overrides)
        if touched:
            raise CopyError(
                f"options.overrides must not set {', '.join(touched)}: a copy is of its "
                "source's kind, named by options.name and options.namespace"
            )
        obj = merge_patch(obj, plan.overrides)
        if not isinstance(obj.get("metadata"), dict):
            raise CopyError("overrides must not remove metadata")
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.value
    meta = obj["metadata"]
    meta["name"], meta["namespace"] = plan.name, plan.namespace
    source_meta = plan.source["metadata"]
    meta["labels"] = {**(meta.get("labels") or {}), **plan.labels, **plan.owner.labels()}
    meta["annotations"] = {
        **(meta.get("annotations") or {}),
        **plan.annotations,
        **plan.owner.annotations(),
        provenance.SOURCE: f"{source_meta['namespace']}/{kind.value}/{source_meta['name']}",
        provenance.SOURCE_UID: str(source_meta.get("uid", "")),
    }
    if kind is SourceKind.PERSISTENT_VOLUME_CLAIM:
        # Owned while the volume is being cloned, so a deleted request leaves nothing half-made.
        meta["ownerReferences"] = [plan.owner.reference()]
    obj.pop("status", None)
    return obj
