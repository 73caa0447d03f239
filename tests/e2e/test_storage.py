"""The local cluster's storage behaves like a cloud's (tests/cluster/storage.py, csidriver.py).

- csi-sanity, the CSI community's conformance suite, passes against each driver;
- a VolumeSnapshot taken by the real snapshot-controller and csi-snapshotter
  becomes readyToUse, and a claim restored from it holds the same files, read
  in a pod on the real node (mounted by the kubelet through the node service);
- a clone asked of a driver that cannot clone fails with the external-provisioner's
  message, as on vSphere or EBS before 1.51;
- a volume of one region cannot serve a pod pinned to another: the scheduler
  says why, as on a cloud.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.app import images
from tests.cluster import csistubs, localcluster, realnode, storage
from tests.e2e.kube import Kubectl, wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built_csi() -> None:
    csistubs.build()


@contextlib.contextmanager
def driver_process(tmp_path: Path, *drivers: str) -> Iterator[Path]:
    """The driver alone (its own root and sockets; no cluster); yields its socket directory."""
    sock_dir = tmp_path / "s"
    log = tmp_path / "driver.log"
    flags = [arg for d in drivers for arg in ("--driver", d)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests/cluster/csidriver.py"),
             "--root", str(tmp_path / "volumes"), "--socket-dir", str(sock_dir),
             "--node-id", "sanity", *flags],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
    try:
        wait_for("the driver's sockets",
                 lambda: all((sock_dir / f"{d}.sock").exists() for d in drivers), 30)  # fmt: skip
        yield sock_dir
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("driver", storage.DRIVERS)
def test_csi_sanity_passes(built_csi: None, driver: str, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the node service bind-mounts: needs root")
    with driver_process(tmp_path, driver) as sock_dir:
        result = subprocess.run(
            [str(csistubs.csi_sanity()), f"--csi.endpoint=unix://{sock_dir / driver}.sock",
             f"--csi.mountdir={tmp_path / 'mnt'}", f"--csi.stagingdir={tmp_path / 'stage'}",
             "-ginkgo.no-color"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout[-5000:] + (tmp_path / "driver.log").read_text()
    assert "0 Failed" in result.stdout


EAST_A = {"topology.kubernetes.io/region": "us-east-1", "topology.kubernetes.io/zone": "us-east-1a"}
EAST_B = {"topology.kubernetes.io/region": "us-east-1", "topology.kubernetes.io/zone": "us-east-1b"}
WEST_A = {"topology.kubernetes.io/region": "us-west-2", "topology.kubernetes.io/zone": "us-west-2a"}


@pytest.fixture
def disk(built_csi: None, tmp_path: Path) -> Iterator[Any]:
    """A Controller client of the disk driver, alone."""
    with driver_process(tmp_path, storage.DISK) as sock_dir:
        channel = grpc.insecure_channel(f"unix://{sock_dir / storage.DISK}.sock")
        yield csistubs.load("csi_pb2_grpc").ControllerStub(channel)
        channel.close()


def create(ctl: Any, name: str, where: dict[str, str], params: dict[str, str],
           source: Any = None) -> Any:  # fmt: skip
    csi = csistubs.load("csi_pb2")
    cap = csi.VolumeCapability(
        mount=csi.VolumeCapability.MountVolume(),
        access_mode=csi.VolumeCapability.AccessMode(mode=1),
    )
    req = csi.TopologyRequirement(requisite=[csi.Topology(segments=where)],
                                  preferred=[csi.Topology(segments=where)])  # fmt: skip
    return ctl.CreateVolume(csi.CreateVolumeRequest(
        name=name, capacity_range=csi.CapacityRange(required_bytes=1 << 20),
        volume_capabilities=[cap], parameters=params, volume_content_source=source,
        accessibility_requirements=req), timeout=10).volume  # fmt: skip


def from_volume(volume_id: str) -> Any:
    csi = csistubs.load("csi_pb2")
    return csi.VolumeContentSource(volume=csi.VolumeContentSource.VolumeSource(volume_id=volume_id))


def test_a_zonal_clone_stays_in_its_source_zone(disk: Any) -> None:
    src = create(disk, "src", EAST_A, {"topology": "zonal"})
    assert [dict(t.segments) for t in src.accessible_topology] == [EAST_A]
    clone = create(disk, "same-zone", EAST_A, {"topology": "zonal"}, from_volume(src.volume_id))
    assert [dict(t.segments) for t in clone.accessible_topology] == [EAST_A]
    with pytest.raises(grpc.RpcError) as refused:
        create(disk, "other-zone", EAST_B, {"topology": "zonal"}, from_volume(src.volume_id))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "a clone stays in its source's zone (us-east-1a)" in str(refused.value.details())


def test_a_regional_clone_spans_its_region_and_no_other(disk: Any) -> None:
    src = create(disk, "src", EAST_A, {"topology": "regional"})
    region = {"topology.kubernetes.io/region": "us-east-1"}
    assert [dict(t.segments) for t in src.accessible_topology] == [region]
    clone = create(disk, "b", EAST_B, {"topology": "regional"}, from_volume(src.volume_id))
    assert [dict(t.segments) for t in clone.accessible_topology] == [region]
    with pytest.raises(grpc.RpcError, match="a clone stays in its source's region"):
        create(disk, "west", WEST_A, {"topology": "regional"}, from_volume(src.volume_id))


def test_a_clone_is_ready_after_its_bytes_at_the_copy_rate(disk: Any, tmp_path: Path) -> None:
    src = create(disk, "src", EAST_A, {"topology": "zonal"})
    (tmp_path / "volumes" / src.volume_id / "blob").write_bytes(b"x" * (1 << 20))
    params = {"topology": "zonal", "copyRate": "512Ki"}  # 2 s for 1 MiB
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as pending:
        create(disk, "copy", EAST_A, params, from_volume(src.volume_id))
    assert pending.value.code() == grpc.StatusCode.ABORTED
    clone = wait_for(
        "the clone to be ready",
        lambda: call_or_none(lambda: create(disk, "copy", EAST_A, params,
                                            from_volume(src.volume_id))),
        timeout=30,
    )  # fmt: skip
    assert clone.volume_id != src.volume_id
    assert time.monotonic() - started >= 1.5
    assert (tmp_path / "volumes" / clone.volume_id / "blob").stat().st_size == 1 << 20


def call_or_none(fn: Any) -> Any:
    try:
        return fn()
    except grpc.RpcError:
        return None


def test_a_regional_snapshot_restores_in_its_region_a_global_one_anywhere(disk: Any) -> None:
    csi = csistubs.load("csi_pb2")
    src = create(disk, "src", EAST_A, {"topology": "zonal"})
    restored = {}
    for scope in ("regional", "global"):
        snap = disk.CreateSnapshot(csi.CreateSnapshotRequest(
            source_volume_id=src.volume_id, name=scope, parameters={"snapshotScope": scope}),
            timeout=10).snapshot  # fmt: skip
        assert snap.ready_to_use
        source = csi.VolumeContentSource(
            snapshot=csi.VolumeContentSource.SnapshotSource(snapshot_id=snap.snapshot_id)
        )
        east = create(disk, f"{scope}-east", EAST_B, {"topology": "zonal"}, source)
        assert [dict(t.segments) for t in east.accessible_topology] == [EAST_B]
        restored[scope] = call_or_none(
            lambda s=source, n=scope: create(disk, f"{n}-west", WEST_A, {"topology": "zonal"}, s)
        )
    assert restored["regional"] is None
    assert [dict(t.segments) for t in restored["global"].accessible_topology] == [WEST_A]


def test_faults_delay_or_fail_a_clone(disk: Any) -> None:
    src = create(disk, "src", EAST_A, {"topology": "zonal"})
    params = {"topology": "zonal", "cloneFault": "fail"}
    with pytest.raises(grpc.RpcError) as failed:
        create(disk, "failing", EAST_A, params, from_volume(src.volume_id))
    assert failed.value.code() == grpc.StatusCode.INTERNAL
    for fault in ("never-ready", "slow"):
        params = {"topology": "zonal", "cloneFault": fault, "faultDelaySeconds": "3600"}
        for _ in range(2):  # asked again (as a provisioner retries): still in progress
            with pytest.raises(grpc.RpcError) as pending:
                create(disk, fault, EAST_A, params, from_volume(src.volume_id))
            assert pending.value.code() == grpc.StatusCode.ABORTED


@pytest.fixture(scope="module")
def peer_image(cluster: localcluster.Paths) -> str:
    """An image on the real node with a shell (peerapp's)."""
    if not realnode.running(localcluster.node_paths(cluster)):
        pytest.skip(f"needs the real node: {realnode.unavailable_reason() or 'it is not up'}")
    return images.build_and_import(cluster.cache, cluster.cluster_dir, ["1.0"])[0]


def claim(name: str, cls: str = storage.DEFAULT_CLASS, size: str = "1Gi",
          source: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": cls,
        "resources": {"requests": {"storage": size}},
    }
    if source:
        spec["dataSource"] = source
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name}, "spec": spec}  # fmt: skip


