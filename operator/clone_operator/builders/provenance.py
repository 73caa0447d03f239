"""Labels, annotations and owner references that mark what the operator created."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clone_operator.api.common import API_VERSION, LABEL_PREFIX

MANAGED_BY = "app.kubernetes.io/managed-by"
OPERATOR_NAME = "clone-operator"

OPERATION_UID = f"{LABEL_PREFIX}operation-uid"
OPERATION = f"{LABEL_PREFIX}operation"
CLONE_OBJECT_UID = f"{LABEL_PREFIX}clone-object-uid"
CLONE_OBJECT = f"{LABEL_PREFIX}clone-object"
SOURCE_CLUSTER = f"{LABEL_PREFIX}source-cluster"
SOURCE = f"{LABEL_PREFIX}source"
SOURCE_UID = f"{LABEL_PREFIX}source-uid"
CLUSTER = f"{LABEL_PREFIX}cluster"


@dataclass(frozen=True)
class Owner:
    """The custom resource on whose behalf objects are created."""

    kind: str
    name: str
    namespace: str
    uid: str

    @property
    def uid_label(self) -> str:
        return OPERATION_UID if self.kind == "CloningOperation" else CLONE_OBJECT_UID

    @property
    def name_annotation(self) -> str:
        return OPERATION if self.kind == "CloningOperation" else CLONE_OBJECT

    def reference(self) -> dict[str, Any]:
        """An owner reference: the garbage collector removes a partial clone if the
        owner is deleted mid-way. Removed once the clone is complete."""
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": False,
            "blockOwnerDeletion": False,
        }

    def labels(self) -> dict[str, str]:
        return {MANAGED_BY: OPERATOR_NAME, self.uid_label: self.uid}

    def annotations(self) -> dict[str, str]:
        return {self.name_annotation: f"{self.namespace}/{self.name}"}


def clone_name(source: str, uid: str, max_length: int) -> str:
    """`<source>-clone-<first 5 of the owner's uid>`, the source cut to fit `max_length`:
    the same name for the same request, after any restart."""
    suffix = f"-clone-{uid.replace('-', '')[:5]}"
    return source[: max_length - len(suffix)].rstrip("-.") + suffix


def created_by(obj: dict[str, Any], owner: Owner) -> bool:
    """Whether the operator created this object for this owner (never touch others)."""
    labels = obj.get("metadata", {}).get("labels") or {}
    return bool(labels.get(owner.uid_label) == owner.uid)


def owner_references_without(obj: dict[str, Any], uid: str) -> list[dict[str, Any]]:
    """The object's owner references minus the one pointing at `uid`."""
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return [r for r in refs if r.get("uid") != uid]


def part(obj: dict[str, Any]) -> dict[str, Any]:
    """What the hand-over needs of an object the operator just created: its kind, name
    and the owner references it was created with (not the whole body)."""
    meta = obj["metadata"]
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": {
            "namespace": meta.get("namespace"),
            "name": meta["name"],
            "ownerReferences": list(meta.get("ownerReferences") or []),
        },
    }


def hand_over_patch(created: dict[str, Any], uid: str) -> list[dict[str, Any]] | None:
    """An RFC 6902 patch that drops the reference to owner `uid`, applied only while the
    object's owner references are still the ones it was created with (`test`): another
    owner added meanwhile is never dropped. None: there is no such reference."""
    refs = created["metadata"]["ownerReferences"]
    kept = [r for r in refs if r.get("uid") != uid]
    if len(kept) == len(refs):
        return None
    change: dict[str, Any] = (
        {"op": "replace", "path": "/metadata/ownerReferences", "value": kept}
        if kept
        else {"op": "remove", "path": "/metadata/ownerReferences"}
    )
    return [{"op": "test", "path": "/metadata/ownerReferences", "value": refs}, change]
