"""The external-provisioner's part, for the local cluster's CSI drivers (csidriver.py).

The real external-provisioner is not to be had here (the Go module proxy refuses
it), so this small harness does its job for PVCs whose StorageClass names one of
our drivers, through the drivers' own gRPC sockets:

* Immediate classes are provisioned at once; WaitForFirstConsumer classes once
  the scheduler picked a node (`volume.kubernetes.io/selected-node`).
* CreateVolume gets the claim's size, access mode, the class's parameters and
  accessibility requirements: with a selected node, that node's topology only
  (the provisioner's strict topology); without, every topology of the cluster's
  nodes, sorted (the real one rotates them by a hash of the claim's name; sorted
  keeps tests deterministic: us-east-1 first). Topologies come from the nodes'
  `topology.kubernetes.io/{region,zone}` labels, not from CSINode objects as the
  real one reads them: the kwok nodes run no node plugin, yet their pods'
  volumes must be provisioned.
* A `dataSource` (or `dataSourceRef`) is checked as the external-provisioner
  checks it, with its messages: the driver must report CLONE_VOLUME (or
  CREATE_DELETE_SNAPSHOT), a source claim must be Bound, of the same class and
  no larger; a VolumeSnapshot must be ready to use and of the same driver.
* The PersistentVolume is a `spec.csi` volume of the driver, with the node
  affinity of the volume's accessible topology, bound to the claim. A clone's
  PV also records its lineage (a marker of ours, for tests):
    cloning.dev/cloned-from-pvc      <namespace>/<source pvc>
    cloning.dev/cloned-from-pvc-uid  <source pvc uid>
    cloning.dev/cloned-from-pv       <source pv>
* A Released PV with reclaimPolicy Delete: DeleteVolume, then the PV goes.

Events on the claim use the external-provisioner's reasons and messages:
Provisioning, ProvisioningSucceeded, ProvisioningFailed ("failed to provision
volume with StorageClass ...: <error>"). A claim's `storage.cloning.dev/clone-fault`
annotation is passed to the driver as its `cloneFault` parameter (faults on demand;
the real provisioner passes no annotations).

Claims are provisioned in parallel (a bounded pool, one worker per claim at a
time): a thousand clones must not wait for each other.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.utils.quantity import parse_quantity

if __package__ in (None, ""):  # run as a script: tests/cluster/provisioner.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.cluster import csistubs

csi = csistubs.load("csi_pb2")
csi_grpc = csistubs.load("csi_pb2_grpc")

LINEAGE_PVC = "cloning.dev/cloned-from-pvc"
LINEAGE_PVC_UID = "cloning.dev/cloned-from-pvc-uid"
LINEAGE_PV = "cloning.dev/cloned-from-pv"
CLONE_FAULT_ANNOTATION = "storage.cloning.dev/clone-fault"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
TOPOLOGY_KEYS = ("topology.kubernetes.io/region", "topology.kubernetes.io/zone")
WORKERS = 16  # claims provisioned at once
RECLAIM_WORKERS = 4  # released volumes deleted at once
CALL_TIMEOUT_S = 30

log = logging.getLogger("provisioner")


class Failed(Exception):
    """Provisioning failed with a message for the claim's ProvisioningFailed event."""


def grpc_message(e: grpc.RpcError) -> str:
    """A gRPC error as Go's status error prints it (what the real provisioner's events show)."""
    return f"rpc error: code = {e.code().name.title().replace('_', '')} desc = {e.details()}"


