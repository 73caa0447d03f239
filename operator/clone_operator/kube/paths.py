"""Where each kind lives on the API server: plurals and URL paths; pure, no I/O.

Owns the one table of kinds both clients read and write (the operator's and the
gateway's); a kind not in it is refused before anything is sent.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from clone_operator.kube.errors import UnknownKind

JSON = dict[str, Any]

# (apiVersion, kind) → plural, for every kind the operator or the gateway touches.
PLURALS: dict[tuple[str, str], str] = {
    ("apps/v1", "StatefulSet"): "statefulsets",
    ("v1", "Service"): "services",
    ("v1", "PersistentVolumeClaim"): "persistentvolumeclaims",
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Secret"): "secrets",
    ("v1", "Pod"): "pods",
    ("v1", "Node"): "nodes",
    ("v1", "Namespace"): "namespaces",
    ("v1", "Event"): "events",
    ("coordination.k8s.io/v1", "Lease"): "leases",
    ("v1", "PersistentVolume"): "persistentvolumes",
    ("storage.k8s.io/v1", "StorageClass"): "storageclasses",
    ("storage.k8s.io/v1", "CSIDriver"): "csidrivers",
    ("snapshot.storage.k8s.io/v1", "VolumeSnapshotClass"): "volumesnapshotclasses",
    ("snapshot.storage.k8s.io/v1", "VolumeSnapshot"): "volumesnapshots",
    ("snapshot.storage.k8s.io/v1", "VolumeSnapshotContent"): "volumesnapshotcontents",
    ("groupsnapshot.storage.k8s.io/v1", "VolumeGroupSnapshotClass"): "volumegroupsnapshotclasses",
    ("groupsnapshot.storage.k8s.io/v1", "VolumeGroupSnapshot"): "volumegroupsnapshots",
    ("authorization.k8s.io/v1", "SubjectAccessReview"): "subjectaccessreviews",
    ("cloning.dev/v1alpha1", "CloningOperation"): "cloningoperations",
    ("cloning.dev/v1alpha1", "CloneObject"): "cloneobjects",
}

API_VERSIONS: dict[str, str] = {kind: api_version for api_version, kind in PLURALS}
"""kind → apiVersion (each kind above has one), for callers that name only the kind."""


def path(
    api_version: str,
    kind: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """The URL path of a kind's collection, or of one object (and its subresource).
    Names are quoted whole (a `/` in a name cannot reach another path)."""
    plural = PLURALS.get((api_version, kind))
    if plural is None:
        raise UnknownKind(
            f"the operator does not read or write objects of kind {kind} ({api_version})"
        )
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    parts = [prefix]
    if namespace is not None:
        parts.append(f"namespaces/{quote(namespace, safe='')}")
    parts.append(plural)
    if name is not None:
        parts.append(quote(name, safe=""))
    if subresource is not None:
        parts.append(subresource)
    return "/".join(parts)


def kind_path(kind: str, namespace: str, name: str | None = None) -> str:
    """`path` for a namespaced kind named without its apiVersion."""
    return path(API_VERSIONS.get(kind, ""), kind, namespace, name)


def ref_path(obj: JSON, subresource: str | None = None) -> str:
    meta = obj["metadata"]
    return path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"], subresource)


def what_is_asked(method: str, url: str) -> str:
    """`GET statefulsets`, `LIST pods`, `PATCH cloningoperations/status`: a request's
    method and resource, without names (for the request counts)."""
    parts = url.split("?", 1)[0].strip("/").split("/")
    if "namespaces" in parts[:-1]:
        parts = parts[parts.index("namespaces") + 2 :]
    else:
        parts = parts[2:] if parts[:1] == ["api"] else parts[3:]
    if not parts:
        return method
    resource = parts[0] + ("/" + parts[2] if len(parts) > 2 else "")
    if method == "GET" and len(parts) == 1:
        method = "LIST"
    return f"{method} {resource}"
