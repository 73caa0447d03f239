"""What the storage can do, and which copy method to use. Pure: facts in, a choice out.

The facts are what any conformant cluster exposes, read by `engine.storage`:
each source volume's PersistentVolume (its CSI driver, its node affinity: the
zone and region it lives in), its StorageClass (`allowedTopologies`), whether
the snapshot APIs are served and which snapshot classes exist. Nothing comes
from a driver's own parameters. Kubernetes publishes no "can clone" capability;
a VolumeSnapshotClass for a driver says that it takes snapshots.

`choose` is decided once, when a clone starts and before anything is created.
Storage-level copies stay where their storage is: a CSI clone in its source's
zone (its PV carries the same node affinity), a snapshot within its source's
region (EBS, GCE PD, Azure Disk snapshots are regional or wider; restores are
provisioned anywhere the StorageClass allows in that region). A method that
cannot deliver volumes where the target must run is refused, with a message that
names the StorageClass, where its volumes live, and what would work.

The `Auto` rule (docs/copy-methods.md):
1. Nothing to copy (no volumes): `VolumeClone` (a no-op).
2. `Snapshot` when the snapshot API is served, every source volume is a CSI
   volume whose driver has a VolumeSnapshotClass (the named one, else the one
   marked default, else its only one), the requester may create VolumeSnapshots,
   and the snapshots' region is the target's. A snapshot is a point in time per
   volume, and restores may land in any zone of the region.
3. Otherwise `VolumeClone` (the behaviour before copy methods existed), when the
   clone can be used where the target runs (same region; for zonal volumes, a
   zone the target's region has nodes in).
4. Otherwise `Transfer`, when snapshots of every volume can be taken (as for rule 2),
   the StorageClass may make volumes in the target's region, and the requester may
   create VolumeSnapshots and pods (the movers): mover pods copy the data across.
5. Otherwise refused, naming what each method lacks.

An explicit `Transfer` needs what rule 4 checks of the storage (its rights were
checked at admission).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from clone_operator.api.cloningoperations import CopyMethod
from clone_operator.api.common import parse_rfc3339

REGION_KEYS = ("topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region")
ZONE_KEYS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
DEFAULT_SNAPSHOT_CLASS = "snapshot.storage.kubernetes.io/is-default-class"
DEFAULT_GROUP_SNAPSHOT_CLASS = "groupsnapshot.storage.kubernetes.io/is-default-class"
SNAPSHOT_API = "snapshot.storage.k8s.io/v1"
GROUP_SNAPSHOT_API = "groupsnapshot.storage.k8s.io/v1"


class Refused(ValueError):
    """The method cannot deliver the target's volumes; the message says why and what would."""


@dataclass(frozen=True)
class Place:
    """Where volumes live or may be made; empty sets: anywhere (nothing says)."""

    regions: frozenset[str] = frozenset()
    zones: frozenset[str] = frozenset()

    def __str__(self) -> str:
        zones = f"zone {', '.join(sorted(self.zones))} of " if self.zones else ""
        regions = ", ".join(sorted(self.regions)) or "any region"
        return f"{zones}region {regions}"


def place_of(terms: Iterable[Mapping[str, Any]]) -> Place:
    """The regions and zones named by node selector terms (a PV's node affinity) or by
    topology selector terms (a StorageClass's allowedTopologies)."""
    regions: set[str] = set()
    zones: set[str] = set()
    for term in terms:
        requirements = [
            *(term.get("matchExpressions") or []),
            *(term.get("matchLabelExpressions") or []),
        ]
        for req in requirements:
            if req.get("operator", "In") != "In":
                continue
            if req.get("key") in REGION_KEYS:
                regions.update(req.get("values") or [])
            elif req.get("key") in ZONE_KEYS:
                zones.update(req.get("values") or [])
    return Place(frozenset(regions), frozenset(zones))


def pv_place(pv: Mapping[str, Any] | None) -> Place:
    """Where a PersistentVolume lives: its required node affinity (empty: untold)."""
    affinity = ((pv or {}).get("spec") or {}).get("nodeAffinity") or {}
    return place_of((affinity.get("required") or {}).get("nodeSelectorTerms") or [])