def real_node_pod(name: str, image: str, pvc: str, script: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": {realnode.TAINT_KEY: "true"},
            "tolerations": [{"key": realnode.TAINT_KEY, "operator": "Exists"}],
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "sh", "image": image, "imagePullPolicy": "Never",
                "command": ["sh", "-c", script],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": pvc}}],
        },
    }  # fmt: skip


def bound(kubectl: Kubectl, name: str) -> bool:
    return ((kubectl.get("pvc", name) or {}).get("status") or {}).get("phase") == "Bound"


def pod_output(kubectl: Kubectl, name: str) -> str:
    def done() -> str | None:
        phase = ((kubectl.get("pod", name) or {}).get("status") or {}).get("phase")
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_for(f"pod {name} to finish", done, timeout=180, interval=1)
    logs = kubectl("logs", name).stdout
    assert phase == "Succeeded", logs
    return logs


def events(kubectl: Kubectl, kind: str, name: str) -> list[dict[str, Any]]:
    return kubectl.items("events", f"--field-selector=involvedObject.kind={kind},"
                                   f"involvedObject.name={name}")  # fmt: skip


def provisioning_failed(kubectl: Kubectl, pvc: str) -> list[dict[str, Any]]:
    return wait_for(
        f"a ProvisioningFailed event on {pvc}",
        lambda: [e for e in events(kubectl, "PersistentVolumeClaim", pvc)
                 if e["reason"] == "ProvisioningFailed"],
        timeout=60,
    )  # fmt: skip


