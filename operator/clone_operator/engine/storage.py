"""Reads what the storage of a source can do (`reconcile.storage.Facts`), and whether
the requester may create VolumeSnapshots. Reads only; the one write is a
SubjectAccessReview, which the API server answers without storing anything.

The cluster-wide lists (StorageClasses, snapshot classes) are read once per
`CACHE_SECONDS` (kept in `Lists`, on the operator's context): one read serves
every clone that starts meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from clone_operator.api.cloningoperations import CopyMethod
from clone_operator.api.policies import (
    AUTO_RIGHTS,
    REQUESTED_BY,
    REQUESTER_MAY_CREATE,
    SNAPSHOT_GROUP,
)
from clone_operator.k8s.api import JSON, ApiError, Kube, NotFound
from clone_operator.reconcile import storage
from clone_operator.reconcile.storage import Facts, SnapshotClass, Volume

CACHE_SECONDS = 30.0


@dataclass
class Lists:
    """Cluster-scoped lists read lately, by (apiVersion, kind): (when, items or None)."""

    kube: Kube
    read: dict[tuple[str, str], tuple[float, list[JSON] | None]] = field(default_factory=dict)

    async def get(self, api_version: str, kind: str, fresh: bool = False) -> list[JSON] | None:
        """The LIST, cached briefly (unless `fresh`); None when the API is not served."""
        hit = self.read.get((api_version, kind))
        if not fresh and hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return hit[1]
        try:
            items: list[JSON] | None = await self.kube.list(api_version, kind)
        except NotFound:
            items = None
        self.read[(api_version, kind)] = (time.monotonic(), items)
        return items


def _classes(items: list[JSON] | None, default_key: str) -> tuple[SnapshotClass, ...] | None:
    if items is None:
        return None
    return tuple(storage.snapshot_class_from_body(i, default_key) for i in items)


async def volume(kube: Kube, namespace: str, pvc_name: str, classes: dict[str, JSON]) -> Volume:
    """One source volume: its PVC, PV and StorageClass, as the cluster tells."""
    pvc = await kube.get("v1", "PersistentVolumeClaim", namespace, pvc_name) or {}
    spec = pvc.get("spec") or {}
    class_name = spec.get("storageClassName")
    pv = None
    if spec.get("volumeName"):
        pv = await kube.get("v1", "PersistentVolume", None, spec["volumeName"])
    pv_spec = (pv or {}).get("spec") or {}
    csi = pv_spec.get("csi") or {}
    sc = classes.get(class_name or "") or {}
    return Volume(
        pvc=pvc_name,
        storage_class=class_name,
        driver=csi.get("driver") or sc.get("provisioner"),
        csi=bool(csi),
        place=storage.pv_place(pv),
        class_place=storage.place_of(sc.get("allowedTopologies") or []),
    )


async def facts(
    lists: Lists, namespace: str, pvcs: Iterable[str], fresh: bool = False, elsewhere: bool = True
) -> Facts:
    """What the cluster tells of these source PVCs' storage (`fresh`: no cached list).

    The volumes themselves (PVC, PV: two reads each) are read only when they can change
    the choice: the target is `elsewhere` (another region than the source's), or a
    snapshot API is served. A clone in its source's region, on a cluster without
    snapshots, is a VolumeClone as before, at the cost of the cached lists alone."""
    kube = lists.kube
    names = list(pvcs)
    if not names:
        return Facts()
    snapshot_classes = _classes(
        await lists.get("snapshot.storage.k8s.io/v1", "VolumeSnapshotClass", fresh),
        storage.DEFAULT_SNAPSHOT_CLASS,
    )
    group_snapshot_classes = _classes(
        await lists.get("groupsnapshot.storage.k8s.io/v1", "VolumeGroupSnapshotClass", fresh),
        storage.DEFAULT_GROUP_SNAPSHOT_CLASS,
    )
    if not elsewhere and snapshot_classes is None and group_snapshot_classes is None:
        return Facts(tuple(Volume(pvc=n) for n in names), None, None)
    classes = {
        c["metadata"]["name"]: c
        for c in await lists.get("storage.k8s.io/v1", "StorageClass", fresh) or []
    }
    volumes = tuple([await volume(kube, namespace, n, classes) for n in names])
    zones: dict[str, frozenset[str]] = {}
    if any(v.place.zones for v in volumes):
        found: dict[str, set[str]] = {}
        for node in await kube.list("v1", "Node"):
            labels = node["metadata"].get("labels") or {}
            region = next((labels[k] for k in storage.REGION_KEYS if k in labels), None)
            zone = next((labels[k] for k in storage.ZONE_KEYS if k in labels), None)
            if region and zone:
                found.setdefault(region, set()).add(zone)
        zones = {r: frozenset(z) for r, z in found.items()}
    return Facts(volumes, snapshot_classes, group_snapshot_classes, zones)


async def may_create(
    kube: Kube, owner_body: JSON, namespace: str, group: str, resource: str
) -> bool:
    """Whether the resource's requester (recorded at admission) may create `resource` in
    `namespace`: asked for `Auto` only, whose policy did not check what it may pick. Groups
    are not recorded, so a right held through a group is not seen (Auto then does
    without)."""
    annotations = (owner_body.get("metadata") or {}).get("annotations") or {}
    claimed = str(annotations.get(REQUESTER_MAY_CREATE) or "").split(",")
    if resource in claimed:
        return True  # asked at admission with its groups, and checked by the policy
    user = annotations.get(REQUESTED_BY)
    if not user:
        return False
    return await allowed(kube, {"user": user}, namespace, group, resource)


async def allowed(kube: Kube, subject: JSON, namespace: str, group: str, resource: str) -> bool:
    """A SubjectAccessReview: may `subject` (user, groups, uid, extra) create `resource`?"""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "metadata": {},
        "spec": {
            **subject,
            "resourceAttributes": {
                "namespace": namespace,
                "verb": "create",
                "group": group,
                "resource": resource,
            },
        },
    }
    try:
        answer = await kube.create(review)
    except ApiError:
        return False  # not allowed to ask: Auto does without
    return bool((answer.get("status") or {}).get("allowed"))


async def auto_rights(kube: Kube, userinfo: JSON, namespace: str, transfers: bool) -> list[str]:
    """What `Auto` may use for this requester (AUTO_RIGHTS it holds in `namespace`), asked
    with everything the API server told of it (user, groups, uid, extra): the mutating
    webhook records it, so a right held through a group counts."""
    subject: JSON = {"user": userinfo.get("username")}
    for key in ("groups", "uid", "extra"):
        if userinfo.get(key):
            subject[key] = userinfo[key]
    wanted = [r for r in AUTO_RIGHTS if transfers or r != "pods"]
    return [r for r in wanted if await allowed(kube, subject, namespace, AUTO_RIGHTS[r], r)]


async def may_snapshot(kube: Kube, owner_body: JSON, namespace: str) -> bool:
    """Whether the requester may create VolumeSnapshots (Auto's Snapshot)."""
    return await may_create(kube, owner_body, namespace, SNAPSHOT_GROUP, "volumesnapshots")


async def may_transfer(kube: Kube, owner_body: JSON, namespace: str) -> bool:
    """Whether the requester may create pods (Auto's Transfer runs movers; it snapshots
    too, asked apart)."""
    return await may_create(kube, owner_body, namespace, "", "pods")


async def decide(
    lists: Lists,
    owner_body: JSON,
    namespace: str,
    pvcs: Iterable[str],
    requested: CopyMethod,
    source_region: str | None,
    target_region: str | None,
    snapshot_class: str | None,
) -> storage.Choice:
    """The copy method for these source PVCs (`reconcile.storage.choose`); raises
    Refused. The requester's right to snapshot is asked only when `Auto` could use it.
    A refusal, or an Auto that does without snapshots, is decided again on fresh lists
    (a class made a moment ago is never missed for the cache)."""
    if requested is CopyMethod.NONE:
        return storage.Choice(CopyMethod.NONE)
    names = list(pvcs)
    elsewhere = target_region is not None and target_region != source_region
    for fresh in (False, True):
        found = await facts(lists, namespace, names, fresh, elsewhere)
        may = False
        with_class = {c.driver for c in found.snapshot_classes or ()}
        snapshottable = all(v.csi and v.driver in with_class for v in found.volumes)
        may_move = False
        if requested is CopyMethod.AUTO and found.volumes and snapshottable:
            may = await may_snapshot(lists.kube, owner_body, namespace)
            if elsewhere:
                may_move = await may_transfer(lists.kube, owner_body, namespace)
        try:
            choice = storage.choose(
                requested, found, source_region, target_region, snapshot_class, may, may_move
            )
        except storage.Refused:
            if fresh:
                raise
            continue
        if fresh or requested is not CopyMethod.AUTO or choice.method.snapshots:
            return choice
        if found.snapshot_classes is None and not any(v.csi for v in found.volumes):
            return choice  # nothing a fresh read could change
    return choice