@dataclass(frozen=True)
class Volume:
    """One source volume, as its PVC, PV and StorageClass tell."""

    pvc: str
    storage_class: str | None = None
    driver: str | None = None
    """The CSI driver of its PV (else the StorageClass's provisioner)."""
    csi: bool = False
    """Whether its PV is a CSI volume (snapshots need one)."""
    place: Place = Place()
    """Where it lives (its PV's node affinity)."""
    class_place: Place = Place()
    """Where its StorageClass may make volumes (allowedTopologies)."""

    @property
    def what(self) -> str:
        return f"StorageClass {self.storage_class}" if self.storage_class else f"PVC {self.pvc}"


@dataclass(frozen=True)
class SnapshotClass:
    name: str
    driver: str
    default: bool = False
    deletion_policy: str = "Delete"


@dataclass(frozen=True)
class Facts:
    """What the cluster tells of the source's storage."""

    volumes: tuple[Volume, ...] = ()
    snapshot_classes: tuple[SnapshotClass, ...] | None = None
    """None: the snapshot API (snapshot.storage.k8s.io/v1) is not served."""
    group_snapshot_classes: tuple[SnapshotClass, ...] | None = None
    """None: the group snapshot API (groupsnapshot.storage.k8s.io/v1) is not served."""
    zones_by_region: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """The zones the nodes of each region are in (empty: not read)."""


@dataclass(frozen=True)
class Choice:
    """The method to use, its snapshot class (one per driver), and why (for `Auto`)."""

    method: CopyMethod
    snapshot_class: str | None = None
    why: str = ""
    retain: bool = False
    """The snapshot class keeps the storage's snapshots (deletionPolicy Retain)."""


def snapshot_class_from_body(body: Mapping[str, Any], default_key: str) -> SnapshotClass:
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    return SnapshotClass(
        name=str(meta.get("name")),
        driver=str(body.get("driver")),
        default=annotations.get(default_key) == "true",
        deletion_policy=str(body.get("deletionPolicy") or "Delete"),
    )


def pick_class(
    classes: tuple[SnapshotClass, ...], driver: str | None, requested: str | None, what: str
) -> SnapshotClass:
    """The snapshot class for `driver`: the requested one, else its default, else its
    only one. Raises Refused naming what exists."""
    mine = [c for c in classes if c.driver == driver]
    listed = ", ".join(c.name for c in mine) or "none"
    if requested is not None:
        found = next((c for c in classes if c.name == requested), None)
        if found is None:
            raise Refused(f"{what} {requested} does not exist (for driver {driver}: {listed})")
        if found.driver != driver:
            raise Refused(
                f"{what} {requested} is for driver {found.driver}, not {driver} (for {driver}: "
                f"{listed})"
            )
        return found
    defaults = [c for c in mine if c.default]
    if len(defaults) == 1:
        return defaults[0]
    if len(mine) == 1 and not defaults:
        return mine[0]
    if defaults:
        raise Refused(
            f"several {what}es are marked default for driver {driver} ({listed}): name one"
        )
    raise Refused(
        f"no {what} for driver {driver} ({listed} exist for it); create one, or name one "
        "in volumeSnapshotClassName"
    )


def _snapshot_problem(
    method: CopyMethod, facts: Facts, requested_class: str | None
) -> tuple[str | None, SnapshotClass | None]:
    """Why snapshots of every volume cannot be taken (None: they can), and the class."""
    group = method is CopyMethod.GROUP_SNAPSHOT
    classes = facts.group_snapshot_classes if group else facts.snapshot_classes
    api = GROUP_SNAPSHOT_API if group else SNAPSHOT_API
    what = "VolumeGroupSnapshotClass" if group else "VolumeSnapshotClass"
    if classes is None:
        return (
            f"the cluster does not serve the {api.split('/')[0]} API ({api}): install the "
            "external-snapshotter's CRDs and its snapshot-controller, and a CSI driver's "
            "csi-snapshotter",
            None,
        )
    not_csi = [v for v in facts.volumes if not v.csi]
    if not_csi:
        return (
            f"PVC {not_csi[0].pvc} is not a CSI volume (its PersistentVolume has no spec.csi, "
            f"or it is not bound): snapshots need a CSI driver",
            None,
        )
    drivers = sorted({str(v.driver) for v in facts.volumes})
    if group and len(drivers) > 1:
        return f"the source's volumes belong to several drivers ({', '.join(drivers)})", None
    chosen = None
    try:
        for driver in drivers:
            chosen = pick_class(classes, driver, requested_class, what)
    except Refused as e:
        return str(e), None
    return None, chosen


