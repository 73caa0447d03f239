"""Test volume provisioner: the local cluster's stand-in for a CSI driver.

kwok simulates kubelets, not storage, so the local cluster has no CSI driver.
This small external provisioner does what a cloning-capable CSI driver plus
external-provisioner would do, for PVCs of the `clone-test` StorageClass:

* a new PVC gets a PersistentVolume (a hostPath directory on this machine,
  under $CLONE_OPERATOR_CACHE/kwok/volumes), pre-bound to the claim so the
  PV controller in kube-controller-manager binds them;
* a PVC whose `dataSource` is another PVC (the CSI-clone shape) is provisioned
  only once that source is Bound and no larger than the request, exactly as
  the CSI spec requires; the source directory's files are copied and the
  lineage is recorded on the new PV:
    cloning.dev/cloned-from-pvc      <namespace>/<source pvc>
    cloning.dev/cloned-from-pvc-uid  <source pvc uid>
    cloning.dev/cloned-from-pv       <source pv>
* a Released PV with reclaimPolicy Delete is deleted with its directory.

Claims are provisioned in parallel (a bounded thread pool, one worker per claim
at a time), as a CSI driver serves many volumes at once: a thousand clones must
not wait for each other. A clone's files are copied into a scratch directory and
renamed into place, so a PersistentVolume is created only over a complete copy
(also when the provisioner was stopped halfway).

Problems are reported as Events on the claim (ProvisioningFailed), as the
real external-provisioner does. Run by tests/cluster/localcluster.py.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.utils.quantity import parse_quantity

PROVISIONER_NAME = "cloning.dev/test-provisioner"
STORAGE_CLASS = "clone-test"
LINEAGE_PVC = "cloning.dev/cloned-from-pvc"
LINEAGE_PVC_UID = "cloning.dev/cloned-from-pvc-uid"
LINEAGE_PV = "cloning.dev/cloned-from-pv"
WORKERS = 16  # claims provisioned at once

log = logging.getLogger("provisioner")


class Provisioner:
    def __init__(self, core: client.CoreV1Api, root: Path) -> None:
        self.core = core
        self.root = root
        self.reported: set[tuple[str, str]] = set()
        self.pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="provision")
        self.lock = threading.Lock()
        self.in_flight: set[str] = set()  # claim uids and pv/<name>: one worker each at most

    def submit(self, pvc: Any) -> None:
        """Provision a claim in the pool; a claim a worker has already is skipped (the
        periodic resync brings back whatever that worker left waiting)."""
        if not self.ours(pvc) or pvc.spec.volume_name or pvc.metadata.deletion_timestamp:
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

    def ours(self, pvc: Any) -> bool:
        return bool(pvc.spec.storage_class_name == STORAGE_CLASS)

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
            ),
            reason=reason,
            message=message,
            type=kind,
            source=client.V1EventSource(component=PROVISIONER_NAME),
            first_timestamp=None,
        )
        try:
            self.core.create_namespaced_event(pvc.metadata.namespace, body)
        except ApiException as e:
            log.warning("could not record event: %s", e.reason)

    def provision(self, pvc: Any) -> None:
        if not self.ours(pvc) or pvc.spec.volume_name or pvc.metadata.deletion_timestamp:
            return
        ns, name = pvc.metadata.namespace, pvc.metadata.name
        pv_name = f"pvc-{pvc.metadata.uid}"
        request = pvc.spec.resources.requests["storage"]
        annotations = {"pv.kubernetes.io/provisioned-by": PROVISIONER_NAME}
        source_dir: Path | None = None
        source = pvc.spec.data_source_ref or pvc.spec.data_source
        if source is not None:
            if source.kind != "PersistentVolumeClaim":
                self.event(pvc, "ProvisioningFailed", f"unsupported dataSource kind {source.kind}")
                return
            try:
                src = self.core.read_namespaced_persistent_volume_claim(source.name, ns)
            except ApiException as e:
                if e.status == 404:
                    self.event(
                        pvc, "ProvisioningFailed", f"source PVC {ns}/{source.name} not found"
                    )
                    return
                raise
            if src.status.phase != "Bound" or not src.spec.volume_name:
                self.event(
                    pvc,
                    "Provisioning",
                    f"waiting for source PVC {source.name} to be Bound",
                    "Normal",
                )
                return
            src_size = parse_quantity(src.status.capacity["storage"])
            if parse_quantity(request) < src_size:
                self.event(
                    pvc,
                    "ProvisioningFailed",
                    f"requested {request} is smaller than the source {source.name}'s "
                    f"{src.status.capacity['storage']}",
                )
                return
            annotations[LINEAGE_PVC] = f"{ns}/{source.name}"
            annotations[LINEAGE_PVC_UID] = src.metadata.uid
            annotations[LINEAGE_PV] = src.spec.volume_name
            source_dir = self.root / src.spec.volume_name
        path = self.root / pv_name
        if source_dir is not None and source_dir.exists() and not path.exists():
            scratch = self.root / f".{pv_name}.{uuid.uuid4().hex[:8]}"
            shutil.copytree(source_dir, scratch)
            scratch.rename(path)  # the whole copy, or none of it
        path.mkdir(parents=True, exist_ok=True)
        pv = client.V1PersistentVolume(
            metadata=client.V1ObjectMeta(name=pv_name, annotations=annotations),
            spec=client.V1PersistentVolumeSpec(
                capacity={"storage": request},
                access_modes=pvc.spec.access_modes,
                volume_mode=pvc.spec.volume_mode,
                storage_class_name=STORAGE_CLASS,
                persistent_volume_reclaim_policy="Delete",
                host_path=client.V1HostPathVolumeSource(path=str(path), type="DirectoryOrCreate"),
                claim_ref=client.V1ObjectReference(
                    kind="PersistentVolumeClaim",
                    namespace=ns,
                    name=name,
                    uid=pvc.metadata.uid,
                    api_version="v1",
                ),
            ),
        )
        try:
            self.core.create_persistent_volume(pv)
        except ApiException as e:
            if e.status != 409:
                raise
            return
        log.info(
            "provisioned %s for %s/%s%s",
            pv_name,
            ns,
            name,
            f" (clone of {annotations[LINEAGE_PVC]})" if LINEAGE_PVC in annotations else "",
        )
        self.event(pvc, "ProvisioningSucceeded", f"provisioned volume {pv_name}", "Normal")

    def reclaim(self, pv: Any) -> None:
        annotations = pv.metadata.annotations or {}
        if annotations.get("pv.kubernetes.io/provisioned-by") != PROVISIONER_NAME:
            return
        if pv.status.phase != "Released" or pv.spec.persistent_volume_reclaim_policy != "Delete":
            return
        try:
            self.core.delete_persistent_volume(pv.metadata.name)
        except ApiException as e:
            if e.status != 404:
                raise
        shutil.rmtree(self.root / pv.metadata.name, ignore_errors=True)
        log.info("deleted released volume %s", pv.metadata.name)

    def resync(self) -> str:
        claims = self.core.list_persistent_volume_claim_for_all_namespaces()
        for pvc in claims.items:
            self.submit(pvc)
        for pv in self.core.list_persistent_volume().items:
            self.submit_reclaim(pv)
        return str(claims.metadata.resource_version)

    def submit_reclaim(self, pv: Any) -> None:
        """Reclaim in the pool too: a thousand released volumes must not hold up new claims."""
        annotations = pv.metadata.annotations or {}
        if annotations.get("pv.kubernetes.io/provisioned-by") != PROVISIONER_NAME:
            return
        if pv.status.phase != "Released":
            return
        key = f"pv/{pv.metadata.name}"
        with self.lock:
            if key in self.in_flight:
                return
            self.in_flight.add(key)
        self.pool.submit(self._reclaim, pv, key)

    def _reclaim(self, pv: Any, key: str) -> None:
        try:
            self.reclaim(pv)
        except Exception as e:  # keep serving: the resync tries again
            log.warning("%s: error: %r", pv.metadata.name, e)
        finally:
            with self.lock:
                self.in_flight.discard(key)

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


def main() -> int:
    parser = argparse.ArgumentParser(description="test volume provisioner")
    parser.add_argument("--kubeconfig", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    config.load_kube_config(args.kubeconfig)
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = WORKERS + 2  # the workers and the watch
    client.Configuration.set_default(configuration)
    root = Path(
        os.environ.get("CLONE_OPERATOR_VOLUMES", Path(args.kubeconfig).parents[2] / "volumes")
    )
    root.mkdir(parents=True, exist_ok=True)
    Provisioner(client.CoreV1Api(), root).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
