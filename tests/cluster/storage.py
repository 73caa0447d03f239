"""The local cluster's storage: what `make cluster` starts and registers beside the control plane.

- the snapshot CRDs of external-snapshotter's client module (VolumeSnapshot,
  -Class, -Content and the VolumeGroupSnapshot kinds), as released;
- two CSI drivers served by one Python process (csidriver.py): `disk.csi.cloning.dev`
  clones, snapshots and takes group snapshots; `basic-disk.csi.cloning.dev` only
  snapshots (the many real drivers that cannot clone);
- the harness that plays the external-provisioner (provisioner.py);
- the real snapshot-controller, and one real csi-snapshotter per driver;
- the CSIDriver objects (attachRequired: false: no external-attacher here), the
  StorageClasses, VolumeSnapshotClasses and a VolumeGroupSnapshotClass below.

docs/development/storage.md says what each class is for. Processes are host
processes with pid files under the cluster's workdir, like the control plane's.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.cluster import realnode

HERE = Path(__file__).resolve().parent
DISK = "disk.csi.cloning.dev"
BASIC_DISK = "basic-disk.csi.cloning.dev"
DRIVERS = (DISK, BASIC_DISK)

# The default class: regional, so that a clone works in any zone of its source's region
# (the operator places clones by region, not zone) and fails across regions, as on a
# cloud; Immediate, so that a claim binds without a consumer (a CloneObject's PVC clone
# waits for Bound with no pod); in us-east-1, the first region, where the real node is.
DEFAULT_CLASS = "clone-test"
ZONAL_CLASS = "clone-test-zonal"
SNAPSHOT_ONLY_CLASS = "clone-test-snapshot-only"
THROTTLED_CLASS = "clone-test-throttled"
SNAPSHOT_CLASS = "clone-test-snapshots"
GLOBAL_SNAPSHOT_CLASS = "clone-test-global-snapshots"
SNAPSHOT_ONLY_SNAPSHOT_CLASS = "clone-test-snapshot-only-snapshots"
GROUP_SNAPSHOT_CLASS = "clone-test-group-snapshots"
THROTTLED_RATE = "1Mi"  # bytes per second

SNAPSHOT_API = "snapshot.storage.k8s.io/v1"
GROUP_SNAPSHOT_API = "groupsnapshot.storage.k8s.io/v1"


@dataclass(frozen=True)
class StoragePaths:
    workdir: Path
    kubeconfig: Path
    snapshotter_bin: Path
    kubelet_dir: Path  # the real node's kubelet root: its plugins_registry
    # The second real node's kubelet root, when it is asked for: a node plugin of its own
    # (the same volumes, its own region and zone) registers there.
    west_kubelet_dir: Path | None = None

    @property
    def volumes(self) -> Path:
        return self.workdir / "volumes"

    @property
    def sockets(self) -> Path:
        return self.workdir / "csi"

    def pidfile(self, daemon: str) -> Path:
        return self.workdir / f"{daemon}.pid"

    def log(self, daemon: str) -> Path:
        return self.workdir / f"{daemon}.log"


def storage_class(name: str, driver: str, parameters: dict[str, str], binding: str,
                  default: bool = False) -> dict[str, object]:  # fmt: skip
    annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name, "annotations": annotations},
        "provisioner": driver,
        "parameters": parameters,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": binding,
        "allowVolumeExpansion": False,
    }


def snapshot_class(name: str, driver: str, parameters: dict[str, str], default: bool,
                   api: str = SNAPSHOT_API, kind: str = "VolumeSnapshotClass") -> dict[str, object]:  # fmt: skip
    key = "groupsnapshot" if kind.startswith("VolumeGroup") else "snapshot"
    annotations = {f"{key}.storage.kubernetes.io/is-default-class": "true"} if default else {}
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": name, "annotations": annotations},
        "driver": driver,
        "parameters": parameters,
        "deletionPolicy": "Delete",
    }


def csi_driver(name: str) -> dict[str, object]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "CSIDriver",
        "metadata": {"name": name},
        "spec": {
            "attachRequired": False,
            "podInfoOnMount": False,
            "volumeLifecycleModes": ["Persistent"],
            # The kubelet applies a pod's fsGroup to the volume's files, as for a new disk.
            "fsGroupPolicy": "File",
            "storageCapacity": False,
            "requiresRepublish": False,
        },
    }


def storage_classes() -> list[dict[str, object]]:
    regional = {"topology": "regional"}
    return [
        storage_class(DEFAULT_CLASS, DISK, regional, "Immediate", default=True),
        storage_class(ZONAL_CLASS, DISK, {"topology": "zonal"}, "WaitForFirstConsumer"),
        storage_class(SNAPSHOT_ONLY_CLASS, BASIC_DISK, regional, "Immediate"),
        storage_class(THROTTLED_CLASS, DISK, {**regional, "copyRate": THROTTLED_RATE}, "Immediate"),
    ]


def snapshot_classes() -> list[dict[str, object]]:
    return [
        snapshot_class(SNAPSHOT_CLASS, DISK, {"snapshotScope": "regional"}, default=True),
        snapshot_class(GLOBAL_SNAPSHOT_CLASS, DISK, {"snapshotScope": "global"}, default=False),
        snapshot_class(
            SNAPSHOT_ONLY_SNAPSHOT_CLASS, BASIC_DISK, {"snapshotScope": "regional"}, default=True
        ),
        snapshot_class(
            GROUP_SNAPSHOT_CLASS,
            DISK,
            {"snapshotScope": "regional"},
            default=True,
            api=GROUP_SNAPSHOT_API,
            kind="VolumeGroupSnapshotClass",
        ),
    ]


def crd_files(sp: StoragePaths) -> list[Path]:
    return sorted((sp.snapshotter_bin / "crd").glob("*.storage.k8s.io_*.yaml"))


Kubectl = Callable[..., str]


def apply_objects(sp: StoragePaths, kubectl: Kubectl) -> None:
    """The snapshot CRDs, then the CSIDrivers and classes. A class whose immutable fields
    changed since the cluster was made (or the hostPath provisioner's old default) is
    recreated."""
    for f in crd_files(sp):
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(f))
    kubectl("wait", "--for=condition=established", "--timeout=60s",
            *(f"crd/{f.name.split('_', 1)[1].removesuffix('.yaml')}.{f.name.split('_')[0]}"
              for f in crd_files(sp)))  # fmt: skip
    for cls in storage_classes():
        name = cls["metadata"]["name"]  # type: ignore[index]
        out = kubectl("get", "storageclass", name, "-o", "json", "--ignore-not-found")
        if out.strip():
            have = json.loads(out)
            if (
                any(have.get(k) != cls[k] for k in ("provisioner", "volumeBindingMode"))
                or (have.get("parameters") or {}) != cls["parameters"]
            ):
                kubectl("delete", "storageclass", name)
    items = [*(csi_driver(d) for d in DRIVERS), *storage_classes(), *snapshot_classes()]
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
            stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))  # fmt: skip


def daemons(sp: StoragePaths) -> dict[str, list[str]]:
    """Every storage process, in start order, by name."""
    py = sys.executable
    kc = str(sp.kubeconfig)
    retry = ["--retry-interval-start=1s", "--retry-interval-max=10s"]
    out = {
        "csi-driver": [
            py, str(HERE / "csidriver.py"), "--root", str(sp.volumes),
            "--socket-dir", str(sp.sockets), "--kubeconfig", kc,
            "--node-id", realnode.NODE_NAME, "--region", realnode.REGION,
            "--zone", realnode.ZONE, "--kubelet-dir", str(sp.kubelet_dir),
        ],
        "csi-provisioner": [
            py, str(HERE / "provisioner.py"), "--kubeconfig", kc, "--socket-dir", str(sp.sockets),
        ],
        "snapshot-controller": [
            str(sp.snapshotter_bin / "snapshot-controller"), f"--kubeconfig={kc}",
            "--leader-election=false", *retry,
        ],
    }  # fmt: skip
    if sp.west_kubelet_dir is not None:
        west = realnode.WEST
        out["csi-node-west"] = [
            py, str(HERE / "csidriver.py"), "--root", str(sp.volumes),
            "--socket-dir", str(sp.sockets / "west"), "--node-id", west.name,
            "--region", west.region, "--zone", west.zone,
            "--kubelet-dir", str(sp.west_kubelet_dir),
        ]  # fmt: skip
    for d in DRIVERS:
        out[f"csi-snapshotter-{d.split('.')[0]}"] = [
            str(sp.snapshotter_bin / "csi-snapshotter"), f"--kubeconfig={kc}",
            f"--csi-address={sp.sockets / d}.sock", "--leader-election=false",
            "--extra-create-metadata", "--timeout=30s", *retry,
        ]  # fmt: skip
    return out


def up(sp: StoragePaths, kubectl: Kubectl) -> None:
    """Register the storage objects and start whatever storage process is not running.

    A csi-snapshotter exits when it loses its driver (in a pod, it would be restarted
    beside it): a driver started anew gets new sidecars too."""
    stop_legacy(sp)
    apply_objects(sp, kubectl)
    sp.volumes.mkdir(parents=True, exist_ok=True)
    if not realnode._alive(sp.pidfile("csi-driver")):
        stop(sp, [name for name in daemons(sp) if name.startswith("csi-snapshotter-")])
    for name, argv in daemons(sp).items():
        if realnode._alive(sp.pidfile(name)):
            continue
        pid = realnode.spawn(argv, sp.log(name))
        sp.pidfile(name).write_text(str(pid))
        if name == "csi-driver":
            realnode._wait(
                "the CSI driver's sockets",
                lambda: (
                    all((sp.sockets / f"{d}.sock").exists() for d in DRIVERS)
                    and realnode._alive(sp.pidfile("csi-driver")) is not None
                ),
                30,
                sp.log(name),
            )


def stop_legacy(sp: StoragePaths) -> None:
    """The hostPath provisioner of clusters made before the CSI drivers (provisioner.pid)
    would race the new one for `clone-test` claims: it goes."""
    legacy = sp.workdir / "provisioner.pid"
    pid = realnode._alive(legacy)
    if pid:
        os.kill(pid, signal.SIGTERM)
    legacy.unlink(missing_ok=True)


def running(sp: StoragePaths) -> bool:
    return all(realnode._alive(sp.pidfile(name)) for name in daemons(sp))


def down(sp: StoragePaths) -> None:
    """Stop every storage process and delete every volume, snapshot and socket."""
    stop(sp)
    shutil.rmtree(sp.volumes, ignore_errors=True)
    shutil.rmtree(sp.sockets, ignore_errors=True)


def stop(sp: StoragePaths, names: list[str] | None = None) -> None:
    """Stop every storage process, or those named (volumes and records stay)."""
    every = [*daemons(sp), *(["csi-node-west"] if sp.west_kubelet_dir is None else [])]
    for name in reversed(names if names is not None else every):
        pid = realnode._alive(sp.pidfile(name))
        if pid:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and realnode._alive(sp.pidfile(name)):
                time.sleep(0.1)
            if realnode._alive(sp.pidfile(name)):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        sp.pidfile(name).unlink(missing_ok=True)