def test_the_snapshot_classes_are_served(admin: Kubectl) -> None:
    names = {c["metadata"]["name"] for c in admin.items("volumesnapshotclasses")}
    assert {storage.SNAPSHOT_CLASS, storage.SNAPSHOT_ONLY_SNAPSHOT_CLASS} <= names
    groups = {c["metadata"]["name"] for c in admin.items("volumegroupsnapshotclasses")}
    assert storage.GROUP_SNAPSHOT_CLASS in groups


def test_a_snapshot_restores_the_same_files_on_the_real_node(
    kubectl: Kubectl, peer_image: str
) -> None:
    kubectl.apply(claim("data"))
    write = "mkdir -p /data/d && echo alpha >/data/a && echo beta >/data/d/b && sync && echo ok"
    kubectl.apply(real_node_pod("writer", peer_image, "data", write))
    assert pod_output(kubectl, "writer").strip() == "ok"
    kubectl.apply({
        "apiVersion": storage.SNAPSHOT_API, "kind": "VolumeSnapshot",
        "metadata": {"name": "snap"},
        "spec": {"source": {"persistentVolumeClaimName": "data"}},
    })  # fmt: skip
    snap = wait_for(
        "the VolumeSnapshot to be readyToUse",
        lambda: (s := kubectl.get("volumesnapshot", "snap")) and (s.get("status") or {}).get(
            "readyToUse") and s,
        timeout=120,
    )  # fmt: skip
    assert snap["status"]["boundVolumeSnapshotContentName"]
    kubectl.apply(claim("restored", source={
        "apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "snap"}))  # fmt: skip
    wait_for("the restored claim to bind", lambda: bound(kubectl, "restored"), timeout=120)
    kubectl.apply(real_node_pod("reader", peer_image, "restored", "cat /data/a /data/d/b"))
    assert pod_output(kubectl, "reader").split() == ["alpha", "beta"]
    pv = kubectl.get("pv", kubectl.get("pvc", "restored")["spec"]["volumeName"])
    assert pv["spec"]["csi"]["driver"] == storage.DISK


def test_a_clone_on_a_driver_that_cannot_clone_fails_as_the_provisioner_says(
    kubectl: Kubectl,
) -> None:
    kubectl.apply(claim("src", cls=storage.SNAPSHOT_ONLY_CLASS))
    wait_for("the source claim to bind", lambda: bound(kubectl, "src"), timeout=60)
    kubectl.apply(claim("copy", cls=storage.SNAPSHOT_ONLY_CLASS,
                        source={"kind": "PersistentVolumeClaim", "name": "src"}))  # fmt: skip
    failed = provisioning_failed(kubectl, "copy")
    assert failed[0]["message"] == (
        f'failed to provision volume with StorageClass "{storage.SNAPSHOT_ONLY_CLASS}": '
        "CSI driver does not support clone operations: "
        "controller CLONE_VOLUME capability is not reported"
    )
    assert kubectl.get("pvc", "copy")["status"]["phase"] == "Pending"


def test_a_volume_of_one_region_cannot_serve_a_pod_in_another(kubectl: Kubectl) -> None:
    kubectl.apply(claim("east"))
    wait_for("the claim to bind", lambda: bound(kubectl, "east"), timeout=60)
    pv = kubectl.get("pv", kubectl.get("pvc", "east")["spec"]["volumeName"])
    terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [
        {"key": "topology.kubernetes.io/region", "operator": "In", "values": ["us-east-1"]}]}]  # fmt: skip
    kubectl.apply({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "west"},
        "spec": {
            "nodeSelector": {"topology.kubernetes.io/region": "us-west-2"},
            "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "east"}}],
        },
    })  # fmt: skip
    refused = wait_for(
        "a FailedScheduling event",
        lambda: [e for e in events(kubectl, "Pod", "west") if e["reason"] == "FailedScheduling"],
        timeout=60,
    )
    assert "node(s) didn't match PersistentVolume's node affinity" in refused[0]["message"], (
        json.dumps(refused[0])
    )
    assert not kubectl.get("pod", "west")["spec"].get("nodeName")


