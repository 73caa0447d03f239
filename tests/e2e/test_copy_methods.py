"""Copy methods end to end: what the storage can do, decided before anything is made.

The local cluster's default storage (tests/cluster/provisioner.py) is not CSI, and
the snapshot APIs are not installed unless the storage of issue 23 is: `Auto`
falls back to `VolumeClone`, an explicit `Snapshot` is refused at pickup saying
what is missing. Zonal storage is made here as real clusters show it: the source's
PersistentVolumes carry node affinity on topology.kubernetes.io/region and zone
(static PVs bound to the source's claims), and a clone into another region is
refused at pickup, naming the StorageClass and both regions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster import localcluster
from tests.e2e import snapshot_storage
from tests.e2e.clones import SNAPSHOT_ONLY_CLASS, TERMINAL, snapshot_only_source, wait_state
from tests.e2e.harness import (
    DEFAULT_OPERATOR_ENV,
    WEBHOOK_CLIENT_CA,
    WEBHOOK_ENV,
    OperatorProcess,
)
from tests.e2e.kube import Kubectl, ready_replicas, wait_for
from tests.e2e.manifests import claim, clone_object, operation, statefulset
from tests.e2e.requesters import Requester
from tests.e2e.snapshot_storage import SnapshotOnlyStorage

pytestmark = pytest.mark.e2e

STORAGE_CLASS = "clone-test"  # the local cluster's default class
REAL_SNAPSHOT_ONLY = SNAPSHOT_ONLY_CLASS  # tests/cluster/storage.py (issue 23)


def finished(kubectl: Kubectl, name: str, timeout: float = 120) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        st = ((kubectl.get("cloningoperation", name) or {}).get("status")) or {}
        return st if st.get("phase") in TERMINAL and st.get("finalized") else None

    return wait_for(f"{name} to finish", done, timeout=timeout)


def made_by(kubectl: Kubectl, name: str) -> list[str]:
    uid = kubectl.get("cloningoperation", name)["metadata"]["uid"]
    selector = f"cloning.dev/operation-uid={uid}"
    return [
        f"{kind}/{o['metadata']['name']}"
        for kind in ("statefulsets", "persistentvolumeclaims", "services", "configmaps")
        for o in kubectl.items(kind, "-l", selector)
    ]


def snapshot_api_served(admin: Kubectl) -> bool:
    return (
        admin("get", "crd", "volumesnapshotclasses.snapshot.storage.k8s.io", check=False).returncode
        == 0
    )


def source(kubectl: Kubectl, name: str, replicas: int = 2, region: str | None = None) -> None:
    kubectl.apply(statefulset(name, replicas=replicas, region=region))
    wait_for(f"source {name} ready", lambda: ready_replicas(kubectl, name) == replicas, timeout=90)


def test_auto_falls_back_to_volume_clone_where_snapshots_are_not_possible(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    source(kubectl, "auto")
    kubectl.apply(operation("auto-op", "auto"))
    st = finished(kubectl, "auto-op")
    assert st["phase"] == "Succeeded", st
    assert st["copyMethod"] == "VolumeClone", st
    started = [e["message"] for e in kubectl.items("events") if e["reason"] == "Started"]
    assert any("copy method VolumeClone" in m for m in started), started
    target = st["targetCluster"]
    for i in range(2):
        data_source = kubectl.get("pvc", f"data-{target}-{i}")["spec"]["dataSource"]
        assert (data_source["kind"], data_source["name"]) == (
            "PersistentVolumeClaim",
            f"data-auto-{i}",
        )


def test_explicit_snapshot_is_refused_at_pickup_saying_what_is_missing(
    admin: Kubectl, kubectl: Kubectl, operator: OperatorProcess
) -> None:
    if admin("get", "storageclass", REAL_SNAPSHOT_ONLY, check=False).returncode == 0:
        pytest.skip("the local storage takes snapshots: see the *_on_the_local_storage tests")
    source(kubectl, "snap")
    started = time.monotonic()
    kubectl.apply(operation("snap-op", "snap", copyMethod="Snapshot"))
    st = finished(kubectl, "snap-op", timeout=60)
    assert time.monotonic() - started < 30
    assert (st["phase"], st["reason"]) == ("Failed", "CopyMethodUnsuitable"), st
    assert st["message"].startswith("copyMethod Snapshot cannot copy the source's volumes: ")
    if snapshot_api_served(admin):  # the storage of issue 23: this source's volumes are not CSI
        assert "is not a CSI volume" in st["message"], st
    else:
        assert "snapshot.storage.k8s.io/v1" in st["message"], st
        assert "install the external-snapshotter's CRDs" in st["message"], st
    assert "copyMethod VolumeClone" in st["message"]
    assert made_by(kubectl, "snap-op") == []


@pytest.fixture
def zonal_volumes(admin: Kubectl, kubectl: Kubectl) -> Iterator[list[str]]:
    """Static PVs in us-east-1a (node affinity on region and zone, as a zonal cloud disk's
    PV carries it), bound to the claims of a 2-replica source named `zonal`."""
    namespace = kubectl.namespace
    names = [f"zonal-{namespace}-{i}" for i in range(2)]
    for i, pv in enumerate(names):
        admin.apply(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": pv},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": STORAGE_CLASS,
                    "persistentVolumeReclaimPolicy": "Retain",
                    "hostPath": {"path": f"/tmp/{pv}", "type": "DirectoryOrCreate"},
                    "claimRef": {"namespace": namespace, "name": f"data-zonal-{i}"},
                    "nodeAffinity": {
                        "required": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {
                                            "key": "topology.kubernetes.io/region",
                                            "operator": "In",
                                            "values": ["us-east-1"],
                                        },
                                        {
                                            "key": "topology.kubernetes.io/zone",
                                            "operator": "In",
                                            "values": ["us-east-1a"],
                                        },
                                    ]
                                }
                            ]
                        }
                    },
                },
            }
        )
        kubectl.apply(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": f"data-zonal-{i}", "labels": {"app": "zonal"}},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": STORAGE_CLASS,
                    "volumeName": pv,
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }
        )
    wait_for(
        "the zonal claims bound",
        lambda: all(
            (kubectl.get("pvc", f"data-zonal-{i}") or {}).get("status", {}).get("phase") == "Bound"
            for i in range(2)
        ),
        timeout=60,
    )
    yield names
    for pv in names:
        admin("delete", "pv", pv, "--wait=false", check=False)


def test_a_cross_region_clone_of_zonal_volumes_is_refused_before_anything_is_made(
    kubectl: Kubectl, operator: OperatorProcess, zonal_volumes: list[str]
) -> None:
    source(kubectl, "zonal", region="us-east-1")
    for method in ("VolumeClone", "Auto"):
        name = f"west-{method.lower()}"
        started = time.monotonic()
        kubectl.apply(operation(name, "zonal", copyMethod=method, targetRegion="us-west-2"))
        st = finished(kubectl, name, timeout=60)
        assert time.monotonic() - started < 30, "refused at pickup, not after a wait"
        assert (st["phase"], st["reason"]) == ("Failed", "CopyMethodUnsuitable"), st
        message = st["message"]
        assert (
            f"StorageClass {STORAGE_CLASS} keeps its volumes in zone us-east-1a of region us-east-1"
            in message
        )
        assert "the target must run in region us-west-2" in message
        assert "What would work: a target in region us-east-1" in message
        assert made_by(kubectl, name) == []


def test_a_same_region_clone_of_zonal_volumes_goes_ahead(
    admin: Kubectl, kubectl: Kubectl, operator: OperatorProcess, zonal_volumes: list[str]
) -> None:
    """The clone stays in the source's zone, where the region has nodes: allowed."""
    if admin("get", "storageclass", REAL_SNAPSHOT_ONLY, check=False).returncode == 0:
        pytest.skip("the local storage's CSI driver cannot clone these hostPath volumes: "
                    "see test_zonal_clones_on_the_local_storage")  # fmt: skip
    source(kubectl, "zonal", region="us-east-1")
    kubectl.apply(operation("east", "zonal", copyMethod="VolumeClone"))
    st = finished(kubectl, "east")
    assert (st["phase"], st["copyMethod"]) == ("Succeeded", "VolumeClone"), st


