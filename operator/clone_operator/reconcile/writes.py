"""What the operator may write on a requester's behalf: what admission checked. Pure.

The requester-rights policies (`api.policies`) let a CloneObject or a
CloningOperation in only when its creator may create, in the destination
namespace, the kinds its clone is made of. Nothing a user writes afterwards — a
name, an override, the content of a source — may widen that: every create, patch
and delete the engine makes for a resource passes through one funnel
(`engine.writes.Writes`), which refuses an object outside `admitted(...)`, before
anything is sent. The admitted set is a function of the stored spec (the kind,
the destination's name and namespace, the target's name), so it is known durably
before anything is created, and the same after any restart.

It is plain data: a later feature that makes more kinds (snapshots, hook pods)
adds a row to `CLUSTER_PARTS` and the right to the policies, and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from clone_operator.api.common import VOLUME_GROUP_SNAPSHOT, VOLUME_SNAPSHOT


class OutsideAdmitted(Exception):
    """A write the requester's admission did not check: never sent (engine.writes)."""


class Names(StrEnum):
    """How an admitted object is named from the name admission saw."""

    EXACT = "exact"
    """The name itself: a CloneObject's destination, a target's StatefulSet and Service."""
    COPY = "copy"
    """`<name>-…`: a target's own copies of its source's ConfigMaps and Secrets."""
    CLAIM = "claim"
    """`<claim>-<name>-<ordinal>`: a target's volumes, as its StatefulSet names them."""
    ORDINAL = "ordinal"
    """`<name>-<ordinal>`: a StatefulSet's pods (the source's, for its hooks)."""
    MOVER = "mover"
    """`<name>-mv<k>` and its `-source`, `-target`, `-cut`: a Transfer's parts for its
    k-th volume (builders.mover)."""


@dataclass(frozen=True)
class Admitted:
    """One kind of object, in one namespace, that a resource may write."""

    api_version: str
    kind: str
    namespace: str
    name: str
    names: Names = Names.EXACT

    def covers(self, api_version: str, kind: str, namespace: str | None, name: str) -> bool:
        if (api_version, kind, namespace) != (self.api_version, self.kind, self.namespace):
            return False
        if self.names is Names.EXACT:
            return name == self.name
        if self.names is Names.COPY:
            return name.startswith(f"{self.name}-") and len(name) > len(self.name) + 1
        if self.names is Names.MOVER:
            return is_mover_name(name, self.name, kind)
        if self.names is Names.ORDINAL:
            ordinal = name.removeprefix(f"{self.name}-")
            return name != ordinal and ordinal.isascii() and ordinal.isdigit()
        claim, sep, ordinal = name.rpartition(f"-{self.name}-")
        return bool(claim and sep and ordinal.isascii() and ordinal.isdigit())


MOVER_SUFFIXES = {"Pod": ("-source", "-target"), "PersistentVolumeClaim": ("-cut",)}
"""What follows `<target>-mv<k>` in a mover part's name, by kind (others: nothing)."""


def is_mover_name(name: str, target: str, kind: str) -> bool:
    """Whether `name` is a Transfer's `kind` part for some volume k of `target`:
    `<target>-mv<k>` and the kind's suffix (MOVER_SUFFIXES)."""
    rest = name.removeprefix(f"{target}-mv")
    if rest == name:
        return False
    suffixes = MOVER_SUFFIXES.get(kind, ("",))
    suffix = next((x for x in suffixes if x and rest.endswith(x)), "")
    if suffix not in suffixes:
        return False
    rest = rest.removesuffix(suffix) if suffix else rest
    return rest.isascii() and rest.isdigit() and len(rest) <= 4


CLUSTER_PARTS: tuple[tuple[str, str, Names], ...] = (
    ("apps/v1", "StatefulSet", Names.EXACT),
    ("v1", "Service", Names.EXACT),
    ("v1", "PersistentVolumeClaim", Names.CLAIM),
    ("v1", "ConfigMap", Names.COPY),
    ("v1", "Secret", Names.COPY),
)
"""What a target cluster is made of, and how each part is named from the target's name
(the kinds the policies require `create` of for a cluster clone)."""


