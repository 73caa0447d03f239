"""The Transfer copy method's pure parts: when it is chosen, what it may write, how a
volume's progress and stall are decided, and what it builds."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from clone_operator.api.cloningoperations import CloningOperationStatus, CopyMethod, VolumeStatus
from clone_operator.builders import clusters as cluster_builders
from clone_operator.builders import mover
from clone_operator.reconcile import storage, transfer, writes
from clone_operator.reconcile import volumes as volume_rules
from clone_operator.reconcile.storage import Facts, Place, Refused, SnapshotClass, Volume
from tests.unit.factories import OWNER, plan

CSI = "disk.csi.example.com"
EAST_A = Place(frozenset({"us-east-1"}), frozenset({"us-east-1a"}))
ZONES = {"us-east-1": frozenset({"us-east-1a"}), "us-west-2": frozenset({"us-west-2a"})}
DEFAULT = SnapshotClass("fast", CSI, default=True)


def facts(classes: tuple[SnapshotClass, ...] | None = (DEFAULT,), **volume: object) -> Facts:
    v = Volume("data-db-0", "zonal-ssd", CSI, True, EAST_A)
    return Facts((dataclasses.replace(v, **volume),), classes, None, ZONES)  # type: ignore[arg-type]


def test_auto_transfers_only_where_no_storage_level_copy_reaches_and_the_requester_may() -> None:
    chosen = storage.choose(CopyMethod.AUTO, facts(), "us-east-1", "us-west-2", None, True, True)
    assert (chosen.method, chosen.snapshot_class) == (CopyMethod.TRANSFER, "fast")
    assert "no storage-level copy reaches the target" in chosen.why
    # In its own region a snapshot reaches: no movers.
    here = storage.choose(CopyMethod.AUTO, facts(), "us-east-1", "us-east-1", None, True, True)
    assert here.method is CopyMethod.SNAPSHOT
    with pytest.raises(Refused) as e:  # may snapshot, may not create pods
        storage.choose(CopyMethod.AUTO, facts(), "us-east-1", "us-west-2", None, True, False)
    assert "Nor a Transfer: the requester may not create pods (its movers need" in str(e.value)
    with pytest.raises(Refused) as e:  # may create pods, may not snapshot
        storage.choose(CopyMethod.AUTO, facts(), "us-east-1", "us-west-2", None, False, True)
    assert "Nor a Transfer: the requester may not create VolumeSnapshots (its" in str(e.value)
    with pytest.raises(Refused) as e:  # no snapshot class: nothing to move from
        storage.choose(CopyMethod.AUTO, facts(()), "us-east-1", "us-west-2", None, True, True)
    assert "Nor a Transfer: no VolumeSnapshotClass for driver" in str(e.value)


def test_an_explicit_transfer_needs_snapshots_and_a_class_that_makes_volumes_there() -> None:
    chosen = storage.choose(CopyMethod.TRANSFER, facts(), "us-east-1", "us-west-2")
    assert chosen.method is CopyMethod.TRANSFER
    with pytest.raises(Refused, match=r"the cluster does not serve the snapshot\.storage\.k8s\.io"):
        storage.choose(CopyMethod.TRANSFER, facts(None), "us-east-1", "us-west-2")
    east_only = Place(frozenset({"us-east-1"}))
    with pytest.raises(Refused, match="makes volumes only in region us-east-1"):
        storage.choose(CopyMethod.TRANSFER, facts(class_place=east_only), "us-east-1", "us-west-2")


def test_a_volume_clone_refused_across_regions_points_at_transfer() -> None:
    with pytest.raises(Refused, match="Or copyMethod Transfer"):
        storage.choose(CopyMethod.VOLUME_CLONE, facts(), "us-east-1", "us-west-2")


def test_a_transfer_may_write_its_movers_and_nothing_named_otherwise() -> None:
    admitted = writes.cluster("shop", "db-west", "Transfer")
    ok = [
        ("v1", "Pod", "db-west-mv0-source"),
        ("v1", "Pod", "db-west-mv12-target"),
        ("v1", "Service", "db-west-mv0"),
        ("v1", "Secret", "db-west-mv0"),
        ("v1", "PersistentVolumeClaim", "db-west-mv0-cut"),
        ("v1", "PersistentVolumeClaim", "data-db-west-0"),
        ("snapshot.storage.k8s.io/v1", "VolumeSnapshot", "data-db-west-0"),
    ]
    refused = [
        ("v1", "Pod", "db-west-0"),  # the target's own pods are its StatefulSet's
        ("v1", "Pod", "db-west-mv0-sidecar"),
        ("v1", "Pod", "db-west-mvx-source"),
        ("v1", "Service", "db-west-mv0-cut"),
        ("v1", "Pod", "other-mv0-source"),
    ]

    def obj(api: str, kind: str, name: str) -> dict[str, object]:
        return {"apiVersion": api, "kind": kind, "metadata": {"namespace": "shop", "name": name}}

    assert [o for o in ok if writes.refusal(admitted, obj(*o)) is not None] == []
    assert [o for o in refused if writes.refusal(admitted, obj(*o)) is None] == []
    snapshot_only = writes.cluster("shop", "db-west", "Snapshot")
    assert writes.refusal(snapshot_only, obj("v1", "Pod", "db-west-mv0-source")) is not None
    assert storage.transfer_name_refusal(CopyMethod.TRANSFER, "x" * 49) is None
    too_long = storage.transfer_name_refusal(CopyMethod.TRANSFER, "x" * 50)
    assert too_long is not None
    assert "at most 49 fit" in too_long
    assert storage.transfer_name_refusal(CopyMethod.SNAPSHOT, "x" * 60) is None


def test_a_transfers_target_volumes_start_empty() -> None:
    built = cluster_builders.build_pvcs(
        dataclasses.replace(
            plan(),
            copy_method=CopyMethod.TRANSFER,
            source_pvc_sizes={
                "data-search-0": "1Gi",
                "data-search-1": "1Gi",
                "data-search-2": "1Gi",
            },
        )
    )
    assert built
    assert all("dataSource" not in p["spec"] for p in built)


def test_the_temporary_volume_is_restored_from_the_cut_and_owned() -> None:
    moving = mover.TransferPlan(
        owner=OWNER,
        name="db-west-mv0",
        namespace="shop",
        image="mover:1",
        source_claim="db-west-mv0-cut",
        target_claim="data-db-west-0",
    )
    claim = mover.restored_claim(moving, "data-db-west-0", "zonal-ssd", "2Gi", ["ReadWriteOnce"])
    assert claim["metadata"]["name"] == "db-west-mv0-cut"
    assert claim["spec"]["dataSource"]["name"] == "data-db-west-0"
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert claim["metadata"]["ownerReferences"][0]["uid"] == OWNER.uid


T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_progress_moves_the_stall_clock_and_a_resumed_transfer_shows_it() -> None:
    base = VolumeStatus(name="data-db-west-0", source="data-db-0", snapshot="data-db-west-0")
    first = transfer.volume_status(base, None, None, 1, False, stamp(T0))
    assert (first.progress_at, first.transferred, first.transfer_attempts) == (stamp(T0), False, 1)
    seen = transfer.Progress(bytes_done=10 * 2**20, total=60 * 2**20, percent=16, rate=2**20)
    later = transfer.volume_status(base, first, seen, 1, False, stamp(T0 + timedelta(seconds=30)))
    assert later.bytes_done == 10 * 2**20
    assert later.progress_at == stamp(T0 + timedelta(seconds=30))
    same = transfer.volume_status(base, later, seen, 1, False, stamp(T0 + timedelta(seconds=90)))
    assert same.progress_at == later.progress_at  # nothing new: the clock stands
    assert not transfer.stalled(same, T0 + timedelta(seconds=299), 300)
    assert transfer.stalled(same, T0 + timedelta(seconds=330), 300)
    # A restarted mover is an attempt more, and moves the clock even before new bytes.
    again = transfer.volume_status(base, same, None, 2, False, stamp(T0 + timedelta(seconds=100)))
    assert again.transfer_attempts == 2
    assert again.progress_at == stamp(T0 + timedelta(seconds=100))
    end = transfer.Progress(
        bytes_done=60 * 2**20, total=60 * 2**20, percent=100, rate=0,
        literal_bytes=40 * 2**20, matched_bytes=20 * 2**20, finished=True,
    )  # fmt: skip
    done = transfer.volume_status(base, again, end, 2, True, stamp(T0 + timedelta(seconds=120)))
    assert (done.transferred, done.matched_bytes, done.bytes_done) == (True, 20 * 2**20, 60 * 2**20)
    assert not transfer.stalled(done, T0 + timedelta(days=1), 300)


def test_the_summary_column_and_progress_survive_a_look_at_the_snapshots_alone() -> None:
    moving = VolumeStatus(
        name="a", source="s", bytes_done=3 * 2**20, bytes_total=12 * 2**20,
        bytes_per_second=2**20, transferred=False, progress_at=stamp(T0),
    )  # fmt: skip
    finished = VolumeStatus(
        name="b", source="t", bytes_done=12 * 2**20, bytes_total=12 * 2**20, transferred=True
    )
    assert transfer.summary([moving, finished]) == "15.0/24.0 MiB (62%), 1.0 MiB/s"
    assert transfer.summary([finished]) == "12.0 MiB, done"
    assert transfer.summary([VolumeStatus(name="c", source="u")]) is None
    status = CloningOperationStatus(volumes=[moving])
    cut_only = [VolumeStatus(name="a", source="s", snapshot="a", snapshot_ready=True)]
    updated = volume_rules.copy_progress(status, cut_only, None, None, stamp(T0), 1)
    assert updated is not None
    assert updated.volumes[0].bytes_done == 3 * 2**20
    assert updated.volumes[0].snapshot == "a"
    assert updated.transfer == "3.0/12.0 MiB (25%), 1.0 MiB/s"


def test_a_stalled_movers_state_says_what_holds_it() -> None:
    pod = {
        "status": {
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "False", "message": "0/3 nodes match"}
            ],
            "containerStatuses": [
                {"restartCount": 2, "state": {"waiting": {"reason": "ImagePullBackOff"}}}
            ],
        }
    }
    state = transfer.pod_state(pod)
    assert state == "Pending, unschedulable: 0/3 nodes match, ImagePullBackOff, 2 restarts"
    assert transfer.pod_state(None) == "missing"
    assert transfer.restarts(pod) == 2


def test_movers_run_where_the_sources_pods_may_in_their_own_region() -> None:
    from clone_operator.engine.transfers import placement

    real = {"key": "cloning.dev/real-node", "operator": "Exists"}
    template = {
        "nodeSelector": {"topology.kubernetes.io/region": "us-east-1", "disk": "ssd"},
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [real]}]
                }
            }
        },
        "tolerations": [{"key": "cloning.dev/real-node", "operator": "Exists"}],
    }
    source = {"spec": {"template": {"spec": template}}}
    west = placement("us-west-2", source)
    assert west.node_selector == {"disk": "ssd"}
    assert west.tolerations == ({"key": "cloning.dev/real-node", "operator": "Exists"},)
    assert west.required_node_affinity == {
        "nodeSelectorTerms": [
            {
                "matchExpressions": [
                    real,
                    {
                        "key": "topology.kubernetes.io/region",
                        "operator": "In",
                        "values": ["us-west-2"],
                    },
                ]
            }
        ]
    }
    pod = mover.target_pod(
        mover.TransferPlan(
            owner=OWNER, name="db-west-mv0", namespace="shop", image="mover:1",
            source_claim="db-west-mv0-cut", target_claim="data-db-west-0", target_place=west,
        )
    )  # fmt: skip
    assert pod["spec"]["affinity"]["nodeAffinity"] == {
        "requiredDuringSchedulingIgnoredDuringExecution": west.required_node_affinity
    }
    assert template["nodeSelector"]["topology.kubernetes.io/region"] == "us-east-1"  # untouched


def test_the_sending_side_waits_for_the_receiving_side_to_listen() -> None:
    listening = {
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    }
    starting = {
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}
    }
    assert transfer.ready(listening)
    assert not transfer.ready(starting)
    assert not transfer.ready(None)