# ---- a snapshot-only class (the stand-in storage of tests/e2e/snapshot_storage.py) ----


@pytest.fixture
def snapshot_only(
    cluster: localcluster.Paths, admin: Kubectl, kubectl: Kubectl
) -> Iterator[SnapshotOnlyStorage]:
    """The snapshot CRDs, a snapshot-only StorageClass of a CSI driver with its default
    VolumeSnapshotClass, and a 2-replica source `snapsrc` whose claims are bound to CSI
    volumes of that class."""
    if admin("get", "storageclass", REAL_SNAPSHOT_ONLY, check=False).returncode == 0:
        pytest.skip(
            "the local cluster's own storage serves snapshots: see the *_on_the_local_storage tests"
        )
    files = snapshot_storage.crd_files(cluster.cache)
    if not files:
        pytest.skip(
            "the snapshot CRDs are not in the cluster cache (tests/cluster/build.sh snapshotter)"
        )
    for crd in files:
        admin("apply", "--server-side", "--force-conflicts", "-f", str(crd))
    admin("wait", "--for=condition=Established", "--timeout=30s",
          "crd/volumesnapshots.snapshot.storage.k8s.io",
          "crd/volumesnapshotclasses.snapshot.storage.k8s.io",
          "crd/volumegroupsnapshots.groupsnapshot.storage.k8s.io",
          "crd/volumegroupsnapshotclasses.groupsnapshot.storage.k8s.io")  # fmt: skip
    namespace = str(kubectl.namespace)
    name, driver = f"snap-only-{namespace}", f"snap-only-{namespace}.csi.test.cloning.dev"
    admin.apply(
        [
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {"name": name},
                "provisioner": driver,
                "reclaimPolicy": "Delete",
                "volumeBindingMode": "Immediate",
            },
            {
                "apiVersion": "snapshot.storage.k8s.io/v1",
                "kind": "VolumeSnapshotClass",
                "metadata": {
                    "name": name,
                    "annotations": {"snapshot.storage.kubernetes.io/is-default-class": "true"},
                },
                "driver": driver,
                "deletionPolicy": "Delete",
            },
            {
                "apiVersion": "groupsnapshot.storage.k8s.io/v1",
                "kind": "VolumeGroupSnapshotClass",
                "metadata": {
                    "name": name,
                    "annotations": {"groupsnapshot.storage.kubernetes.io/is-default-class": "true"},
                },
                "driver": driver,
                "deletionPolicy": "Delete",
            },
        ]
    )
    with snapshot_storage.snapshot_only_storage(
        cluster.kubeconfig, namespace, name, driver
    ) as storage:
        for i in range(2):
            admin.apply(storage.pv(f"{name}-src-{i}", f"data-snapsrc-{i}", None, "1Gi"))
            kubectl.apply(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {"name": f"data-snapsrc-{i}", "labels": {"app": "snapsrc"}},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": name,
                        "volumeName": f"{name}-src-{i}",
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            )
        manifests = statefulset("snapsrc", replicas=2)
        manifests[1]["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] = name
        kubectl.apply(manifests)
        wait_for(
            "source snapsrc ready", lambda: ready_replicas(kubectl, "snapsrc") == 2, timeout=90
        )
        yield storage
    admin("delete", "storageclass", name, "--wait=false", check=False)
    admin("delete", "volumesnapshotclass", name, "--wait=false", check=False)
    admin("delete", "volumegroupsnapshotclass", name, "--wait=false", check=False)
    admin("delete", "pv", f"{name}-src-0", f"{name}-src-1", "--wait=false", check=False)


def snapshots_left(kubectl: Kubectl) -> list[str]:
    return [s["metadata"]["name"] for s in kubectl.items("volumesnapshots")]


def test_snapshot_copies_a_snapshot_only_class_and_removes_its_snapshots(
    kubectl: Kubectl, operator: OperatorProcess, snapshot_only: SnapshotOnlyStorage
) -> None:
    kubectl.apply(operation("by-snapshot", "snapsrc", copyMethod="Snapshot"))
    st = finished(kubectl, "by-snapshot")
    assert (st["phase"], st["copyMethod"]) == ("Succeeded", "Snapshot"), st
    assert st["volumeSnapshotClass"] == snapshot_only.storage_class
    target = st["targetCluster"]
    assert st["pointInTime"].endswith("Z")
    assert [(v["name"], v["source"], v["snapshot"], v["snapshotReady"]) for v in st["volumes"]] == [
        (f"data-{target}-{i}", f"data-snapsrc-{i}", f"data-{target}-{i}", True) for i in range(2)
    ]
    assert {c["type"]: c["status"] for c in st["conditions"]}["SnapshotsTaken"] == "True"
    for i in range(2):
        pvc = kubectl.get("pvc", f"data-{target}-{i}")
        assert pvc["spec"]["dataSource"]["kind"] == "VolumeSnapshot", pvc["spec"]
        assert pvc["status"]["phase"] == "Bound"
    assert snapshots_left(kubectl) == []


def test_group_snapshot_takes_one_group_over_the_sources_volumes(
    kubectl: Kubectl, operator: OperatorProcess, snapshot_only: SnapshotOnlyStorage
) -> None:
    kubectl.apply(operation("by-group", "snapsrc", copyMethod="GroupSnapshot"))
    groups: set[str] = set()

    def done() -> dict[str, Any] | None:
        groups.update(g["metadata"]["uid"] for g in kubectl.items("volumegroupsnapshots"))
        st = ((kubectl.get("cloningoperation", "by-group") or {}).get("status")) or {}
        return st if st.get("finalized") else None

    st = wait_for("by-group to finish", done, timeout=120)
    assert (st["phase"], st["copyMethod"]) == ("Succeeded", "GroupSnapshot"), st
    assert len(groups) == 1, "exactly one VolumeGroupSnapshot"
    assert len({v["cutAt"] for v in st["volumes"]}) == 1, "one point in time for every volume"
    for i in range(2):
        data_source = kubectl.get("pvc", f"data-{st['targetCluster']}-{i}")["spec"]["dataSource"]
        assert data_source["kind"] == "VolumeSnapshot"
        assert data_source["name"].endswith(f"-data-snapsrc-{i}")  # the group's member
    wait_for("the group and its members removed",
             lambda: not kubectl.items("volumegroupsnapshots") and not snapshots_left(kubectl))  # fmt: skip


def test_keep_snapshots_leaves_them_to_outlive_the_operation(
    kubectl: Kubectl, operator: OperatorProcess, snapshot_only: SnapshotOnlyStorage
) -> None:
    kubectl.apply(operation("kept", "snapsrc", copyMethod="Snapshot", keepSnapshots=True))
    st = finished(kubectl, "kept")
    assert st["phase"] == "Succeeded", st
    kept = kubectl.items("volumesnapshots")
    assert sorted(s["metadata"]["name"] for s in kept) == [
        f"data-{st['targetCluster']}-{i}" for i in range(2)
    ]
    assert all(not s["metadata"].get("ownerReferences") for s in kept)


def test_volume_clone_on_a_snapshot_only_class_fails_fast_in_the_storages_words(
    kubectl: Kubectl, operator: OperatorProcess, snapshot_only: SnapshotOnlyStorage
) -> None:
    started = time.monotonic()
    kubectl.apply(operation("by-clone", "snapsrc", copyMethod="VolumeClone", timeoutSeconds=1800))
    st = finished(kubectl, "by-clone", timeout=90)
    assert time.monotonic() - started < 60, "within a minute, never the Timeout"
    assert (st["phase"], st["reason"]) == ("Failed", "StorageRefused"), st
    assert f"(StorageClass {snapshot_only.storage_class})" in st["message"]
    assert "CSI driver does not support clone operations" in st["message"]
    assert made_by(kubectl, "by-clone") == []


def test_a_snapshot_the_storage_fails_ends_the_clone_and_leaves_nothing(
    kubectl: Kubectl, operator: OperatorProcess, snapshot_only: SnapshotOnlyStorage
) -> None:
    kubectl(
        "annotate", "pvc", "data-snapsrc-1", f"{snapshot_storage.FAIL}=quota exceeded for snapshots"
    )
    started = time.monotonic()
    kubectl.apply(operation("snap-fails", "snapsrc", copyMethod="Snapshot"))
    st = finished(kubectl, "snap-fails", timeout=90)
    assert time.monotonic() - started < 60
    assert (st["phase"], st["reason"]) == ("Failed", "StorageRefused"), st
    assert "quota exceeded for snapshots" in st["message"]
    assert snapshots_left(kubectl) == []
    assert made_by(kubectl, "snap-fails") == []


def test_snapshot_methods_need_the_right_to_create_snapshots_at_apply(
    requester: Requester, crds: None
) -> None:
    """The requester-rights policy, with a token-only kubeconfig: Snapshot and
    GroupSnapshot are refused at apply without the snapshot rights; VolumeClone and
    Auto are not (Auto uses snapshots only for a requester who holds them)."""
    requester.may_clone_a_cluster(snapshots=False)
    as_requester = requester.kubectl
    by_clone = operation("by-clone", "any", copyMethod="VolumeClone")
    assert as_requester.apply(by_clone, check=False).returncode == 0
    assert as_requester.apply(operation("by-auto", "any"), check=False).returncode == 0
    for method, resource in (("Snapshot", "volumesnapshots"),
                             ("GroupSnapshot", "volumegroupsnapshots")):  # fmt: skip
        refused = as_requester.apply(operation(f"by-{method.lower()}", "any", copyMethod=method),
                                     check=False)  # fmt: skip
        assert refused.returncode != 0
        assert f"cannot create {resource}.groupsnapshot.storage.k8s.io" in refused.stderr or (
            f"cannot create {resource}.snapshot.storage.k8s.io" in refused.stderr
        ), refused.stderr


def test_auto_takes_snapshots_for_a_requester_who_may(
    kubectl: Kubectl,
    operator: OperatorProcess,
    snapshot_only: SnapshotOnlyStorage,
    requester: Requester,
) -> None:
    """A token-only requester with the rights of a cluster clone and `create
    volumesnapshots`: Auto picks Snapshot on the snapshot-only class."""
    requester.may_clone_a_cluster(snapshots=True)
    op = operation("auto-snap", "snapsrc")
    op["metadata"]["annotations"] = {"cloning.dev/requested-by": requester.username}
    requester.kubectl.apply(op)
    st = finished(kubectl, "auto-snap")
    assert (st["phase"], st["copyMethod"]) == ("Succeeded", "Snapshot"), st
    assert snapshots_left(kubectl) == []


def retain_class(admin: Kubectl, storage: SnapshotOnlyStorage) -> str:
    name = f"{storage.storage_class}-retain"
    admin.apply(
        {
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshotClass",
            "metadata": {"name": name},
            "driver": storage.driver,
            "deletionPolicy": "Retain",
        }
    )
    return name


def contents_of(admin: Kubectl, namespace: str) -> dict[str, str]:
    """This namespace's VolumeSnapshotContents: name → deletionPolicy."""
    return {
        c["metadata"]["name"]: c["spec"]["deletionPolicy"]
        for c in admin.items("volumesnapshotcontents")
        if c["spec"]["volumeSnapshotRef"].get("namespace") == namespace
    }


def test_a_retain_class_leaves_no_storage_snapshot_behind_unless_kept(
    admin: Kubectl,
    kubectl: Kubectl,
    operator: OperatorProcess,
    snapshot_only: SnapshotOnlyStorage,
) -> None:
    namespace, cls = str(kubectl.namespace), retain_class(admin, snapshot_only)
    try:
        kubectl.apply(operation("retained", "snapsrc", copyMethod="Snapshot",
                                volumeSnapshotClassName=cls))  # fmt: skip
        st = finished(kubectl, "retained")
        assert (st["phase"], st["volumeSnapshotClass"]) == ("Succeeded", cls), st
        assert snapshots_left(kubectl) == []
        wait_for("no content left", lambda: contents_of(admin, namespace) == {} or None)
        kubectl.apply(operation("retained-kept", "snapsrc", copyMethod="Snapshot",
                                volumeSnapshotClassName=cls, keepSnapshots=True))  # fmt: skip
        assert finished(kubectl, "retained-kept")["phase"] == "Succeeded"
        assert len(snapshots_left(kubectl)) == 2
        assert sorted(contents_of(admin, namespace).values()) == ["Retain", "Retain"]
    finally:
        admin("delete", "volumesnapshotclass", cls, "--wait=false", check=False)
        for content in contents_of(admin, namespace):
            admin("delete", "volumesnapshotcontent", content, "--wait=false", check=False)


def test_an_operator_killed_mid_cut_leaves_nothing_behind(
    kubectl: Kubectl, operator: OperatorProcess, snapshot_only: SnapshotOnlyStorage
) -> None:
    """SIGKILL while the snapshots are being cut: the next operator finds them by their
    provenance, finishes the clone and removes them."""
    for i in range(2):
        kubectl("annotate", "pvc", f"data-snapsrc-{i}", f"{snapshot_storage.DELAY}=8")
    kubectl.apply(operation("killed", "snapsrc", copyMethod="Snapshot"))
    wait_for("the snapshots taken", lambda: len(snapshots_left(kubectl)) == 2)
    operator.kill()
    operator.start()
    st = finished(kubectl, "killed")
    assert (st["phase"], st["copyMethod"]) == ("Succeeded", "Snapshot"), st
    assert snapshots_left(kubectl) == []


def test_a_snapshot_that_never_becomes_ready_fails_at_the_deadline_not_the_timeout(
    kubectl: Kubectl, operator: OperatorProcess, snapshot_only: SnapshotOnlyStorage
) -> None:
    operator.ensure({**DEFAULT_OPERATOR_ENV, "CLONE_OPERATOR_SNAPSHOT_DEADLINE_SECONDS": "10"})
    kubectl("annotate", "pvc", "data-snapsrc-0", f"{snapshot_storage.NEVER}=true")
    started = time.monotonic()
    kubectl.apply(operation("never", "snapsrc", copyMethod="Snapshot", timeoutSeconds=1800))
    st = finished(kubectl, "never", timeout=90)
    assert time.monotonic() - started < 60
    assert (st["phase"], st["reason"]) == ("Failed", "StorageRefused"), st
    assert "is not ready within 10 s of being taken (cut at " in st["message"], st
    assert snapshots_left(kubectl) == []
    assert made_by(kubectl, "never") == []


def test_a_pvc_clone_object_by_snapshot_and_by_clone_on_a_snapshot_only_class(
    kubectl: Kubectl, operator: OperatorProcess, snapshot_only: SnapshotOnlyStorage
) -> None:
    kubectl.apply(
        clone_object(
            "pvc-snap",
            "PersistentVolumeClaim",
            "data-snapsrc-0",
            name="copy-snap",
            copyMethod="Snapshot",
        )
    )
    st = wait_state(kubectl, "pvc-snap")
    assert (st["state"], st["copyMethod"]) == ("Created", "Snapshot"), st
    copy = kubectl.get("pvc", "copy-snap")
    assert copy["spec"]["dataSource"]["kind"] == "VolumeSnapshot"
    assert copy["status"]["phase"] == "Bound"
    assert not copy["metadata"].get("ownerReferences")
    assert snapshots_left(kubectl) == []
    started = time.monotonic()
    kubectl.apply(
        clone_object(
            "pvc-clone",
            "PersistentVolumeClaim",
            "data-snapsrc-0",
            name="copy-clone",
            copyMethod="VolumeClone",
        )
    )
    st = wait_state(kubectl, "pvc-clone")
    assert time.monotonic() - started < 60
    assert st["state"] == "Failed", st
    assert "CSI driver does not support clone operations" in st["errorMessages"][-1]
    assert kubectl.get("pvc", "copy-clone") is None


# ---- the local cluster's own storage (tests/cluster/storage.py): a real CSI driver behind
# the real snapshot-controller and csi-snapshotter ----


@pytest.fixture
def local_storage(admin: Kubectl, kubectl: Kubectl) -> str:
    """A 2-replica source `snapsrc` on the snapshot-only class (a driver that cannot clone)."""
    snapshot_only_source(admin, kubectl, "snapsrc")
    return REAL_SNAPSHOT_ONLY


def left_over(admin: Kubectl, kubectl: Kubectl) -> list[str]:
    """Snapshots, group snapshots and their contents of this namespace still there."""
    namespace = kubectl.namespace
    found = [f"volumesnapshots/{n}" for n in snapshots_left(kubectl)]
    found += [
        f"volumegroupsnapshots/{g['metadata']['name']}"
        for g in kubectl.items("volumegroupsnapshots")
    ]
    for kind, ref in (("volumesnapshotcontents", "volumeSnapshotRef"),
                      ("volumegroupsnapshotcontents", "volumeGroupSnapshotRef")):  # fmt: skip
        found += [
            f"{kind}/{c['metadata']['name']}"
            for c in admin.items(kind)
            if (c["spec"].get(ref) or {}).get("namespace") == namespace
        ]
    return found


def test_snapshot_and_clone_on_the_local_storage_snapshot_only_class(
    admin: Kubectl, kubectl: Kubectl, operator: OperatorProcess, local_storage: str
) -> None:
    kubectl.apply(operation("by-snapshot", "snapsrc", copyMethod="Snapshot"))
    st = finished(kubectl, "by-snapshot", timeout=180)
    assert (st["phase"], st["copyMethod"]) == ("Succeeded", "Snapshot"), st
    assert st["volumeSnapshotClass"] == "clone-test-snapshot-only-snapshots"
    assert st["pointInTime"].endswith("Z")
    assert all(v["snapshotReady"] and v["restoreSize"] for v in st["volumes"]), st["volumes"]
    wait_for(
        "no snapshot nor content left", lambda: left_over(admin, kubectl) == [] or None, timeout=60
    )
    started = time.monotonic()
    kubectl.apply(operation("by-clone", "snapsrc", copyMethod="VolumeClone"))
    st = finished(kubectl, "by-clone", timeout=90)
    assert time.monotonic() - started < 60, "within a minute, never the Timeout"
    assert (st["phase"], st["reason"]) == ("Failed", "StorageRefused"), st
    assert f"(StorageClass {local_storage})" in st["message"]
    assert "CSI driver does not support clone operations" in st["message"]
    assert made_by(kubectl, "by-clone") == []


def test_group_snapshot_on_the_local_storage(
    admin: Kubectl, kubectl: Kubectl, operator: OperatorProcess
) -> None:
    """One VolumeGroupSnapshot of the disk driver over the source's volumes; nothing left."""
    source(kubectl, "grpsrc", region="us-east-1")
    if admin(
        "get", "volumegroupsnapshotclass", "clone-test-group-snapshots", check=False
    ).returncode:
        pytest.skip("the local cluster has no group snapshot class")
    kubectl.apply(operation("by-group", "grpsrc", copyMethod="GroupSnapshot"))
    groups: set[str] = set()

    def done() -> dict[str, Any] | None:
        groups.update(g["metadata"]["uid"] for g in kubectl.items("volumegroupsnapshots"))
        st = ((kubectl.get("cloningoperation", "by-group") or {}).get("status")) or {}
        return st if st.get("finalized") else None

    st = wait_for("by-group to finish", done, timeout=180)
    assert (st["phase"], st["copyMethod"]) == ("Succeeded", "GroupSnapshot"), st
    assert len(groups) == 1, "exactly one VolumeGroupSnapshot"
    assert len({v["cutAt"] for v in st["volumes"]}) == 1
    wait_for(
        "no snapshot nor content left", lambda: left_over(admin, kubectl) == [] or None, timeout=60
    )


@pytest.mark.parametrize("fault", ["fail", "never-ready"])
def test_the_local_storages_snapshot_faults_end_in_clear_failures(
    admin: Kubectl, kubectl: Kubectl, operator: OperatorProcess, local_storage: str, fault: str
) -> None:
    operator.ensure({**DEFAULT_OPERATOR_ENV, "CLONE_OPERATOR_SNAPSHOT_DEADLINE_SECONDS": "15"})
    cls = f"faulty-{kubectl.namespace}"
    admin.apply({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
                 "metadata": {"name": cls}, "driver": "basic-disk.csi.cloning.dev",
                 "deletionPolicy": "Delete", "parameters": {"snapshotFault": fault}})  # fmt: skip
    try:
        started = time.monotonic()
        kubectl.apply(operation("faulty", "snapsrc", copyMethod="Snapshot",
                                volumeSnapshotClassName=cls))  # fmt: skip
        st = finished(kubectl, "faulty", timeout=120)
        assert time.monotonic() - started < 90, "a clear failure, never the Timeout"
        assert (st["phase"], st["reason"]) == ("Failed", "StorageRefused"), st
        if fault == "never-ready":
            assert "is not ready within 15 s of being taken" in st["message"], st
        assert made_by(kubectl, "faulty") == []
        wait_for("no snapshot left", lambda: snapshots_left(kubectl) == [] or None, timeout=60)
    finally:
        admin("delete", "volumesnapshotclass", cls, "--wait=false", check=False)


def test_a_retain_class_of_the_local_storage_leaves_nothing_behind(
    admin: Kubectl, kubectl: Kubectl, operator: OperatorProcess, local_storage: str
) -> None:
    cls = f"retain-{kubectl.namespace}"
    admin.apply({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
                 "metadata": {"name": cls}, "driver": "basic-disk.csi.cloning.dev",
                 "deletionPolicy": "Retain"})  # fmt: skip
    try:
        kubectl.apply(operation("retained", "snapsrc", copyMethod="Snapshot",
                                volumeSnapshotClassName=cls))  # fmt: skip
        st = finished(kubectl, "retained", timeout=180)
        assert st["phase"] == "Succeeded", st
        wait_for(
            "no snapshot nor content left",
            lambda: left_over(admin, kubectl) == [] or None,
            timeout=60,
        )
    finally:
        admin("delete", "volumesnapshotclass", cls, "--wait=false", check=False)


def zonal_source(admin: Kubectl, kubectl: Kubectl) -> None:
    """A 1-replica source `zsrc` in us-east-1 on the local storage's zonal class."""
    if admin("get", "storageclass", "clone-test-zonal", check=False).returncode != 0:
        pytest.skip("the local cluster has no zonal class (tests/cluster/storage.py)")
    manifests = statefulset("zsrc", replicas=1, region="us-east-1")
    manifests[1]["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] = "clone-test-zonal"
    kubectl.apply(manifests)
    wait_for("source zsrc ready", lambda: ready_replicas(kubectl, "zsrc") == 1, timeout=120)


def test_zonal_clones_on_the_local_storage(
    admin: Kubectl, kubectl: Kubectl, operator: OperatorProcess
) -> None:
    """On the zonal class: a clone in the source's region goes ahead (it stays in its
    source's zone); one into another region is refused at pickup, naming the class, the
    zone and region its volumes live in, and the target's region."""
    zonal_source(admin, kubectl)
    kubectl.apply(operation("z-east", "zsrc", copyMethod="VolumeClone"))
    st = finished(kubectl, "z-east", timeout=180)
    assert (st["phase"], st["copyMethod"]) == ("Succeeded", "VolumeClone"), st
    started = time.monotonic()
    kubectl.apply(operation("z-west", "zsrc", copyMethod="VolumeClone", targetRegion="us-west-2"))
    st = finished(kubectl, "z-west", timeout=60)
    assert time.monotonic() - started < 30
    assert (st["phase"], st["reason"]) == ("Failed", "CopyMethodUnsuitable"), st
    assert "StorageClass clone-test-zonal keeps its volumes in zone us-east-1" in st["message"]
    assert "of region us-east-1" in st["message"]
    assert "the target must run in region us-west-2" in st["message"]
    assert made_by(kubectl, "z-west") == []


def stages(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status.get("conditions") or []}


def test_a_clone_objects_volume_progress_on_the_local_storage(
    admin: Kubectl, kubectl: Kubectl, operator: OperatorProcess
) -> None:
    """A CloneObject of a PVC records what a CloningOperation records of each volume: by
    Snapshot its snapshot (cut, ready, restore size), the point in time, Bound, and the
    stage conditions; by VolumeClone, Bound. A StatefulSet's, each replica's volume."""
    if admin("get", "storageclass", REAL_SNAPSHOT_ONLY, check=False).returncode != 0:
        pytest.skip("the local cluster has no CSI storage (tests/cluster/storage.py)")
    kubectl.apply(claim("data-one", storage_class=STORAGE_CLASS))
    kubectl.apply(clone_object("by-snap", "PersistentVolumeClaim", "data-one", name="copy-snap",
                               copyMethod="Snapshot"))  # fmt: skip
    kubectl.apply(clone_object("by-clone", "PersistentVolumeClaim", "data-one", name="copy-clone",
                               copyMethod="VolumeClone"))  # fmt: skip
    st = wait_state(kubectl, "by-snap", timeout=120)
    assert (st["state"], st["copyMethod"]) == ("Created", "Snapshot"), st
    [volume] = st["volumes"]
    assert (volume["name"], volume["source"], volume["snapshot"]) == ("copy-snap", "data-one",
                                                                      "copy-snap")  # fmt: skip
    assert (volume["snapshotReady"], volume["bound"]) == (True, True), volume
    assert volume["restoreSize"], volume
    assert volume["cutAt"] == st["pointInTime"], st
    assert stages(st) == {"Ready": "True", "SnapshotsTaken": "True", "VolumesReady": "True"}, st
    wait_for("its snapshot removed", lambda: snapshots_left(kubectl) == [] or None, timeout=60)
    told = [e["message"] for e in kubectl.items("events")
            if (e["reason"], e["involvedObject"]["name"]) == ("SnapshotsTaken", "by-snap")]  # fmt: skip
    assert told == [f"snapshot copy-snap cut at {st['pointInTime']} and ready"], told
    st = wait_state(kubectl, "by-clone", timeout=120)
    assert (st["state"], st["copyMethod"]) == ("Created", "VolumeClone"), st
    assert st["volumes"] == [{"name": "copy-clone", "source": "data-one", "bound": True}], st
    assert "pointInTime" not in st
    assert stages(st)["VolumesReady"] == "True", st
    source(kubectl, "db", replicas=2, region="us-east-1")
    kubectl.apply(clone_object("whole", "StatefulSet", "db", name="db-copy", copyMethod="Snapshot"))
    st = wait_state(kubectl, "whole", timeout=180)
    assert (st["state"], st["copyMethod"]) == ("Created", "Snapshot"), st
    assert [(v["name"], v["source"], v["snapshotReady"], v["bound"]) for v in st["volumes"]] == [
        (f"data-db-copy-{i}", f"data-db-{i}", True, True) for i in range(2)
    ], st
    assert st["pointInTime"].endswith("Z")
    assert stages(st)["SnapshotsTaken"] == stages(st)["VolumesReady"] == "True", st


def refused_for_storage(stderr: str) -> str:
    """The webhook's storage refusal: the last of its problems, after its field."""
    assert "denied the request" in stderr, stderr
    return stderr.split("spec.copyMethod: ", 1)[1].strip()


def test_what_the_storage_cannot_do_is_refused_at_apply(
    admin: Kubectl, kubectl: Kubectl, webhook: OperatorProcess
) -> None:
    """With the webhook judging the API server's reviews (webhook.clientCA set): a
    cross-region VolumeClone of zonal volumes, and a Snapshot by a class that does not
    exist, are refused at `kubectl apply` in pickup's own words. Without the client CA
    the webhook reads nothing: the same operations are admitted and pickup refuses them,
    word for word."""
    zonal_source(admin, kubectl)
    asked = {
        "z-west": operation("z-west", "zsrc", copyMethod="VolumeClone", targetRegion="us-west-2"),
        "no-class": operation(
            "no-class", "zsrc", copyMethod="Snapshot", volumeSnapshotClassName="no-such-class"
        ),
    }
    at_apply = {}
    for name, op in asked.items():
        refused = kubectl.apply(op, check=False)
        assert refused.returncode != 0, f"{name} was admitted"
        at_apply[name] = refused_for_storage(refused.stderr)
        assert kubectl.get("cloningoperation", name) is None
    assert at_apply["z-west"].startswith("copyMethod VolumeClone cannot copy the source's volumes: "
                                         "StorageClass clone-test-zonal keeps its volumes in zone "
                                         "us-east-1")  # fmt: skip
    assert "the target must run in region us-west-2" in at_apply["z-west"]
    assert "VolumeSnapshotClass no-such-class does not exist" in at_apply["no-class"]
    for method in ("VolumeClone", "Snapshot", "GroupSnapshot", "Auto"):  # what works is admitted
        sound = json.dumps(operation(f"z-{method.lower()}", "zsrc", copyMethod=method))
        kubectl("create", "--dry-run=server", "-f", "-", stdin=sound)

    env = {k: v for k, v in WEBHOOK_ENV.items() if k not in WEBHOOK_CLIENT_CA}
    webhook.ensure({**env, "CLONE_OPERATOR_UNSCHEDULABLE_GRACE_SECONDS": "600"})
    for name, op in asked.items():
        kubectl.apply(op)
        st = finished(kubectl, name, timeout=60)
        assert (st["phase"], st["reason"]) == ("Failed", "CopyMethodUnsuitable"), st
        assert st["message"] == at_apply[name]
        assert made_by(kubectl, name) == []