def kwok_pod(name: str, pvc: str, zone: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"topology.kubernetes.io/zone": zone, "type": "kwok"},
            "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": pvc}}],
        },
    }  # fmt: skip


def test_a_zonal_clone_for_a_pod_in_another_zone_fails(kubectl: Kubectl) -> None:
    """WaitForFirstConsumer: the volume is made in its first pod's zone; a clone asked
    for a pod in another zone of the same region fails, the commonest real failure."""
    kubectl.apply([claim("src", cls=storage.ZONAL_CLASS), kwok_pod("first", "src", "us-east-1b")])
    wait_for("the zonal claim to bind", lambda: bound(kubectl, "src"), timeout=60)
    pv = kubectl.get("pv", kubectl.get("pvc", "src")["spec"]["volumeName"])
    expressions = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"]
    assert {e["key"]: e["values"] for e in expressions}["topology.kubernetes.io/zone"] == [
        "us-east-1b"
    ]
    kubectl.apply([
        claim("copy", cls=storage.ZONAL_CLASS,
              source={"kind": "PersistentVolumeClaim", "name": "src"}),
        kwok_pod("second", "copy", "us-east-1a"),
    ])  # fmt: skip
    failed = provisioning_failed(kubectl, "copy")
    assert "a clone stays in its source's zone (us-east-1b)" in failed[0]["message"]