def _region_problem(method: CopyMethod, facts: Facts, target_region: str | None) -> str | None:
    """Why the method cannot put volumes in the target's region (None: it can)."""
    if target_region is None:
        return None
    for v in facts.volumes:
        if v.place.regions and target_region not in v.place.regions:
            return (
                f"{v.what} keeps its volumes in {v.place} (the PersistentVolume of PVC {v.pvc}); "
                f"the target must run in region {target_region}, and a {method.value} stays in "
                "its source's region"
            )
        if (
            method.snapshots
            and v.class_place.regions
            and target_region not in v.class_place.regions
        ):
            return (
                f"{v.what} makes volumes only in {v.class_place} (its allowedTopologies); the "
                f"target must run in region {target_region}"
            )
    return None


def _zone_problem(facts: Facts, target_region: str | None, source_region: str | None) -> str | None:
    """Why a CSI clone (in its source's zone) cannot be used where the target runs."""
    region = target_region or source_region
    if region is None:
        return None
    zones = facts.zones_by_region.get(region)
    for v in facts.volumes:
        if v.place.zones and zones is not None and not (v.place.zones & zones):
            return (
                f"{v.what} keeps its volumes in {v.place} (the PersistentVolume of PVC {v.pvc}); "
                f"region {region} has no node in that zone ({', '.join(sorted(zones)) or 'none'}), "
                "and a VolumeClone stays in its source's zone"
            )
    return None


def _transfer_problem(
    facts: Facts, target_region: str | None, snapshot_class: str | None
) -> tuple[str | None, SnapshotClass | None]:
    """Why a Transfer cannot copy these volumes (None: it can), and its snapshot class.
    Its cut is restored where the source lives; its new volumes are made by the source's
    StorageClass in the target's region."""
    problem, cls = _snapshot_problem(CopyMethod.SNAPSHOT, facts, snapshot_class)
    if problem is not None:
        return problem, None
    for v in facts.volumes:
        if target_region and v.class_place.regions and target_region not in v.class_place.regions:
            return (
                f"{v.what} makes volumes only in {v.class_place} (its allowedTopologies), and "
                f"a Transfer's new volumes in region {target_region} are made by it",
                None,
            )
    return None, cls


TRANSFER_NAME_LIMIT = 63 - len("-mv9999-source")
"""The longest target name a Transfer can name its mover pods from (builders.mover)."""


def transfer_name_refusal(method: CopyMethod, target: str) -> str | None:
    """Why a Transfer cannot be made for this target name (its pods' names would pass
    63 characters), else None."""
    if not method.transfers or len(target) <= TRANSFER_NAME_LIMIT:
        return None
    return (
        f"copyMethod Transfer names its mover pods <target>-mv<k>-source: the target name "
        f"{target!r} has {len(target)} characters, at most {TRANSFER_NAME_LIMIT} fit. What "
        "would work: a shorter spec.targetName"
    )


def _refusal(method: CopyMethod, problem: str, works: str) -> Refused:
    return Refused(
        f"copyMethod {method.value} cannot copy the source's volumes: {problem}. {works}"
    )


def _works_elsewhere(source_regions: set[str]) -> str:
    if source_regions:
        return (
            f"What would work: a target in region {', '.join(sorted(source_regions))} (omit "
            "targetRegion), or copyMethod None (empty volumes); storage-level copies do not "
            "leave their region."
        )
    return "What would work: copyMethod None (empty volumes)."