def quantity(size: int) -> str:
    """Bytes as the API server writes a binary quantity (`1Gi`), as the real provisioner's."""
    for suffix, shift in (("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)):
        if size and size % (1 << shift) == 0:
            return f"{size >> shift}{suffix}"
    return str(size)


def segment(labels: dict[str, str]) -> dict[str, str]:
    return {k: labels[k] for k in TOPOLOGY_KEYS if k in labels}


def allowed(class_: Any, seg: dict[str, str]) -> bool:
    """Whether a topology passes the class's allowedTopologies."""
    terms = class_.allowed_topologies or []
    if not terms:
        return True
    for term in terms:
        exprs = term.match_label_expressions or []
        if all(seg.get(e.key) in e.values for e in exprs):
            return True
    return False


class Drivers:
    """gRPC clients of our drivers, by name, with the capabilities each reports."""

    def __init__(self, socket_dir: Path) -> None:
        self.socket_dir = socket_dir
        self.lock = threading.Lock()
        self.stubs: dict[str, Any] = {}
        self.caps: dict[str, set[int]] = {}

    def names(self) -> set[str]:
        return {p.name.removesuffix(".sock") for p in self.socket_dir.glob("*.sock")}

    def controller(self, name: str) -> Any:
        with self.lock:
            if name not in self.stubs:
                channel = grpc.insecure_channel(f"unix://{self.socket_dir / name}.sock")
                self.stubs[name] = csi_grpc.ControllerStub(channel)
            return self.stubs[name]

    def capabilities(self, name: str) -> set[int]:
        if name not in self.caps:
            got = self.controller(name).ControllerGetCapabilities(
                csi.ControllerGetCapabilitiesRequest(), timeout=CALL_TIMEOUT_S
            )
            self.caps[name] = {c.rpc.type for c in got.capabilities}
        return self.caps[name]


class Provisioner:
    def __init__(self, core: client.CoreV1Api, storage: client.StorageV1Api,
                 custom: client.CustomObjectsApi, drivers: Drivers) -> None:  # fmt: skip
        self.core = core
        self.storage = storage
        self.custom = custom
        self.drivers = drivers
        self.reported: set[tuple[str, str]] = set()
        self.pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="provision")
        # Deletions in their own pool: a namespace of a thousand released volumes must not
        # hold up the next test's claims.
        self.reclaim_pool = ThreadPoolExecutor(RECLAIM_WORKERS, thread_name_prefix="reclaim")
        self.lock = threading.Lock()
        self.in_flight: set[str] = set()  # claim uids and pv/<name>: one worker each at most
        self.classes: dict[str, Any] = {}
        self.topologies: list[dict[str, str]] = []
        self.node_topology: dict[str, dict[str, str]] = {}

    # --- what is ours ----------------------------------------------------------------------

    def class_of(self, pvc: Any) -> Any:
        cls = self.classes.get(pvc.spec.storage_class_name or "")
        if cls is None or cls.provisioner not in self.drivers.names():
            return None
        return cls

    def submit(self, pvc: Any) -> None:
        """Provision a claim in the pool; a claim a worker has already is skipped (the
        periodic resync brings back whatever that worker left waiting)."""
        if pvc.spec.volume_name or pvc.metadata.deletion_timestamp or self.class_of(pvc) is None:
            return
        uid = pvc.metadata.uid
        with self.lock:
            if uid in self.in_flight:
                return
            self.in_flight.add(uid)
        self.pool.submit(self._provision, pvc)

    def _provision(self, pvc: Any) -> None:
        try:
            self.provision(pvc)
        except Exception as e:  # keep serving: the resync tries again
            log.warning("%s/%s: error: %r", pvc.metadata.namespace, pvc.metadata.name, e)
        finally:
            with self.lock:
                self.in_flight.discard(pvc.metadata.uid)

    def event(self, pvc: Any, reason: str, message: str, kind: str = "Warning") -> None:
        key = (pvc.metadata.uid, message)
        if key in self.reported:
            return
        self.reported.add(key)
        log.info("%s/%s: %s: %s", pvc.metadata.namespace, pvc.metadata.name, reason, message)
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{pvc.metadata.name}."),
            involved_object=client.V1ObjectReference(
                kind="PersistentVolumeClaim",
                namespace=pvc.metadata.namespace,
                name=pvc.metadata.name,
                uid=pvc.metadata.uid,
                api_version="v1",
                resource_version=pvc.metadata.resource_version,
            ),
            reason=reason,
            message=message,
            type=kind,
            source=client.V1EventSource(component=self.class_of(pvc).provisioner),
            first_timestamp=None,
        )
        try:
            self.core.create_namespaced_event(pvc.metadata.namespace, body)
        except ApiException as e:
            log.warning("could not record event: %s", e.reason)

    # --- provisioning ----------------------------------------------------------------------

    def provision(self, pvc: Any) -> None:
        cls = self.class_of(pvc)
        if cls is None or pvc.spec.volume_name or pvc.metadata.deletion_timestamp:
            return
        annotations = pvc.metadata.annotations or {}
        node = annotations.get(SELECTED_NODE)
        if cls.volume_binding_mode == "WaitForFirstConsumer" and not node:
            return  # the scheduler has not picked a node yet
        ns, name = pvc.metadata.namespace, pvc.metadata.name
        self.event(pvc, "Provisioning",
                   f'External provisioner is provisioning volume for claim "{ns}/{name}"',
                   "Normal")  # fmt: skip
        try:
            pv = self.make_volume(pvc, cls, node)
        except Failed as e:
            self.event(pvc, "ProvisioningFailed",
                       f'failed to provision volume with StorageClass "{cls.metadata.name}": {e}')  # fmt: skip
            return
        try:
            self.core.create_persistent_volume(pv)
        except ApiException as e:
            if e.status != 409:
                raise
            return
        lineage = pv.metadata.annotations.get(LINEAGE_PVC)
        log.info("provisioned %s for %s/%s%s", pv.metadata.name, ns, name,
                 f" (clone of {lineage})" if lineage else "")  # fmt: skip
        self.event(pvc, "ProvisioningSucceeded",
                   f"Successfully provisioned volume {pv.metadata.name}", "Normal")  # fmt: skip

    def requirements(self, cls: Any, node: str | None) -> Any:
        if node:
            seg = self.node_topology.get(node)
            if seg is None:
                seg = segment(self.core.read_node(node).metadata.labels or {})
            if not allowed(cls, seg):
                raise Failed(f"selected node {node}'s topology {seg} is not allowed by the class")
            topologies = [seg]
        else:
            topologies = [t for t in self.topologies if allowed(cls, t)]
        req = [csi.Topology(segments=t) for t in topologies]
        return csi.TopologyRequirement(requisite=req, preferred=req)

    def make_volume(self, pvc: Any, cls: Any, node: str | None) -> client.V1PersistentVolume:
        driver = cls.provisioner
        ns = pvc.metadata.namespace
        pv_name = f"pvc-{pvc.metadata.uid}"
        size = int(parse_quantity(pvc.spec.resources.requests["storage"]))
        params = dict(cls.parameters or {})
        annotations = {PROVISIONED_BY: driver}
        fault = (pvc.metadata.annotations or {}).get(CLONE_FAULT_ANNOTATION)
        if fault:
            params["cloneFault"] = fault
        params["csi.storage.k8s.io/pvc/name"] = pvc.metadata.name
        params["csi.storage.k8s.io/pvc/namespace"] = ns
        params["csi.storage.k8s.io/pv/name"] = pv_name
        content = None
        source = pvc.spec.data_source_ref or pvc.spec.data_source
        if source is not None:
            content = self.content_source(pvc, cls, source, size, annotations)
        mode = csi.VolumeCapability.AccessMode
        access = {
            "ReadWriteOnce": mode.SINGLE_NODE_WRITER,
            "ReadOnlyMany": mode.MULTI_NODE_READER_ONLY,
            "ReadWriteMany": mode.MULTI_NODE_MULTI_WRITER,
            "ReadWriteOncePod": mode.SINGLE_NODE_SINGLE_WRITER,
        }
        request = csi.CreateVolumeRequest(
            name=pv_name,
            capacity_range=csi.CapacityRange(required_bytes=size),
            volume_capabilities=[
                csi.VolumeCapability(
                    mount=csi.VolumeCapability.MountVolume(),
                    access_mode=mode(mode=access.get(m, mode.SINGLE_NODE_WRITER)),
                )
                for m in pvc.spec.access_modes or ["ReadWriteOnce"]
            ],
            parameters=params,
            volume_content_source=content,
            accessibility_requirements=self.requirements(cls, node),
        )
        try:
            volume = (
                self.drivers.controller(driver).CreateVolume(request, timeout=CALL_TIMEOUT_S).volume
            )
        except grpc.RpcError as e:
            raise Failed(grpc_message(e)) from None
        terms = [
            client.V1NodeSelectorTerm(match_expressions=[
                client.V1NodeSelectorRequirement(key=k, operator="In", values=[v])
                for k, v in sorted(t.segments.items())
            ])
            for t in volume.accessible_topology
        ]  # fmt: skip
        return client.V1PersistentVolume(
            metadata=client.V1ObjectMeta(name=pv_name, annotations=annotations),
            spec=client.V1PersistentVolumeSpec(
                capacity={"storage": quantity(volume.capacity_bytes or size)},
                access_modes=pvc.spec.access_modes,
                volume_mode=pvc.spec.volume_mode,
                storage_class_name=cls.metadata.name,
                persistent_volume_reclaim_policy=cls.reclaim_policy or "Delete",
                mount_options=cls.mount_options,
                csi=client.V1CSIPersistentVolumeSource(
                    driver=driver,
                    volume_handle=volume.volume_id,
                    volume_attributes={
                        **dict(volume.volume_context),
                        "storage.kubernetes.io/csiProvisionerIdentity": IDENTITY,
                    },
                ),
                node_affinity=client.V1VolumeNodeAffinity(
                    required=client.V1NodeSelector(node_selector_terms=terms)
                ) if terms else None,
                claim_ref=client.V1ObjectReference(
                    kind="PersistentVolumeClaim",
                    namespace=ns,
                    name=pvc.metadata.name,
                    uid=pvc.metadata.uid,
                    api_version="v1",
                ),
            ),
        )  # fmt: skip

    def content_source(self, pvc: Any, cls: Any, source: Any, size: int,
                       annotations: dict[str, str]) -> Any:  # fmt: skip
        """The VolumeContentSource of a clone or a restore, checked as the external-provisioner
        checks it (its messages)."""
        caps = self.drivers.capabilities(cls.provisioner)
        rpc = csi.ControllerServiceCapability.RPC
        ns = pvc.metadata.namespace
        if source.kind == "PersistentVolumeClaim":
            if rpc.CLONE_VOLUME not in caps:
                raise Failed("CSI driver does not support clone operations: "
                             "controller CLONE_VOLUME capability is not reported")  # fmt: skip
            try:
                src = self.core.read_namespaced_persistent_volume_claim(source.name, ns)
            except ApiException as e:
                raise Failed(f'error getting PVC {source.name} (namespace "{ns}") from api server: '
                             f"{e.reason}") from None  # fmt: skip
            if src.status.phase != "Bound":
                raise Failed(f"the PVC DataSource {source.name} must have a status of Bound.  "
                             f"Got {src.status.phase}")  # fmt: skip
            if src.metadata.deletion_timestamp:
                raise Failed(f"the PVC DataSource {source.name} is currently being deleted")
            if src.spec.storage_class_name != pvc.spec.storage_class_name:
                raise Failed(
                    "the source PVC and destination PVCs must be in the same storage class for "
                    f"cloning.  Source is in {src.spec.storage_class_name}, but new PVC is in "
                    f"{pvc.spec.storage_class_name}"
                )
            src_size = int(parse_quantity(src.spec.resources.requests["storage"]))
            if size < src_size:
                raise Failed(
                    "error, new PVC request must be greater than or equal in size to the "
                    f"specified PVC data source, requested {size} but source is {src_size}"
                )
            src_pv = self.core.read_persistent_volume(src.spec.volume_name)
            if src_pv.spec.csi is None or src_pv.spec.csi.driver != cls.provisioner:
                raise Failed(f"the source PVC ({source.name}) is not provisioned by the same "
                             f"CSI driver ({cls.provisioner})")  # fmt: skip
            annotations[LINEAGE_PVC] = f"{ns}/{source.name}"
            annotations[LINEAGE_PVC_UID] = src.metadata.uid
            annotations[LINEAGE_PV] = src.spec.volume_name
            return csi.VolumeContentSource(volume=csi.VolumeContentSource.VolumeSource(
                volume_id=src_pv.spec.csi.volume_handle))  # fmt: skip
        if (
            source.kind == "VolumeSnapshot"
            and (source.api_group or "") == "snapshot.storage.k8s.io"
        ):
            if rpc.CREATE_DELETE_SNAPSHOT not in caps:
                raise Failed("CSI driver does not support snapshot restore: "
                             "controller CREATE_DELETE_SNAPSHOT capability is not reported")  # fmt: skip
            try:
                snap = self.custom.get_namespaced_custom_object(
                    "snapshot.storage.k8s.io", "v1", ns, "volumesnapshots", source.name
                )
            except ApiException as e:
                raise Failed(
                    f"error getting snapshot {source.name} from api server: {e.reason}"
                ) from None
            status = snap.get("status") or {}
            if not status.get("readyToUse"):
                raise Failed(f"snapshot {source.name} is not Ready")
            content = self.custom.get_cluster_custom_object(
                "snapshot.storage.k8s.io", "v1", "volumesnapshotcontents",
                status["boundVolumeSnapshotContentName"])  # fmt: skip
            if content["spec"]["driver"] != cls.provisioner:
                raise Failed(f"snapshot {source.name}'s driver {content['spec']['driver']} "
                             f"is not the class's {cls.provisioner}")  # fmt: skip
            handle = (content.get("status") or {}).get("snapshotHandle")
            if not handle:
                raise Failed(f"snapshot handle {source.name} is not available")
            restore = status.get("restoreSize")
            if restore and size < int(parse_quantity(restore)):
                raise Failed(f"requested volume size {size} is less than the size "
                             f"{restore} for the source snapshot {source.name}")  # fmt: skip
            return csi.VolumeContentSource(snapshot=csi.VolumeContentSource.SnapshotSource(
                snapshot_id=handle))  # fmt: skip
        raise Failed(f"unsupported dataSource kind {source.kind}")

    # --- deletion --------------------------------------------------------------------------

    def ours_released(self, pv: Any) -> bool:
        annotations = pv.metadata.annotations or {}
        return (
            annotations.get(PROVISIONED_BY) in self.drivers.names()
            and pv.status.phase == "Released"
            and pv.spec.persistent_volume_reclaim_policy == "Delete"
            and pv.spec.csi is not None
        )

    def reclaim(self, pv: Any) -> None:
        driver = pv.metadata.annotations[PROVISIONED_BY]
        self.drivers.controller(driver).DeleteVolume(
            csi.DeleteVolumeRequest(volume_id=pv.spec.csi.volume_handle), timeout=CALL_TIMEOUT_S
        )
        try:
            self.core.delete_persistent_volume(pv.metadata.name)
        except ApiException as e:
            if e.status != 404:
                raise
        log.info("deleted released volume %s", pv.metadata.name)

    def submit_reclaim(self, pv: Any) -> None:
        """Reclaim in its own pool: a thousand released volumes must not hold up new claims."""
        if not self.ours_released(pv):
            return
        key = f"pv/{pv.metadata.name}"
        with self.lock:
            if key in self.in_flight:
                return
            self.in_flight.add(key)
        self.reclaim_pool.submit(self._reclaim, pv, key)

    def _reclaim(self, pv: Any, key: str) -> None:
        try:
            self.reclaim(pv)
        except Exception as e:  # keep serving: the resync tries again
            log.warning("%s: error: %r", pv.metadata.name, e)
        finally:
            with self.lock:
                self.in_flight.discard(key)

    # --- the loop --------------------------------------------------------------------------

    def resync(self) -> str:
        self.classes = {c.metadata.name: c for c in self.storage.list_storage_class().items}
        nodes = self.core.list_node().items
        self.node_topology = {n.metadata.name: segment(n.metadata.labels or {}) for n in nodes}
        seen = {tuple(sorted(s.items())) for s in self.node_topology.values() if s}
        self.topologies = [dict(t) for t in sorted(seen)]
        claims = self.core.list_persistent_volume_claim_for_all_namespaces()
        for pvc in claims.items:
            self.submit(pvc)
        for pv in self.core.list_persistent_volume().items:
            self.submit_reclaim(pv)
        return str(claims.metadata.resource_version)

    def run(self) -> None:
        while True:
            try:
                rv = self.resync()
                stream = watch.Watch().stream(
                    self.core.list_persistent_volume_claim_for_all_namespaces,
                    resource_version=rv,
                    timeout_seconds=3,
                )
                for event in stream:
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self.submit(event["object"])
            except ApiException as e:
                log.warning("API error: %s %s", e.status, e.reason)
                time.sleep(1)
            except Exception as e:  # keep serving: a test cluster must not lose its storage
                log.warning("error: %r", e)
                time.sleep(1)


# The external-provisioner stamps its PVs with its identity (start time and a random part).
IDENTITY = f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:4]}-cloning.dev"


def main() -> int:
    parser = argparse.ArgumentParser(description="the external-provisioner's part")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--socket-dir", required=True, type=Path, help="the drivers' sockets")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    config.load_kube_config(args.kubeconfig)
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = WORKERS + RECLAIM_WORKERS + 2  # and the watch
    client.Configuration.set_default(configuration)
    Provisioner(
        client.CoreV1Api(),
        client.StorageV1Api(),
        client.CustomObjectsApi(),
        Drivers(args.socket_dir),
    ).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
