"""The cut of a snapshot copy: take the source's snapshots, wait until every one is
cut and ready, then the target's PVCs are restored from them (engine.clusters).

Every write goes through the clone's funnel (`Writes`): the snapshots are rows of
the admitted-writes table for the snapshot methods. What was taken is found again
by its provenance label (a restart resumes the cut; nothing is taken twice, as
the names are fixed). A snapshot the storage refuses (`status.error`) ends the
clone at once, with the storage's words; a slow one is bounded by the clone's
Timeout.

Retain: a snapshot class with `deletionPolicy: Retain` would keep the storage's
snapshot after its VolumeSnapshot is deleted. Unless the user keeps the snapshots,
the operator sets the content of each snapshot it took to `Delete` as soon as it
is bound (only a content bound to that very snapshot), so that any removal —
after success, on failure, by the garbage collector after the owner is deleted —
removes the storage's snapshot too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from clone_operator.api.cloningoperations import CopyMethod, VolumeStatus
from clone_operator.api.common import VOLUME_GROUP_SNAPSHOT, VOLUME_SNAPSHOT
from clone_operator.builders import clusters as cluster_builders
from clone_operator.builders import snapshots as snapshot_builders
from clone_operator.builders.provenance import Owner
from clone_operator.engine.writes import Writes
from clone_operator.k8s.api import JSON, ApiError, NotFound
from clone_operator.reconcile import storage as storage_rules


@dataclass(frozen=True)
class Cut:
    """Every snapshot is cut and ready: source PVC → its VolumeSnapshot."""

    snapshots: dict[str, str]
    point_in_time: str | None
    volumes: list[VolumeStatus]


@dataclass(frozen=True)
class Cutting:
    """Not every snapshot is ready: look again after `wait`."""

    wait: float
    volumes: list[VolumeStatus]
    point_in_time: str | None = None


@dataclass(frozen=True)
class Refused:
    """The storage refused a snapshot (its words), or the group cannot be taken."""

    message: str


def volume_statuses(pairs: list[tuple[str, str]], by_source: dict[str, JSON]) -> list[VolumeStatus]:
    """Per (source PVC, target PVC): its snapshot's progress (by source PVC)."""
    out = []
    for source, target in pairs:
        snap = by_source.get(source)
        status = (snap or {}).get("status") or {}
        out.append(
            VolumeStatus(
                name=target,
                source=source,
                snapshot=(snap or {}).get("metadata", {}).get("name"),
                cut_at=status.get("creationTime"),
                snapshot_ready=bool(status.get("readyToUse")) if snap is not None else None,
                restore_size=str(status["restoreSize"]) if status.get("restoreSize") else None,
            )
        )
    return out


async def owned(
    funnel: Writes, owner: Owner, namespace: str, api_kind: tuple[str, str]
) -> list[JSON]:
    """The snapshots (or group snapshots) this owner took; [] when the API is not served."""
    try:
        items = await funnel.kube.list(
            *api_kind, namespace, label_selector=f"{owner.uid_label}={owner.uid}"
        )
    except NotFound:
        return []
    return [{"apiVersion": api_kind[0], "kind": api_kind[1], **i} for i in items]


