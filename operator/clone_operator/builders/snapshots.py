"""The snapshots a snapshot copy takes of the source's volumes. Pure.

`Snapshot`: one VolumeSnapshot per source PVC, named as the target PVC it is
restored into (`<claim>-<target>-<ordinal>`: the admitted-writes table names it
from the target, `reconcile.writes.SNAPSHOT_PARTS`). `GroupSnapshot`: one
VolumeGroupSnapshot named as the target, over the source's PVCs by the source
StatefulSet's own selector labels, which the StatefulSet controller puts on every
PVC it makes; the engine checks that the selector picks exactly the source's
PVCs before it takes the group. Both carry the owner's provenance and owner
reference, like every part of a target: cleanup finds them, and the garbage
collector removes them with a deleted owner.
"""

from __future__ import annotations

from typing import Any

from clone_operator.api.common import VOLUME_GROUP_SNAPSHOT, VOLUME_SNAPSHOT
from clone_operator.builders import provenance
from clone_operator.builders.clusters import ClusterPlan, metadata
from clone_operator.builders.objects import CopyPlan


def volume_snapshot(
    plan: ClusterPlan, source_pvc: str, name: str, class_name: str | None
) -> dict[str, Any]:
    """A VolumeSnapshot of one source PVC."""
    meta = metadata(plan, name)
    meta["annotations"][provenance.SOURCE] = f"{plan.namespace}/{source_pvc}"
    spec: dict[str, Any] = {"source": {"persistentVolumeClaimName": source_pvc}}
    if class_name:
        spec["volumeSnapshotClassName"] = class_name
    return {
        "apiVersion": VOLUME_SNAPSHOT[0],
        "kind": VOLUME_SNAPSHOT[1],
        "metadata": meta,
        "spec": spec,
    }


def copy_snapshot(plan: CopyPlan, class_name: str | None) -> dict[str, Any]:
    """The VolumeSnapshot a CloneObject of one PVC restores its destination from, named
    as the destination (and owned, like it, while the copy is made)."""
    source = plan.source["metadata"]["name"]
    spec: dict[str, Any] = {"source": {"persistentVolumeClaimName": source}}
    if class_name:
        spec["volumeSnapshotClassName"] = class_name
    meta = {
        "name": plan.name,
        "namespace": plan.namespace,
        "labels": {**plan.labels, **plan.owner.labels()},
        "annotations": {
            **plan.owner.annotations(),
            provenance.SOURCE: f"{plan.namespace}/{source}",
        },
        "ownerReferences": [plan.owner.reference()],
    }
    return {
        "apiVersion": VOLUME_SNAPSHOT[0],
        "kind": VOLUME_SNAPSHOT[1],
        "metadata": meta,
        "spec": spec,
    }


def group_selector(plan: ClusterPlan) -> dict[str, Any]:
    """The labels every source PVC carries: the source StatefulSet's matchLabels."""
    labels = (plan.source["spec"].get("selector") or {}).get("matchLabels") or {}
    return {"matchLabels": dict(labels)}


def group_snapshot(plan: ClusterPlan, class_name: str | None) -> dict[str, Any]:
    """One VolumeGroupSnapshot over the source's PVCs: one crash-consistent point."""
    spec: dict[str, Any] = {"source": {"selector": group_selector(plan)}}
    if class_name:
        spec["volumeGroupSnapshotClassName"] = class_name
    return {
        "apiVersion": VOLUME_GROUP_SNAPSHOT[0],
        "kind": VOLUME_GROUP_SNAPSHOT[1],
        "metadata": metadata(plan, plan.target_name),
        "spec": spec,
    }


def members(group: dict[str, Any], snapshots: list[dict[str, Any]]) -> dict[str, str]:
    """Source PVC → member VolumeSnapshot of the group (the snapshot-controller makes
    them, owned by the group, each naming its PVC in spec.source)."""
    uid = group["metadata"].get("uid")
    found = {}
    for snap in snapshots:
        refs = snap["metadata"].get("ownerReferences") or []
        if not any(r.get("uid") == uid and r.get("kind") == "VolumeGroupSnapshot" for r in refs):
            continue
        pvc = ((snap.get("spec") or {}).get("source") or {}).get("persistentVolumeClaimName")
        if pvc:
            found[str(pvc)] = str(snap["metadata"]["name"])
    return found


def cut_at(snapshots: list[dict[str, Any]]) -> str | None:
    """The data's point in time: the latest creationTime (None until every one has one)."""
    times = [(s.get("status") or {}).get("creationTime") for s in snapshots]
    if not times or not all(times):
        return None
    return str(max(str(t) for t in times))


def retain_patch(snapshot: dict[str, Any], content: dict[str, Any]) -> dict[str, Any] | None:
    """The patch that makes a temporary snapshot's content go with it (deletionPolicy
    Delete), if the content is bound to that very snapshot and retains; else None."""
    ref = (content.get("spec") or {}).get("volumeSnapshotRef") or {}
    meta = snapshot["metadata"]
    same = (ref.get("namespace"), ref.get("name"), ref.get("uid")) == (
        meta.get("namespace"),
        meta.get("name"),
        meta.get("uid"),
    )
    if not same or (content.get("spec") or {}).get("deletionPolicy") != "Retain":
        return None
    return {"spec": {"deletionPolicy": "Delete"}}