SNAPSHOT_PARTS: dict[str, tuple[tuple[str, str, Names], ...]] = {
    "Snapshot": ((*VOLUME_SNAPSHOT, Names.CLAIM),),
    "GroupSnapshot": ((*VOLUME_GROUP_SNAPSHOT, Names.EXACT),),
    "Transfer": (
        (*VOLUME_SNAPSHOT, Names.CLAIM),
        ("v1", "Pod", Names.MOVER),
        ("v1", "Service", Names.MOVER),
        ("v1", "Secret", Names.MOVER),
        ("v1", "PersistentVolumeClaim", Names.MOVER),
    ),
}
"""What a snapshot copy method adds to a cluster clone, by the method (its value):
one VolumeSnapshot per target PVC, named as that PVC; or one VolumeGroupSnapshot named
as the target (its member snapshots are the snapshot-controller's, not ours); or, for
`Transfer`, the snapshots and, per volume, its movers' pods, Service, key Secret and
temporary PVC (`<target>-mv<k>…`, builders.mover). A
CloneObject of a PVC with `Snapshot` adds one VolumeSnapshot named as its destination.
Admitted only when the copy method was admitted with its rights (api.policies)."""


EXEC = ("v1", "pods/exec")
"""A hook: `create pods/exec` on a pod, written here as its (apiVersion, subresource)."""

HOOK_PARTS: tuple[tuple[str, str, Names], ...] = ((*EXEC, Names.ORDINAL),)
"""What consistency hooks add to a cluster clone: an exec into each pod of the *source*
(`<source>-<ordinal>`), in its namespace. Admitted only when the hooks were admitted with
the requester's `create pods/exec` there (api.policies)."""


def hooks(namespace: str, source: str) -> tuple[Admitted, ...]:
    """What the consistency hooks of a clone of `source` may exec into: its own pods."""
    return tuple(Admitted(v, k, namespace, source, names) for v, k, names in HOOK_PARTS)


def exec_target(namespace: str, pod: str) -> dict[str, Any]:
    """The object an exec is checked as (`refusal`)."""
    return {
        "apiVersion": EXEC[0],
        "kind": EXEC[1],
        "metadata": {"namespace": namespace, "name": pod},
    }


def cluster(namespace: str, target: str, method: str | None = None) -> tuple[Admitted, ...]:
    """What a clone of a whole cluster named `target` may write (`method`: the copy
    method it was admitted with, which may add snapshots)."""
    parts = (*CLUSTER_PARTS, *SNAPSHOT_PARTS.get(method or "", ()))
    return tuple(Admitted(v, k, namespace, target, names) for v, k, names in parts)


def copy(
    api_version: str, kind: str, namespace: str, name: str, method: str | None = None
) -> tuple[Admitted, ...]:
    """What a CloneObject of one object may write: its declared destination, only (and,
    for a PVC copied by `Snapshot`, one VolumeSnapshot of the same name)."""
    extra = (Admitted(*VOLUME_SNAPSHOT, namespace, name),) if method == "Snapshot" else ()
    return (Admitted(api_version, kind, namespace, name), *extra)


def refusal(admitted: Iterable[Admitted], obj: dict[str, Any]) -> str | None:
    """Why `obj` may not be written on the requester's behalf (None: it may)."""
    meta = obj.get("metadata") or {}
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    namespace, name = meta.get("namespace"), meta.get("name")
    if not all(isinstance(v, str) for v in (api_version, kind, name)):
        return "an object without apiVersion, kind or name"
    allowed = list(admitted)
    if any(a.covers(str(api_version), str(kind), namespace, str(name)) for a in allowed):
        return None
    kinds = ", ".join(sorted({f"{a.kind}" for a in allowed}))
    return (
        f"{kind} ({api_version}) {namespace}/{name} is not what admission checked for the "
        f"requester (it may make: {kinds}, in {allowed[0].namespace if allowed else '-'}, "
        "named from the destination); nothing was written"
    )