def choose(
    requested: CopyMethod,
    facts: Facts,
    source_region: str | None,
    target_region: str | None,
    snapshot_class: str | None = None,
    may_snapshot: bool = False,
    may_transfer: bool = False,
) -> Choice:
    """The copy method to use (see the module's rule for `Auto`), or Refused.

    `may_snapshot`, `may_transfer`: whether the requester may create VolumeSnapshots,
    and pods (a Transfer needs both): asked only for `Auto`; an explicit method was
    admitted with its rights."""
    if requested is CopyMethod.NONE:
        return Choice(CopyMethod.NONE)
    if not facts.volumes:
        method = CopyMethod.VOLUME_CLONE if requested is CopyMethod.AUTO else requested
        return Choice(method, why="the source has no volumes")
    source_regions = {r for v in facts.volumes for r in v.place.regions}
    elsewhere = _works_elsewhere(source_regions)
    if requested is CopyMethod.TRANSFER:
        problem, cls = _transfer_problem(facts, target_region, snapshot_class)
        if problem is not None:
            raise _refusal(requested, problem, "What would work: copyMethod None (empty volumes).")
        assert cls is not None
        return Choice(requested, cls.name, retain=cls.deletion_policy == "Retain")
    if requested.snapshots:
        problem, cls = _snapshot_problem(requested, facts, snapshot_class)
        if problem is not None:
            raise _refusal(requested, problem, "What would work: copyMethod VolumeClone (or Auto).")
        where = _region_problem(requested, facts, target_region)
        if where is not None:
            raise _refusal(requested, where, elsewhere)
        assert cls is not None
        return Choice(requested, cls.name, retain=cls.deletion_policy == "Retain")
    snapshot_why = None
    if requested is CopyMethod.AUTO:
        snapshot_why, cls = _snapshot_problem(CopyMethod.SNAPSHOT, facts, snapshot_class)
        if snapshot_why is None and not may_snapshot:
            snapshot_why = "the requester may not create VolumeSnapshots"
        if snapshot_why is None:
            snapshot_why = _region_problem(CopyMethod.SNAPSHOT, facts, target_region)
        if snapshot_why is None and cls is not None:
            return Choice(
                CopyMethod.SNAPSHOT,
                cls.name,
                why=f"VolumeSnapshotClass {cls.name} takes snapshots of the source's volumes",
                retain=cls.deletion_policy == "Retain",
            )
    problem = _region_problem(CopyMethod.VOLUME_CLONE, facts, target_region) or _zone_problem(
        facts, target_region, source_region
    )
    transfer_why = None
    if problem is not None and requested is CopyMethod.AUTO:
        transfer_why, cls = _transfer_problem(facts, target_region, snapshot_class)
        lacks = [
            w for w, may in (("VolumeSnapshots", may_snapshot), ("pods", may_transfer)) if not may
        ]
        if transfer_why is None and lacks:
            transfer_why = (
                f"the requester may not create {' nor '.join(lacks)} (its movers need both)"
            )
        if transfer_why is None and cls is not None:
            return Choice(
                CopyMethod.TRANSFER,
                cls.name,
                why=f"no storage-level copy reaches the target ({problem}); mover pods copy "
                f"snapshots of VolumeSnapshotClass {cls.name}",
                retain=cls.deletion_policy == "Retain",
            )
    if problem is not None:
        works = elsewhere
        if requested is CopyMethod.VOLUME_CLONE and snapshot_why is None:
            problem_snap, _ = _snapshot_problem(CopyMethod.SNAPSHOT, facts, snapshot_class)
            region_snap = _region_problem(CopyMethod.SNAPSHOT, facts, target_region)
            if problem_snap is None and region_snap is None:
                works = "What would work: copyMethod Snapshot (restores may land in any zone of the region)."
            elif problem_snap is None:
                works = f"{elsewhere} Or copyMethod Transfer: mover pods copy the data across."
        elif snapshot_why is not None:
            works = f"{elsewhere} (A Snapshot cannot be used either: {snapshot_why}.)"
        if transfer_why is not None:
            works = f"{works} (Nor a Transfer: {transfer_why}.)"
        raise _refusal(requested, problem, works)
    why = f"no snapshot: {snapshot_why}" if snapshot_why else ""
    return Choice(CopyMethod.VOLUME_CLONE, why=why)