async def take(
    funnel: Writes,
    plan: cluster_builders.ClusterPlan,
    class_name: str | None,
    keep: bool,
    deadline: float,
) -> Cut | Cutting | Refused:
    """One look at the cut: take what is missing, report what is ready; a snapshot the
    storage refused, or that is not ready `deadline` seconds after it was taken, ends it."""
    from clone_operator.engine import clusters  # the engine that uses it; no cycle at import

    owner, namespace = plan.owner, plan.namespace
    pairs = cluster_builders.volume_pairs(plan)
    if plan.copy_method is CopyMethod.GROUP_SNAPSHOT:
        groups = await owned(funnel, owner, namespace, VOLUME_GROUP_SNAPSHOT)
        if not groups:
            refusal = await _check_selector(funnel, plan, {s for s, _ in pairs})
            if refusal is not None:
                return refusal
            groups = await clusters.ensure(
                funnel, [snapshot_builders.group_snapshot(plan, class_name)], owner
            )
        group = groups[0]
        error = storage_rules.snapshot_error(group) or storage_rules.snapshot_late(
            group, datetime.now(UTC), deadline
        )
        if error is not None:
            return Refused(error)
        all_snaps = await funnel.kube.list(*VOLUME_SNAPSHOT, namespace)
        members = snapshot_builders.members(group, all_snaps)
        by_name = {s["metadata"]["name"]: s for s in all_snaps}
        by_source = {src: by_name[name] for src, name in members.items() if name in by_name}
        ready = bool((group.get("status") or {}).get("readyToUse"))
    else:
        taken = {
            s["spec"]["source"].get("persistentVolumeClaimName"): s
            for s in await owned(funnel, owner, namespace, VOLUME_SNAPSHOT)
        }
        missing = [
            snapshot_builders.volume_snapshot(plan, source, target, class_name)
            for source, target in pairs
            if source not in taken
        ]
        if missing:
            for made in await clusters.ensure(funnel, missing, owner):
                taken[made["spec"]["source"]["persistentVolumeClaimName"]] = made
        by_source = {src: taken[src] for src, _ in pairs if src in taken}
        for snap in by_source.values():
            body = {"kind": "VolumeSnapshot", **snap}
            error = storage_rules.snapshot_error(body) or storage_rules.snapshot_late(
                body, datetime.now(UTC), deadline
            )
            if error is not None:
                return Refused(error)
        ready = all((s.get("status") or {}).get("readyToUse") for s in by_source.values()) and len(
            by_source
        ) == len(pairs)
    if not keep:
        await _deleted_with_snapshots(funnel, list(by_source.values()))
    volumes = volume_statuses(pairs, by_source)
    point = snapshot_builders.cut_at(list(by_source.values())) if by_source else None
    if plan.copy_method is CopyMethod.GROUP_SNAPSHOT and point is not None:
        point = (groups[0].get("status") or {}).get("creationTime") or point  # one instant
    if ready and len(by_source) == len(pairs):
        snapshots = {src: str(s["metadata"]["name"]) for src, s in by_source.items()}
        return Cut(snapshots, point, volumes)
    looked = groups if plan.copy_method is CopyMethod.GROUP_SNAPSHOT else list(by_source.values())
    return Cutting(storage_rules.next_cut_look(looked, datetime.now(UTC)), volumes, point)


async def _check_selector(
    funnel: Writes, plan: cluster_builders.ClusterPlan, sources: set[str]
) -> Refused | None:
    """A group snapshot takes what its selector picks: exactly the source's PVCs."""
    labels = snapshot_builders.group_selector(plan)["matchLabels"]
    if not labels:
        return Refused("the source StatefulSet has no matchLabels to select its PVCs by")
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    picked = {
        p["metadata"]["name"]
        for p in await funnel.kube.list(
            "v1", "PersistentVolumeClaim", plan.namespace, label_selector=selector
        )
    }
    if picked != sources:
        extra = ", ".join(sorted(picked - sources)) or "none"
        lacking = ", ".join(sorted(sources - picked)) or "none"
        return Refused(
            f"a VolumeGroupSnapshot takes the PVCs its selector ({selector}) picks, and it does "
            f"not pick exactly the source's (also: {extra}; missing: {lacking}); use copyMethod "
            "Snapshot"
        )
    return None


async def _deleted_with_snapshots(funnel: Writes, snapshots: list[JSON]) -> None:
    """Contents of a Retain class, bound to snapshots we took: made to go with them."""
    for snap in snapshots:
        name = (snap.get("status") or {}).get("boundVolumeSnapshotContentName")
        if not name:
            continue
        content = await funnel.kube.get(
            "snapshot.storage.k8s.io/v1", "VolumeSnapshotContent", None, name
        )
        if content is None:
            continue
        body = {"apiVersion": VOLUME_SNAPSHOT[0], "kind": VOLUME_SNAPSHOT[1], **snap}
        patch = snapshot_builders.retain_patch(body, content)
        if patch is not None:
            await funnel.release_content(body, content, patch)


async def remove(funnel: Writes, owner: Owner, namespace: str) -> int:
    """Delete the snapshots this owner took (after success; failures: clusters.remove)."""
    count = 0
    for kind in (VOLUME_GROUP_SNAPSHOT, VOLUME_SNAPSHOT):
        for snap in await owned(funnel, owner, namespace, kind):
            try:
                count += await funnel.delete(snap, uid=snap["metadata"]["uid"])
            except ApiError:
                continue  # a group's member is removed with its group
    return count
