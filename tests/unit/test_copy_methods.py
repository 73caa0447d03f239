"""Copy methods: the Auto rule, the storage's reach, the snapshot builders, the
admitted rows and the rights the policies ask for."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from clone_operator.api.cloneobjects import CloneObjectStatus
from clone_operator.api.cloningoperations import CloningOperationStatus, CopyMethod, VolumeStatus
from clone_operator.api.policies import POLICIES
from clone_operator.builders import clusters as cluster_builders
from clone_operator.builders import snapshots as snapshot_builders
from clone_operator.reconcile import storage, writes
from clone_operator.reconcile import volumes as volume_rules
from clone_operator.reconcile.storage import Choice, Facts, Place, Refused, SnapshotClass, Volume
from tests.unit.factories import plan

EAST_A = Place(frozenset({"us-east-1"}), frozenset({"us-east-1a"}))
ZONES = {
    "us-east-1": frozenset({"us-east-1a", "us-east-1b"}),
    "us-west-2": frozenset({"us-west-2a"}),
}
CSI = "disk.csi.example.com"
ANYWHERE = Place()


def volumes(place: Place = ANYWHERE, csi: bool = True, n: int = 2) -> tuple[Volume, ...]:
    return tuple(
        Volume(f"data-db-{i}", "zonal-ssd", CSI if csi else "example.com/nfs", csi, place)
        for i in range(n)
    )


def facts(
    place: Place = ANYWHERE, csi: bool = True, classes: tuple[SnapshotClass, ...] | None = ()
) -> Facts:
    return Facts(volumes(place, csi), classes, None, ZONES)


DEFAULT = SnapshotClass("fast", CSI, default=True)


def test_none_needs_nothing_of_the_storage() -> None:
    assert storage.choose(CopyMethod.NONE, facts(EAST_A), "us-east-1", "us-west-2") == Choice(
        CopyMethod.NONE
    )


def test_auto_without_the_snapshot_api_clones_as_before() -> None:
    choice = storage.choose(CopyMethod.AUTO, facts(classes=None), None, None, may_snapshot=True)
    assert choice.method is CopyMethod.VOLUME_CLONE
    assert "snapshot.storage.k8s.io/v1" in choice.why


def test_auto_takes_snapshots_when_the_driver_has_a_class_and_the_requester_may() -> None:
    choice = storage.choose(CopyMethod.AUTO, facts(classes=(DEFAULT,)), None, None, None, True)
    assert (choice.method, choice.snapshot_class) == (CopyMethod.SNAPSHOT, "fast")
    # ... and clones when the requester may not create VolumeSnapshots.
    choice = storage.choose(CopyMethod.AUTO, facts(classes=(DEFAULT,)), None, None, None, False)
    assert choice.method is CopyMethod.VOLUME_CLONE
    assert "may not create VolumeSnapshots" in choice.why


def test_auto_does_not_snapshot_volumes_that_are_not_csi() -> None:
    choice = storage.choose(
        CopyMethod.AUTO, facts(csi=False, classes=(DEFAULT,)), None, None, None, True
    )
    assert choice.method is CopyMethod.VOLUME_CLONE


def test_explicit_snapshot_without_the_api_says_what_is_missing() -> None:
    with pytest.raises(Refused) as e:
        storage.choose(CopyMethod.SNAPSHOT, facts(classes=None), None, None)
    assert "snapshot.storage.k8s.io/v1" in str(e.value)
    assert "What would work: copyMethod VolumeClone" in str(e.value)


@pytest.mark.parametrize(
    ("classes", "requested", "expected"),
    [
        ((DEFAULT, SnapshotClass("slow", CSI)), None, "fast"),
        ((SnapshotClass("only", CSI),), None, "only"),
        ((DEFAULT, SnapshotClass("slow", CSI)), "slow", "slow"),
        ((SnapshotClass("a", CSI), SnapshotClass("b", CSI)), None, "no VolumeSnapshotClass"),
        ((SnapshotClass("x", "other.csi"),), "x", "is for driver other.csi"),
        ((DEFAULT,), "nope", "nope does not exist"),
        ((DEFAULT, SnapshotClass("fast2", CSI, default=True)), None, "several .* marked default"),
    ],
)
def test_the_snapshot_class_is_named_else_the_drivers_default_else_its_only_one(
    classes: tuple[SnapshotClass, ...], requested: str | None, expected: str
) -> None:
    if expected[0].isupper() or " " in expected:  # a refusal
        with pytest.raises(Refused, match=expected):
            storage.choose(CopyMethod.SNAPSHOT, facts(classes=classes), None, None, requested)
    else:
        choice = storage.choose(CopyMethod.SNAPSHOT, facts(classes=classes), None, None, requested)
        assert choice.snapshot_class == expected


def test_a_retain_class_is_reported() -> None:
    retain = SnapshotClass("keep", CSI, default=True, deletion_policy="Retain")
    assert storage.choose(CopyMethod.SNAPSHOT, facts(classes=(retain,)), None, None).retain


@pytest.mark.parametrize("method", [CopyMethod.VOLUME_CLONE, CopyMethod.AUTO, CopyMethod.SNAPSHOT])
def test_no_storage_level_copy_leaves_its_region(method: CopyMethod) -> None:
    with pytest.raises(Refused) as e:
        storage.choose(
            method, facts(EAST_A, classes=(DEFAULT,)), "us-east-1", "us-west-2", None, True
        )
    message = str(e.value)
    assert (
        "StorageClass zonal-ssd keeps its volumes in zone us-east-1a of region us-east-1" in message
    )
    assert "region us-west-2" in message
    assert "What would work: a target in region us-east-1" in message


def test_a_clone_stays_in_its_zone_and_a_snapshot_may_leave_it() -> None:
    elsewhere = Place(frozenset({"us-east-1"}), frozenset({"us-east-1c"}))  # no node there
    with pytest.raises(Refused) as e:
        storage.choose(
            CopyMethod.VOLUME_CLONE, facts(elsewhere, classes=(DEFAULT,)), "us-east-1", None
        )
    assert "has no node in that zone" in str(e.value)
    assert "copyMethod Snapshot" in str(e.value)
    choice = storage.choose(
        CopyMethod.AUTO, facts(elsewhere, classes=(DEFAULT,)), "us-east-1", None, None, True
    )
    assert choice.method is CopyMethod.SNAPSHOT


def test_volumes_that_say_nowhere_go_anywhere() -> None:
    """Storage whose PVs carry no topology (the local provisioner, NFS): not refused."""
    choice = storage.choose(CopyMethod.VOLUME_CLONE, facts(classes=None), "us-east-1", "us-west-2")
    assert choice.method is CopyMethod.VOLUME_CLONE


def test_allowed_topologies_bound_where_restores_are_made() -> None:
    vols = tuple(
        Volume(v.pvc, v.storage_class, v.driver, True, Place(), Place(frozenset({"us-east-1"})))
        for v in volumes()
    )
    with pytest.raises(Refused) as e:
        storage.choose(CopyMethod.SNAPSHOT, Facts(vols, (DEFAULT,), None, ZONES), None, "us-west-2")
    assert "makes volumes only in region us-east-1 (its allowedTopologies)" in str(e.value)


def test_place_of_reads_node_affinity_and_allowed_topologies() -> None:
    terms: list[dict[str, Any]] = [
        {
            "matchExpressions": [
                {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]}
            ]
        },
        {"matchLabelExpressions": [{"key": "topology.kubernetes.io/region", "values": ["r"]}]},
        {
            "matchExpressions": [
                {"key": "topology.kubernetes.io/zone", "operator": "NotIn", "values": ["b"]}
            ]
        },
    ]
    assert storage.place_of(terms) == Place(frozenset({"r"}), frozenset({"a"}))


def test_the_storages_refusal_is_quoted_and_transient_ones_are_not() -> None:
    def event(message: str, name: str = "data-t-0") -> dict[str, Any]:
        return {
            "involvedObject": {"kind": "PersistentVolumeClaim", "name": name},
            "reason": "ProvisioningFailed",
            "message": message,
            "lastTimestamp": "2026-12-02T07:00:00Z",
        }

    refused = "failed to provision volume: rpc error: code = InvalidArgument desc = CSI driver does not support clone operations"
    assert storage.storage_refusal([event(refused)], "data-t-0") == (
        f"the storage refused to provision PVC data-t-0: {refused}"
    )
    assert storage.storage_refusal([event(refused, "other")], "data-t-0") is None
    assert storage.storage_refusal([event("snapshot s is not Ready")], "data-t-0") is None
    missing = 'storageclass.storage.k8s.io "no-such-class" not found'
    assert storage.storage_refusal([event(missing)], "data-t-0") is None  # it may yet be made


def test_a_snapshot_error_is_the_storages_words() -> None:
    snap = {
        "kind": "VolumeSnapshot",
        "metadata": {"name": "s"},
        "status": {"error": {"message": "quota"}},
    }
    assert storage.snapshot_error(snap) == "VolumeSnapshot s failed: quota"
    assert storage.snapshot_error({"metadata": {"name": "s"}, "status": {}}) is None
    conflict = (
        "Failed to create group snapshot: error updating status for volume group snapshot "
        'content groupsnapcontent-2f30: Operation cannot be fulfilled on "groupsnapcontent-2f30": '
        "the object has been modified; please apply your changes to the latest version"
    )
    retried = {"metadata": {"name": "g"}, "status": {"error": {"message": conflict}}}
    assert storage.snapshot_error(retried) is None  # the snapshot-controller tries again


def test_snapshots_are_named_as_the_pvcs_they_restore_and_admitted() -> None:
    p = plan(copy_method=CopyMethod.SNAPSHOT)
    source, target = cluster_builders.volume_pairs(p)[0]
    snap = snapshot_builders.volume_snapshot(p, source, target, "fast")
    assert snap["spec"] == {
        "source": {"persistentVolumeClaimName": source},
        "volumeSnapshotClassName": "fast",
    }
    assert snap["metadata"]["ownerReferences"] == [p.owner.reference()]
    admitted = writes.cluster(p.namespace, p.target_name, "Snapshot")
    assert writes.refusal(admitted, snap) is None
    assert (
        writes.refusal(writes.cluster(p.namespace, p.target_name, "VolumeClone"), snap) is not None
    )
    group = snapshot_builders.group_snapshot(p, "grp")
    assert group["spec"]["source"]["selector"] == {
        "matchLabels": p.source["spec"]["selector"]["matchLabels"]
    }
    assert (
        writes.refusal(writes.cluster(p.namespace, p.target_name, "GroupSnapshot"), group) is None
    )
    assert writes.refusal(admitted, group) is not None


def test_restored_pvcs_name_their_snapshot() -> None:
    p = plan(copy_method=CopyMethod.SNAPSHOT)
    snaps = dict(cluster_builders.volume_pairs(p))
    pvcs = cluster_builders.build_pvcs(dataclasses.replace(p, snapshots=snaps))
    assert pvcs
    for pvc in pvcs:
        assert pvc["spec"]["dataSource"] == {
            "apiGroup": "snapshot.storage.k8s.io",
            "kind": "VolumeSnapshot",
            "name": pvc["metadata"]["name"],
        }
    with pytest.raises(cluster_builders.BuildError, match="no snapshot of source PVC"):
        cluster_builders.build_pvcs(p)


def test_group_members_are_found_by_their_owner_and_pvc() -> None:
    group = {"metadata": {"uid": "g1"}}
    member = {
        "metadata": {
            "name": "snapshot-abc",
            "ownerReferences": [{"kind": "VolumeGroupSnapshot", "uid": "g1"}],
        },
        "spec": {"source": {"persistentVolumeClaimName": "data-db-0"}},
    }
    stranger = {**member, "metadata": {"name": "x", "ownerReferences": []}}
    assert snapshot_builders.members(group, [member, stranger]) == {"data-db-0": "snapshot-abc"}


def test_the_cut_is_the_latest_creation_time_once_all_have_one() -> None:
    a = {"status": {"creationTime": "2026-12-02T07:00:01Z"}}
    b = {"status": {"creationTime": "2026-12-02T07:00:03Z"}}
    assert snapshot_builders.cut_at([a, b]) == "2026-12-02T07:00:03Z"
    assert snapshot_builders.cut_at([a, {"status": {}}]) is None


def test_a_retained_content_is_switched_to_delete_only_when_bound_to_that_snapshot() -> None:
    snap = {"metadata": {"namespace": "n", "name": "s", "uid": "u"}}
    content = {
        "spec": {
            "deletionPolicy": "Retain",
            "volumeSnapshotRef": {"namespace": "n", "name": "s", "uid": "u"},
        }
    }
    assert snapshot_builders.retain_patch(snap, content) == {"spec": {"deletionPolicy": "Delete"}}
    other = {
        "spec": {
            **content["spec"],
            "volumeSnapshotRef": {"namespace": "n", "name": "s", "uid": "v"},
        }
    }
    assert snapshot_builders.retain_patch(snap, other) is None
    assert (
        snapshot_builders.retain_patch(
            snap, {"spec": {**content["spec"], "deletionPolicy": "Delete"}}
        )
        is None
    )


def test_the_policies_ask_for_snapshot_rights_only_for_the_snapshot_methods() -> None:
    for definition in POLICIES:
        assert "== 'Snapshot' ? [" in definition.required
        assert "'resource': 'volumesnapshots'" in definition.required
        assert "== 'GroupSnapshot' ? [" in definition.required
        assert "'resource': 'volumegroupsnapshots'" in definition.required


def test_volume_progress_and_the_stage_conditions() -> None:
    now = "2026-12-02T07:00:00Z"
    status = CloningOperationStatus(copy_method=CopyMethod.SNAPSHOT)
    cutting = [VolumeStatus(name="data-t-0", source="data-s-0", snapshot="data-t-0")]
    first = volume_rules.cut_progress(status, cutting, None, now, 1)
    assert first is not None
    assert first.point_in_time is None
    assert {c.type: c.status for c in first.conditions} == {"SnapshotsTaken": "False"}
    cut = [cutting[0].model_copy(update={"cut_at": now, "snapshot_ready": True})]
    done = volume_rules.cut_progress(first, cut, now, now, 1)
    assert done is not None
    assert done.point_in_time == now
    assert {c.type: c.status for c in done.conditions} == {"SnapshotsTaken": "True"}
    assert volume_rules.cut_progress(done, cut, now, now, 1) is None  # nothing new: no write
    bound = volume_rules.volumes_bound(done, {"data-t-0": ("data-s-0", True)}, now, 1)
    assert bound is not None
    assert (bound.volumes[0].bound, bound.volumes[0].snapshot) == (True, "data-t-0")
    assert {c.type: c.status for c in bound.conditions}["VolumesReady"] == "True"
    assert volume_rules.volumes_bound(bound, {"data-t-0": ("data-s-0", True)}, now, 1) is None


def test_a_clone_objects_volume_copy_has_the_same_progress_and_stages() -> None:
    """A CloneObject (of a PVC, or a StatefulSet) records its volumes, the point in time
    and the stage conditions as a CloningOperation does; each stage ends once."""
    now = "2026-12-02T07:00:00Z"
    status = CloneObjectStatus(copy_method=CopyMethod.SNAPSHOT)
    taking = [VolumeStatus(name="copy", source="data", snapshot="copy", snapshot_ready=False)]
    first = volume_rules.copy_progress(status, taking, None, None, now, 1)
    assert first is not None
    assert (first.point_in_time, volume_rules.stages_ended(status, first)) == (None, [])
    cut = [taking[0].model_copy(update={"cut_at": now, "snapshot_ready": True,
                                        "restore_size": "1Gi"})]  # fmt: skip
    done = volume_rules.copy_progress(first, cut, now, None, now, 1)
    assert done is not None
    assert (done.point_in_time, done.volumes[0].restore_size) == (now, "1Gi")
    assert volume_rules.stages_ended(first, done) == ["cut"]
    bound = volume_rules.copy_progress(done, None, None, {"copy": ("data", True)}, now, 1)
    assert bound is not None
    assert volume_rules.stages_ended(done, bound) == ["volumes"]
    assert volume_rules.stages_ended(bound, bound) == []
    assert {c.type: c.status for c in bound.conditions} == {
        "SnapshotsTaken": "True",
        "VolumesReady": "True",
    }
    assert volume_rules.copy_progress(bound, cut, now, {"copy": ("data", True)}, now, 1) is None
    clone = volume_rules.copy_progress(
        CloneObjectStatus(), None, None, {"copy": ("data", False)}, now, 1
    )
    assert clone is not None
    assert [(v.name, v.source, v.bound, v.snapshot) for v in clone.volumes] == [
        ("copy", "data", False, None)
    ]
    assert {c.type: c.reason for c in clone.conditions} == {"VolumesReady": "Provisioning"}


def test_a_cut_is_looked_at_soon_while_new_and_every_two_seconds_when_old() -> None:
    now = datetime(2026, 12, 2, 10, 0, 10, tzinfo=UTC)

    def taken(*seconds_ago: int) -> list[dict[str, Any]]:
        return [
            {"metadata": {"creationTimestamp": f"2026-12-02T10:00:{10 - s:02d}Z"}}
            for s in seconds_ago
        ]

    assert storage.next_cut_look([], now) == 0.25  # not taken yet (or not read back)
    assert storage.next_cut_look(taken(0), now) == 0.25
    assert storage.next_cut_look(taken(1), now) == 0.5
    assert storage.next_cut_look(taken(9, 2), now) == 1.0  # the youngest decides
    assert storage.next_cut_look(taken(9), now) == 2.0