PROVISIONING_FAILED = "ProvisioningFailed"
TRANSIENT = (
    "not ready",
    "timed out",
    "deadlineexceeded",
    "code = unavailable",
    "being deleted",
    "not found",
)
"""Words of a ProvisioningFailed that retrying may fix (the provisioner retries): not
taken as the storage's refusal. "not found": a StorageClass or a data source that may
yet be made (Kubernetes waits for it, and so does the clone, until its timeout)."""


def storage_refusal(
    events: Iterable[Mapping[str, Any]], pvc: str, storage_class: str | None = None
) -> str | None:
    """The storage's own words when it refused to make a target volume: the newest
    `ProvisioningFailed` Event of the PVC (the external-provisioner's reason). Refusals
    that retrying cannot fix: the driver cannot clone, or cannot restore the snapshot."""
    newest: tuple[str, str] | None = None
    for event in events:
        involved = event.get("involvedObject") or {}
        if involved.get("kind") != "PersistentVolumeClaim" or involved.get("name") != pvc:
            continue
        if event.get("reason") != PROVISIONING_FAILED:
            continue
        if any(t in str(event.get("message") or "").lower() for t in TRANSIENT):
            continue
        when = str(event.get("lastTimestamp") or event.get("eventTime") or "")
        if newest is None or when >= newest[0]:
            newest = (when, str(event.get("message") or ""))
    if newest is None:
        return None
    of = f" (StorageClass {storage_class})" if storage_class else ""
    return f"the storage refused to provision PVC {pvc}{of}: {newest[1]}"


def snapshot_late(snapshot: Mapping[str, Any], now: datetime, deadline: float) -> str | None:
    """Why a snapshot that is neither cut nor ready `deadline` seconds after it was taken
    ends the clone (None: it may still come)."""
    status = snapshot.get("status") or {}
    if status.get("readyToUse"):
        return None
    meta = snapshot.get("metadata") or {}
    taken = meta.get("creationTimestamp")
    if not taken or (now - parse_rfc3339(str(taken))).total_seconds() < deadline:
        return None
    state = f"cut at {status['creationTime']}" if status.get("creationTime") else "not cut"
    return (
        f"{snapshot.get('kind', 'VolumeSnapshot')} {meta.get('name')} is not ready within "
        f"{deadline:g} s of being taken ({state}; the storage reports no error). The operator "
        "setting snapshotDeadlineSeconds bounds this wait"
    )


CUT_LOOK_SECONDS = (0.25, 2.0)
"""The least and the most time between two looks at a cut in progress."""


def next_cut_look(taken: Iterable[Mapping[str, Any]], now: datetime) -> float:
    """When to look again at snapshots being cut (they have no watch here): half the
    youngest one's age, within CUT_LOOK_SECONDS. Soon while they are new (a quick
    storage is ready within a second or two), every two seconds once they are old (a
    cloud's first snapshot of a volume takes minutes)."""
    least, most = CUT_LOOK_SECONDS
    ages = [
        (now - parse_rfc3339(str(stamp))).total_seconds()
        for snapshot in taken
        if (stamp := (snapshot.get("metadata") or {}).get("creationTimestamp"))
    ]
    if not ages:
        return least
    return min(most, max(least, min(ages) / 2))


SNAPSHOT_RETRIED = (
    *TRANSIENT,
    "the object has been modified",
)
"""Words of a snapshot's status.error that its controllers retry past: not taken as the
storage's refusal (the snapshot deadline still bounds the wait). A conflict on the
snapshot-controller's own status update ("Operation cannot be fulfilled ... the object
has been modified") is one: the next attempt succeeds."""


def snapshot_error(snapshot: Mapping[str, Any]) -> str | None:
    """The storage's words when a snapshot failed (status.error), else None (also for
    an error its controllers retry past, SNAPSHOT_RETRIED)."""
    error = (snapshot.get("status") or {}).get("error") or {}
    message = error.get("message")
    if not message or any(w in str(message).lower() for w in SNAPSHOT_RETRIED):
        return None
    meta = snapshot.get("metadata") or {}
    return f"{snapshot.get('kind', 'VolumeSnapshot')} {meta.get('name')} failed: {message}"
