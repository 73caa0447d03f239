"""A stand-in for snapshot-capable CSI storage, for the copy-method e2e tests until the
test storage of issue 23 (a real CSI driver behind the real snapshot-controller and
csi-snapshotter) serves kwok nodes.

What is real: the VolumeSnapshot CRDs as released with external-snapshotter (the
files the cluster build vendors), and the API server's validation of every
object. What is played here, in one thread, for one StorageClass of a made-up
CSI driver: the snapshot machinery (a VolumeSnapshot of that driver's class gets
its status: bound content name, creationTime, readyToUse, restoreSize; a
VolumeGroupSnapshot gets one member snapshot per PVC it selects) and the
external-provisioner (a PVC of the class restored from a VolumeSnapshot gets a
CSI PersistentVolume; a PVC cloned from a PVC gets the external-provisioner's
`ProvisioningFailed` Event for a driver that cannot clone — a snapshot-only class).
Each ready snapshot gets a VolumeSnapshotContent with its class's deletionPolicy,
deleted with its snapshot when that policy is Delete (as the snapshot-controller
does), kept when it is Retain. Faults on demand, by annotations on the source PVC:
its snapshots fail with a message (`FAIL`, as a driver's failed CreateSnapshot),
come late (`DELAY` seconds), or are cut and never ready (`NEVER`).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

FAIL = "test.cloning.dev/fail-snapshot"
"""On a source PVC: its snapshots fail with this annotation's value as the storage's words."""
DELAY = "test.cloning.dev/snapshot-delay"
"""On a source PVC: its snapshots are cut and ready this many seconds after they are taken."""
NEVER = "test.cloning.dev/snapshot-never-ready"
"""On a source PVC: its snapshots are cut but never become ready."""
CONTENT = ("snapshot.storage.k8s.io", "v1", "volumesnapshotcontents")
CLONE_REFUSED = (
    'failed to provision volume with StorageClass "{cls}": error getting handle for DataSource '
    "Type PersistentVolumeClaim: CSI driver does not support clone operations: controller "
    "CLONE_VOLUME capability is not reported"
)
SNAPSHOT = ("snapshot.storage.k8s.io", "v1", "volumesnapshots")
GROUP = ("groupsnapshot.storage.k8s.io", "v1", "volumegroupsnapshots")


def crd_files(cache: Path) -> list[Path]:
    """The snapshot CRDs as the cluster build vendors them (none: not built here)."""
    for crd_dir in sorted((cache / "bin").glob("snapshotter-*/crd")):
        return sorted(crd_dir.glob("*snapshot.storage.k8s.io_*.yaml"))
    return []


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SnapshotOnlyStorage:
    """Plays a snapshot-only CSI driver's controller side for `storage_class` in `namespace`."""

    def __init__(self, kubeconfig: Path, namespace: str, storage_class: str, driver: str) -> None:
        api = k8s_config.new_client_from_config(str(kubeconfig))
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.namespace, self.storage_class, self.driver = namespace, storage_class, driver
        self.stop = threading.Event()
        self.refused: set[str] = set()

    def pv(self, name: str, claim: str, claim_uid: str | None, size: str) -> dict[str, Any]:
        """A CSI PersistentVolume of the driver, bound to `claim`."""
        ref = {"namespace": self.namespace, "name": claim}
        if claim_uid:
            ref["uid"] = claim_uid
        return {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": self.storage_class,
                "persistentVolumeReclaimPolicy": "Delete",
                "csi": {"driver": self.driver, "volumeHandle": f"vol-{uuid.uuid4().hex[:12]}"},
                "claimRef": ref,
            },
        }

    def faults(self) -> dict[str, dict[str, str]]:
        return {
            p.metadata.name: dict(p.metadata.annotations or {})
            for p in self.core.list_namespaced_persistent_volume_claim(self.namespace).items
        }

    def content(self, snap: dict[str, Any], name: str) -> None:
        """The VolumeSnapshotContent of a ready snapshot, with its class's deletionPolicy."""
        meta = snap["metadata"]
        policy = "Delete"
        class_name = snap["spec"].get("volumeSnapshotClassName")
        if class_name:
            cls = self.custom.get_cluster_custom_object(
                "snapshot.storage.k8s.io", "v1", "volumesnapshotclasses", class_name
            )
            policy = cls.get("deletionPolicy", "Delete")
        body = {
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshotContent",
            "metadata": {"name": name},
            "spec": {
                "deletionPolicy": policy,
                "driver": self.driver,
                "source": {"snapshotHandle": f"snap-{meta['uid']}"},
                "volumeSnapshotRef": {
                    "apiVersion": "snapshot.storage.k8s.io/v1",
                    "kind": "VolumeSnapshot",
                    "namespace": self.namespace,
                    "name": meta["name"],
                    "uid": meta["uid"],
                },
            },
        }
        try:
            self.custom.create_cluster_custom_object(*CONTENT[:2], CONTENT[2], body)
        except ApiException as e:
            if e.status != 409:
                raise

    def _contents(self, live: set[str]) -> None:
        """Contents whose snapshot is gone: deleted when their policy is Delete."""
        for content in self.custom.list_cluster_custom_object(*CONTENT[:2], CONTENT[2])["items"]:
            ref = content["spec"].get("volumeSnapshotRef") or {}
            if ref.get("namespace") != self.namespace or ref.get("uid") in live:
                continue
            if content["spec"].get("deletionPolicy") == "Delete":
                self.custom.delete_cluster_custom_object(
                    *CONTENT[:2], CONTENT[2], content["metadata"]["name"]
                )

    def _snapshots(self) -> None:
        listed = self.custom.list_namespaced_custom_object(
            *SNAPSHOT[:2], self.namespace, SNAPSHOT[2]
        )
        faults = self.faults()
        self._contents({s["metadata"]["uid"] for s in listed["items"]})
        for snap in listed["items"]:
            meta, status = snap["metadata"], snap.get("status") or {}
            if status.get("readyToUse") or status.get("error"):
                continue
            fault = faults.get(snap["spec"]["source"].get("persistentVolumeClaimName"), {})
            age = (
                time.time()
                - datetime.fromisoformat(
                    meta["creationTimestamp"].replace("Z", "+00:00")
                ).timestamp()
            )
            if age < float(fault.get(DELAY, 0)):
                continue
            content = f"snapcontent-{meta['uid']}"
            if FAIL in fault:
                body: dict[str, Any] = {
                    "status": {"error": {"message": fault[FAIL], "time": _now()}}
                }
            elif NEVER in fault:
                if status.get("creationTime"):
                    continue
                body = {"status": {"boundVolumeSnapshotContentName": content,
                                   "creationTime": _now(), "readyToUse": False}}  # fmt: skip
            else:
                if "volumeSnapshotClassName" in snap["spec"]:
                    self.content(snap, content)
                body = {
                    "status": {
                        "boundVolumeSnapshotContentName": content,
                        "creationTime": _now(),
                        "readyToUse": True,
                        "restoreSize": "1Gi",
                    }
                }
            self.custom.patch_namespaced_custom_object_status(
                *SNAPSHOT[:2], self.namespace, SNAPSHOT[2], meta["name"], body
            )

    def _groups(self) -> None:
        """A VolumeGroupSnapshot: one member VolumeSnapshot per PVC its selector picks,
        owned by the group and naming its PVC (as the snapshot-controller makes them),
        all cut at one instant."""
        listed = self.custom.list_namespaced_custom_object(*GROUP[:2], self.namespace, GROUP[2])
        for group in listed["items"]:
            meta = group["metadata"]
            if (group.get("status") or {}).get("readyToUse"):
                continue
            labels = group["spec"]["source"]["selector"].get("matchLabels") or {}
            selector = ",".join(f"{k}={v}" for k, v in labels.items())
            pvcs = self.core.list_namespaced_persistent_volume_claim(
                self.namespace, label_selector=selector
            ).items
            owner = {"apiVersion": "groupsnapshot.storage.k8s.io/v1", "kind": "VolumeGroupSnapshot",
                     "name": meta["name"], "uid": meta["uid"]}  # fmt: skip
            for pvc in pvcs:
                member = {
                    "apiVersion": "snapshot.storage.k8s.io/v1",
                    "kind": "VolumeSnapshot",
                    "metadata": {
                        "name": f"snapshot-{meta['uid'][:8]}-{pvc.metadata.name}",
                        "ownerReferences": [owner],
                    },
                    "spec": {"source": {"persistentVolumeClaimName": pvc.metadata.name}},
                }
                try:
                    self.custom.create_namespaced_custom_object(
                        *SNAPSHOT[:2], self.namespace, SNAPSHOT[2], member
                    )
                except ApiException as e:
                    if e.status != 409:
                        raise
            status = {
                "boundVolumeGroupSnapshotContentName": f"groupsnapcontent-{meta['uid']}",
                "creationTime": _now(),
                "readyToUse": True,
            }
            self.custom.patch_namespaced_custom_object_status(
                *GROUP[:2], self.namespace, GROUP[2], meta["name"], {"status": status}
            )

    def _claims(self) -> None:
        for pvc in self.core.list_namespaced_persistent_volume_claim(self.namespace).items:
            spec = pvc.spec
            if spec.storage_class_name != self.storage_class or spec.volume_name:
                continue
            source = spec.data_source
            if source is None or pvc.metadata.uid in self.refused:
                continue
            if source.kind == "PersistentVolumeClaim":
                self.refused.add(pvc.metadata.uid)
                self.core.create_namespaced_event(
                    self.namespace,
                    client.CoreV1Event(
                        metadata=client.V1ObjectMeta(generate_name=f"{pvc.metadata.name}."),
                        involved_object=client.V1ObjectReference(
                            kind="PersistentVolumeClaim",
                            namespace=self.namespace,
                            name=pvc.metadata.name,
                            uid=pvc.metadata.uid,
                            api_version="v1",
                        ),
                        reason="ProvisioningFailed",
                        message=CLONE_REFUSED.format(cls=self.storage_class),
                        type="Warning",
                        source=client.V1EventSource(component=self.driver),
                        first_timestamp=datetime.now(UTC),
                        last_timestamp=datetime.now(UTC),
                        count=1,
                    ),
                )
            elif source.kind == "VolumeSnapshot":
                body = self.pv(
                    f"pvc-{pvc.metadata.uid}", pvc.metadata.name, pvc.metadata.uid, "1Gi"
                )
                try:
                    self.core.create_persistent_volume(body)
                except ApiException as e:
                    if e.status != 409:
                        raise

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self._groups()
                self._snapshots()
                self._claims()
            except ApiException:
                pass  # the namespace is going away, or a race: the next round looks again
            self.stop.wait(0.3)


@contextmanager
def snapshot_only_storage(
    kubeconfig: Path, namespace: str, storage_class: str, driver: str
) -> Iterator[SnapshotOnlyStorage]:
    storage = SnapshotOnlyStorage(kubeconfig, namespace, storage_class, driver)
    thread = threading.Thread(target=storage.run, name="snapshot-only-storage", daemon=True)
    thread.start()
    try:
        yield storage
    finally:
        storage.stop.set()
        thread.join(timeout=5)