def test_a_group_snapshot_is_taken_of_every_selected_claim(kubectl: Kubectl) -> None:
    for name in ("a", "b"):
        kubectl.apply({**claim(name), "metadata": {"name": name, "labels": {"group": "g"}}})
        wait_for(f"claim {name} to bind", lambda n=name: bound(kubectl, n), timeout=60)
    kubectl.apply({
        "apiVersion": storage.GROUP_SNAPSHOT_API, "kind": "VolumeGroupSnapshot",
        "metadata": {"name": "both"},
        "spec": {"source": {"selector": {"matchLabels": {"group": "g"}}}},
    })  # fmt: skip
    wait_for(
        "the VolumeGroupSnapshot to be readyToUse",
        lambda: ((kubectl.get("volumegroupsnapshot", "both") or {}).get("status") or {}).get(
            "readyToUse"),
        timeout=120,
    )  # fmt: skip
    members = [s for s in kubectl.items("volumesnapshots") if s["metadata"]["name"] != "both"]
    sources = sorted(s["spec"]["source"]["persistentVolumeClaimName"] for s in members)
    assert sources == ["a", "b"]


def test_snapshot_faults_on_demand(kubectl: Kubectl) -> None:
    """A VolumeSnapshot's annotation makes its snapshot fail, or never become ready."""
    kubectl.apply(claim("data"))
    wait_for("the claim to bind", lambda: bound(kubectl, "data"), timeout=60)
    for fault in ("fail", "never-ready"):
        kubectl.apply({
            "apiVersion": storage.SNAPSHOT_API, "kind": "VolumeSnapshot",
            "metadata": {"name": fault, "annotations": {"storage.cloning.dev/snapshot-fault": fault}},
            "spec": {"source": {"persistentVolumeClaimName": "data"}},
        })  # fmt: skip

    def status(name: str) -> dict[str, Any]:
        return dict((kubectl.get("volumesnapshot", name) or {}).get("status") or {})

    failed = wait_for("the failing snapshot's error", lambda: status("fail").get("error"), 60)
    assert "injected fault (snapshotFault: fail)" in failed["message"]
    content = wait_for(
        "the never-ready snapshot's content",
        lambda: (c := status("never-ready").get("boundVolumeSnapshotContentName"))
        and (kubectl.get("volumesnapshotcontent", c).get("status") or {}).get("snapshotHandle"),
        60,
    )  # fmt: skip
    assert content.startswith("snap-")
    assert status("never-ready").get("readyToUse") is False


def test_a_clone_fault_on_demand_by_annotation(kubectl: Kubectl) -> None:
    kubectl.apply(claim("src"))
    wait_for("the source claim to bind", lambda: bound(kubectl, "src"), timeout=60)
    for fault in ("fail", "never-ready"):
        faulty = claim(fault, source={"kind": "PersistentVolumeClaim", "name": "src"})
        faulty["metadata"]["annotations"] = {"storage.cloning.dev/clone-fault": fault}
        kubectl.apply(faulty)
    assert "injected fault (cloneFault: fail)" in provisioning_failed(kubectl, "fail")[0]["message"]
    stuck = provisioning_failed(kubectl, "never-ready")[0]["message"]
    assert "rpc error: code = Aborted desc = volume pvc-" in stuck
    assert stuck.endswith("is being copied (cloneFault: never-ready)")
    assert kubectl.get("pvc", "never-ready")["status"]["phase"] == "Pending"
