"""The local cluster's storage: a CSI driver that behaves like a cloud's disks.

One process serves the CSI gRPC services (Identity, Controller, GroupController,
Node) of one or more drivers, each on its own unix socket, and registers each
with the real node's kubelet through its plugin registration socket (when that
kubelet runs). A volume is a directory on this machine; what makes it cloud-like
is what the driver refuses and how long it takes:

* topology: a volume lives in one zone (`topology: zonal`) or spans the zones
  of one region (`topology: regional`), and says so in its accessible
  topology, which becomes the PV's node affinity. A clone is made only where
  its source lives (its zone, or its region); a restore from a snapshot only in
  the snapshot's region (`snapshotScope: regional`, like EBS) or anywhere
  (`global`, like GCE).
* capabilities: a driver reports CLONE_VOLUME or not, group snapshots or not
  (`Driver`), as real drivers do; the provisioner refuses what is not reported.
* time: data is copied at once (a consistent point in time), but the volume
  or snapshot is ready only after its bytes / `copyRate` seconds (a parameter
  of the StorageClass or VolumeSnapshotClass, e.g. `20Mi`: per second).
* faults on demand: `cloneFault` (StorageClass) / `snapshotFault`
  (VolumeSnapshotClass) = `slow` (ready after `faultDelaySeconds` more,
  default 30), `fail` (every call fails), `never-ready` (never ready). The
  provisioner passes a PVC's `storage.cloning.dev/clone-fault` annotation, and
  the driver reads a VolumeSnapshot's `storage.cloning.dev/snapshot-fault`
  annotation (through the API, from csi-snapshotter's extra create metadata).

State survives a restart: every volume, snapshot and group snapshot is a JSON
file beside its data under the root directory.

Node service: NodePublishVolume bind-mounts the volume's directory onto the
kubelet's target path (no staging, no attach: the CSIDriver says
attachRequired: false).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent import futures
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc

if __package__ in (None, ""):  # run as a script: tests/cluster/csidriver.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.cluster import csistubs

csi = csistubs.load("csi_pb2")
csi_grpc = csistubs.load("csi_pb2_grpc")
reg = csistubs.load("pluginregistration_pb2")
reg_grpc = csistubs.load("pluginregistration_pb2_grpc")

log = logging.getLogger("csidriver")

REGION_KEY = "topology.kubernetes.io/region"
ZONE_KEY = "topology.kubernetes.io/zone"
VERSION = "0.1.0"
DEFAULT_SIZE = 1 << 30
SNAPSHOT_FAULT_ANNOTATION = "storage.cloning.dev/snapshot-fault"
FAULTS = ("slow", "fail", "never-ready")


@dataclass(frozen=True)
class Driver:
    """One CSI driver's identity and what it can do."""

    name: str
    clone: bool
    group_snapshots: bool


# The drivers the local cluster serves (tests/cluster/storage.md says which class uses which).
DISK = Driver("disk.csi.cloning.dev", clone=True, group_snapshots=True)
BASIC_DISK = Driver("basic-disk.csi.cloning.dev", clone=False, group_snapshots=False)
DRIVERS = {d.name: d for d in (DISK, BASIC_DISK)}


class Fail(Exception):
    """A CSI error: its gRPC code and message reach the caller."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def require(value: object, what: str) -> None:
    if not value:
        raise Fail(grpc.StatusCode.INVALID_ARGUMENT, f"{what} is required")


def parse_rate(text: str) -> float:
    """`20Mi` → bytes per second (Kubernetes quantity suffixes); empty: unlimited."""
    if not text:
        return 0.0
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "k": 1e3, "M": 1e6, "G": 1e9}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def tree_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / f).lstat().st_size
    return total


@dataclass
class Record:
    """A volume, snapshot or group snapshot, as stored beside its data."""

    kind: str  # volume | snapshot | group
    id: str
    name: str
    driver: str
    size: int = 0
    topology: dict[str, str] = field(default_factory=dict)  # where it lives
    parameters: dict[str, str] = field(default_factory=dict)
    source_volume: str = ""
    source_snapshot: str = ""
    group: str = ""
    members: list[str] = field(default_factory=list)  # a group's snapshot ids
    created: float = 0.0
    ready_at: float = 0.0  # 0: never (the never-ready fault)
    fault: str = ""

    def ready(self) -> bool:
        return self.ready_at != 0.0 and time.time() >= self.ready_at


class Store:
    """Every driver's records and data under one root: <root>/<id>/ and <root>/.csi/<id>.json."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.meta = root / ".csi"
        self.meta.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.records: dict[str, Record] = {}
        for f in self.meta.glob("*.json"):
            with contextlib.suppress(ValueError, TypeError):
                r = Record(**json.loads(f.read_text()))
                self.records[r.id] = r

    def data(self, rid: str) -> Path:
        return self.root / rid

    def save(self, r: Record) -> None:
        tmp = self.meta / f".{r.id}.tmp"
        tmp.write_text(json.dumps(asdict(r)))
        tmp.rename(self.meta / f"{r.id}.json")
        self.records[r.id] = r

    def remove(self, rid: str) -> None:
        self.records.pop(rid, None)
        (self.meta / f"{rid}.json").unlink(missing_ok=True)
        shutil.rmtree(self.data(rid), ignore_errors=True)

    def find(self, kind: str, driver: str, name: str) -> Record | None:
        for r in self.records.values():
            if (r.kind, r.driver, r.name) == (kind, driver, name):
                return r
        return None

    def get(self, kind: str, driver: str, rid: str) -> Record | None:
        r = self.records.get(rid)
        if r is None:  # made by another process on the same root (a second node's plugin)
            with contextlib.suppress(OSError, ValueError, TypeError):
                r = Record(**json.loads((self.meta / f"{rid}.json").read_text()))
        return r if r is not None and (r.kind, r.driver) == (kind, driver) else None

    def copy(self, source: Path, rid: str) -> int:
        """Copy a directory tree at once (the point in time); returns its bytes."""
        scratch = self.root / f".{rid}.{uuid.uuid4().hex[:8]}"
        if source.exists():
            shutil.copytree(source, scratch, symlinks=True)
        else:
            scratch.mkdir(parents=True)
        scratch.chmod(0o777)
        scratch.rename(self.data(rid))
        return tree_size(self.data(rid))


def ready_at(now: float, size: int, parameters: dict[str, str], fault: str) -> float:
    """When a copy of `size` bytes is ready: after size / copyRate, plus a slow fault's delay;
    0 for a copy that never becomes ready."""
    if fault == "never-ready":
        return 0.0
    rate = parse_rate(parameters.get("copyRate", ""))
    at = now + (size / rate if rate else 0.0)
    if fault == "slow":
        at += float(parameters.get("faultDelaySeconds", "30"))
    return at


def fault_of(parameters: dict[str, str], key: str) -> str:
    fault = parameters.get(key, "")
    if fault and fault not in FAULTS:
        raise Fail(grpc.StatusCode.INVALID_ARGUMENT, f"{key} {fault!r}: one of {', '.join(FAULTS)}")
    return fault


def segments(req: Any) -> list[dict[str, str]]:
    """The candidate topologies of a TopologyRequirement: preferred first, then requisite."""
    out: list[dict[str, str]] = []
    if req is None:
        return out
    for t in [*req.preferred, *req.requisite]:
        seg = dict(t.segments)
        if seg not in out:
            out.append(seg)
    return out


def describe(topology: dict[str, str]) -> str:
    return topology.get(ZONE_KEY) or topology.get(REGION_KEY) or "anywhere"


class Controller:
    """The controller, group controller and identity services of one driver."""

    def __init__(self, driver: Driver, store: Store, home: dict[str, str], api: Any) -> None:
        self.driver = driver
        self.store = store
        self.home = home  # where volumes go when the caller names no topology
        self.api = api  # a CoreV1Api-like client for VolumeSnapshot annotations, or None

    # --- placement -------------------------------------------------------------------------

    def place(self, kind: str, candidates: list[dict[str, str]]) -> dict[str, str]:
        """The first candidate, reduced to a zone (with its region) or a region."""
        for seg in candidates or [self.home]:
            if kind == "zonal" and ZONE_KEY in seg:
                return {k: seg[k] for k in (REGION_KEY, ZONE_KEY) if k in seg}
            if kind == "regional" and REGION_KEY in seg:
                return {REGION_KEY: seg[REGION_KEY]}
        raise Fail(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"no {kind} topology in the accessibility requirements {candidates}",
        )

    @staticmethod
    def within(where: dict[str, str], candidates: list[dict[str, str]]) -> list[dict[str, str]]:
        """The candidates inside `where` (every key of `where` matches)."""
        if not candidates:
            return [where]
        return [c for c in candidates if all(c.get(k, v) == v for k, v in where.items())]

    # --- volumes ---------------------------------------------------------------------------

    def create_volume(self, req: Any) -> Any:
        require(req.name, "name")
        require(len(req.volume_capabilities), "volume_capabilities")
        self.check_capabilities(req.volume_capabilities)
        params = dict(req.parameters)
        kind = params.get("topology", "zonal")
        if kind not in ("zonal", "regional"):
            raise Fail(grpc.StatusCode.INVALID_ARGUMENT, f"topology {kind!r}: zonal or regional")
        size = req.capacity_range.required_bytes or req.capacity_range.limit_bytes or DEFAULT_SIZE
        if req.capacity_range.limit_bytes and size > req.capacity_range.limit_bytes:
            raise Fail(grpc.StatusCode.OUT_OF_RANGE, "required_bytes exceeds limit_bytes")
        source = req.volume_content_source if req.HasField("volume_content_source") else None
        with self.store.lock:
            existing = self.store.find("volume", self.driver.name, req.name)
            if existing is not None:
                return self.existing_volume(existing, req, size, source)
            candidates = segments(
                req.accessibility_requirements if req.HasField("accessibility_requirements")
                else None
            )  # fmt: skip
            fault = fault_of(params, "cloneFault") if source is not None else ""
            if fault == "fail":
                raise Fail(
                    grpc.StatusCode.INTERNAL, "injected fault (cloneFault: fail): copy failed"
                )
            rid = f"vol-{uuid.uuid4().hex[:16]}"
            now = time.time()
            record = Record("volume", rid, req.name, self.driver.name, size=size,
                            parameters=params, created=now, ready_at=now)  # fmt: skip
            if source is None:
                record.topology = self.place(kind, candidates)
                self.store.data(rid).mkdir(parents=True)
                self.store.data(rid).chmod(0o777)
            else:
                src_dir = self.volume_source(record, source, kind, candidates, size)
                copied = self.store.copy(src_dir, rid)
                record.fault = fault
                record.ready_at = ready_at(now, copied, params, fault)
            self.store.save(record)
            log.info("%s: created %s (%s) in %s", self.driver.name, rid, req.name,
                     describe(record.topology))  # fmt: skip
        return self.volume_response(record)

    def volume_source(
        self, record: Record, source: Any, kind: str, candidates: list[dict[str, str]], size: int
    ) -> Path:
        """Check a clone's or restore's source, set the record's place; its data's directory."""
        if source.HasField("volume"):
            if not self.driver.clone:
                raise Fail(grpc.StatusCode.INVALID_ARGUMENT, "clones are not supported")
            src = self.store.get("volume", self.driver.name, source.volume.volume_id)
            if src is None:
                raise Fail(
                    grpc.StatusCode.NOT_FOUND, f"source volume {source.volume.volume_id} not found"
                )
            if size < src.size:
                raise Fail(grpc.StatusCode.OUT_OF_RANGE,
                           f"{size} bytes is smaller than the source volume's {src.size}")  # fmt: skip
            inside = self.within(src.topology, candidates)
            if not inside:
                raise Fail(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"cannot clone volume {src.id} into {', '.join(map(describe, candidates))}: "
                    f"a clone stays in its source's {'zone' if ZONE_KEY in src.topology else 'region'} "
                    f"({describe(src.topology)})",
                )
            record.topology = dict(src.topology)
            record.source_volume = src.id
            return self.store.data(src.id)
        snap = self.store.get("snapshot", self.driver.name, source.snapshot.snapshot_id)
        if snap is None:
            raise Fail(
                grpc.StatusCode.NOT_FOUND, f"snapshot {source.snapshot.snapshot_id} not found"
            )
        if not snap.ready():
            raise Fail(grpc.StatusCode.UNAVAILABLE, f"snapshot {snap.id} is not ready to use")
        if size < snap.size:
            raise Fail(grpc.StatusCode.OUT_OF_RANGE,
                       f"{size} bytes is smaller than the snapshot's {snap.size}")  # fmt: skip
        candidates = candidates or [self.home]
        if snap.parameters.get("snapshotScope", "regional") == "regional":
            region = {REGION_KEY: snap.topology[REGION_KEY]} if REGION_KEY in snap.topology else {}
            candidates = self.within(region, candidates)
            if not candidates:
                raise Fail(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"snapshot {snap.id} is regional ({describe(region)}): it restores only there",
                )
        record.topology = self.place(kind, candidates)
        record.source_snapshot = snap.id
        return self.store.data(snap.id)

    def existing_volume(self, r: Record, req: Any, size: int, source: Any) -> Any:
        if r.size != size or (source is not None) != bool(r.source_volume or r.source_snapshot):
            raise Fail(
                grpc.StatusCode.ALREADY_EXISTS, f"volume {req.name} exists with another shape"
            )
        return self.volume_response(r)

    def volume_response(self, r: Record) -> Any:
        if not r.ready():
            # A constant message: the provisioner reports each distinct one once.
            fault = " (cloneFault: never-ready)" if r.fault == "never-ready" else ""
            raise Fail(grpc.StatusCode.ABORTED, f"volume {r.name} is being copied{fault}")
        content = None
        if r.source_volume:
            content = csi.VolumeContentSource(volume=csi.VolumeContentSource.VolumeSource(
                volume_id=r.source_volume))  # fmt: skip
        elif r.source_snapshot:
            content = csi.VolumeContentSource(snapshot=csi.VolumeContentSource.SnapshotSource(
                snapshot_id=r.source_snapshot))  # fmt: skip
        return csi.CreateVolumeResponse(
            volume=csi.Volume(
                capacity_bytes=r.size,
                volume_id=r.id,
                volume_context={"storage.cloning.dev/where": describe(r.topology)},
                content_source=content,
                accessible_topology=[csi.Topology(segments=r.topology)],
            )
        )

    @staticmethod
    def check_capabilities(caps: Any) -> None:
        for cap in caps:
            if cap.HasField("block"):
                raise Fail(grpc.StatusCode.INVALID_ARGUMENT, "block volumes are not supported")
            if not cap.HasField("mount"):
                raise Fail(grpc.StatusCode.INVALID_ARGUMENT, "access type is required")
            if not cap.HasField("access_mode") or cap.access_mode.mode == 0:
                raise Fail(grpc.StatusCode.INVALID_ARGUMENT, "access mode is required")

    def delete_volume(self, req: Any) -> Any:
        require(req.volume_id, "volume_id")
        with self.store.lock:
            if self.store.get("volume", self.driver.name, req.volume_id) is not None:
                self.store.remove(req.volume_id)
                log.info("%s: deleted %s", self.driver.name, req.volume_id)
        return csi.DeleteVolumeResponse()

    def validate(self, req: Any) -> Any:
        require(req.volume_id, "volume_id")
        require(len(req.volume_capabilities), "volume_capabilities")
        if self.store.get("volume", self.driver.name, req.volume_id) is None:
            raise Fail(grpc.StatusCode.NOT_FOUND, f"volume {req.volume_id} not found")
        self.check_capabilities(req.volume_capabilities)
        return csi.ValidateVolumeCapabilitiesResponse(
            confirmed=csi.ValidateVolumeCapabilitiesResponse.Confirmed(
                volume_context=req.volume_context,
                volume_capabilities=req.volume_capabilities,
                parameters=req.parameters,
            )
        )

    def capabilities(self, req: Any = None) -> Any:
        rpc = csi.ControllerServiceCapability.RPC
        kinds = [rpc.CREATE_DELETE_VOLUME, rpc.CREATE_DELETE_SNAPSHOT, rpc.LIST_SNAPSHOTS]
        if self.driver.clone:
            kinds.append(rpc.CLONE_VOLUME)
        return csi.ControllerGetCapabilitiesResponse(
            capabilities=[csi.ControllerServiceCapability(rpc=rpc(type=k)) for k in kinds]
        )

    # --- snapshots -------------------------------------------------------------------------

    def snapshot_fault(self, params: dict[str, str]) -> str:
        """The VolumeSnapshotClass's snapshotFault, or the VolumeSnapshot's annotation."""
        fault = fault_of(params, "snapshotFault")
        name = params.get("csi.storage.k8s.io/volumesnapshot/name")
        namespace = params.get("csi.storage.k8s.io/volumesnapshot/namespace")
        if self.api is not None and name and namespace:
            try:
                snap = self.api.get_namespaced_custom_object(
                    "snapshot.storage.k8s.io", "v1", namespace, "volumesnapshots", name
                )
                annotated = (snap["metadata"].get("annotations") or {}).get(
                    SNAPSHOT_FAULT_ANNOTATION
                )
                if annotated:
                    fault = fault_of({"snapshotFault": annotated}, "snapshotFault")
            except Exception as e:  # the class's word stands
                log.warning("reading VolumeSnapshot %s/%s: %r", namespace, name, e)
        return fault

    def take(self, source_id: str, name: str, params: dict[str, str], fault: str,
             group: str = "") -> Record:  # fmt: skip
        src = self.store.get("volume", self.driver.name, source_id)
        if src is None:
            raise Fail(grpc.StatusCode.NOT_FOUND, f"source volume {source_id} not found")
        rid = f"snap-{uuid.uuid4().hex[:16]}"
        now = time.time()
        copied = self.store.copy(self.store.data(src.id), rid)
        r = Record("snapshot", rid, name, self.driver.name, size=max(copied, src.size),
                   topology=dict(src.topology), parameters=params, source_volume=src.id,
                   group=group, created=now, fault=fault,
                   ready_at=ready_at(now, copied, params, fault))  # fmt: skip
        # A snapshot's size is its source's (what a restore must at least ask for).
        r.size = src.size
        self.store.save(r)
        log.info("%s: snapshot %s of %s (%s)", self.driver.name, rid, src.id, name)
        return r

    def create_snapshot(self, req: Any) -> Any:
        require(req.name, "name")
        require(req.source_volume_id, "source_volume_id")
        params = dict(req.parameters)
        with self.store.lock:
            existing = self.store.find("snapshot", self.driver.name, req.name)
            if existing is not None:
                if existing.source_volume != req.source_volume_id:
                    raise Fail(grpc.StatusCode.ALREADY_EXISTS,
                               f"snapshot {req.name} exists for another volume")  # fmt: skip
                return csi.CreateSnapshotResponse(snapshot=self.snapshot_message(existing))
            fault = self.snapshot_fault(params)
            if fault == "fail":
                raise Fail(
                    grpc.StatusCode.INTERNAL,
                    "injected fault (snapshotFault: fail): snapshot failed",
                )
            r = self.take(req.source_volume_id, req.name, params, fault)
        return csi.CreateSnapshotResponse(snapshot=self.snapshot_message(r))

    def snapshot_message(self, r: Record) -> Any:
        created = csi.google_dot_protobuf_dot_timestamp__pb2.Timestamp()
        created.FromNanoseconds(int(r.created * 1e9))
        return csi.Snapshot(
            size_bytes=r.size,
            snapshot_id=r.id,
            source_volume_id=r.source_volume,
            creation_time=created,
            ready_to_use=r.ready(),
            group_snapshot_id=r.group,
        )

    def delete_snapshot(self, req: Any) -> Any:
        require(req.snapshot_id, "snapshot_id")
        with self.store.lock:
            r = self.store.get("snapshot", self.driver.name, req.snapshot_id)
            if r is not None and r.group and r.group in self.store.records:
                raise Fail(grpc.StatusCode.FAILED_PRECONDITION,
                           f"snapshot {r.id} belongs to group snapshot {r.group}")  # fmt: skip
            if r is not None:
                self.store.remove(r.id)
        return csi.DeleteSnapshotResponse()

    def list_snapshots(self, req: Any) -> Any:
        with self.store.lock:
            found = sorted(
                (r for r in self.store.records.values()
                 if (r.kind, r.driver) == ("snapshot", self.driver.name)),
                key=lambda r: (r.created, r.id),
            )  # fmt: skip
        if req.snapshot_id:
            found = [r for r in found if r.id == req.snapshot_id]
        if req.source_volume_id:
            found = [r for r in found if r.source_volume == req.source_volume_id]
        start = 0
        if req.starting_token:
            try:
                start = int(req.starting_token)
            except ValueError:
                raise Fail(grpc.StatusCode.ABORTED, "invalid starting_token") from None
            if start > len(found):
                raise Fail(grpc.StatusCode.ABORTED, "starting_token out of range")
        end = start + req.max_entries if req.max_entries else len(found)
        page = found[start:end]
        return csi.ListSnapshotsResponse(
            entries=[
                csi.ListSnapshotsResponse.Entry(snapshot=self.snapshot_message(r)) for r in page
            ],
            next_token=str(end) if end < len(found) else "",
        )

    # --- group snapshots -------------------------------------------------------------------

    def group_message(self, g: Record) -> Any:
        snaps = [self.store.records[m] for m in g.members if m in self.store.records]
        created = csi.google_dot_protobuf_dot_timestamp__pb2.Timestamp()
        created.FromNanoseconds(int(g.created * 1e9))
        return csi.VolumeGroupSnapshot(
            group_snapshot_id=g.id,
            snapshots=[self.snapshot_message(s) for s in snaps],
            creation_time=created,
            ready_to_use=all(s.ready() for s in snaps),
        )

    def create_group(self, req: Any) -> Any:
        require(req.name, "name")
        require(len(req.source_volume_ids), "source_volume_ids")
        params = dict(req.parameters)
        with self.store.lock:  # one lock for all members: one point in time
            existing = self.store.find("group", self.driver.name, req.name)
            if existing is not None:
                sources = sorted(self.store.records[m].source_volume for m in existing.members
                                 if m in self.store.records)  # fmt: skip
                if sources != sorted(req.source_volume_ids):
                    raise Fail(grpc.StatusCode.ALREADY_EXISTS,
                               f"group snapshot {req.name} exists for other volumes")  # fmt: skip
                return csi.CreateVolumeGroupSnapshotResponse(
                    group_snapshot=self.group_message(existing)
                )
            for vid in req.source_volume_ids:
                if self.store.get("volume", self.driver.name, vid) is None:
                    raise Fail(grpc.StatusCode.NOT_FOUND, f"source volume {vid} not found")
            fault = fault_of(params, "snapshotFault")
            if fault == "fail":
                raise Fail(
                    grpc.StatusCode.INTERNAL,
                    "injected fault (snapshotFault: fail): group snapshot failed",
                )
            gid = f"group-{uuid.uuid4().hex[:16]}"
            members = [self.take(vid, f"{req.name}-{vid}", params, fault, group=gid).id
                       for vid in req.source_volume_ids]  # fmt: skip
            g = Record("group", gid, req.name, self.driver.name, members=members,
                       parameters=params, created=time.time(), ready_at=time.time())  # fmt: skip
            self.store.save(g)
        return csi.CreateVolumeGroupSnapshotResponse(group_snapshot=self.group_message(g))

    def delete_group(self, req: Any) -> Any:
        require(req.group_snapshot_id, "group_snapshot_id")
        with self.store.lock:
            g = self.store.get("group", self.driver.name, req.group_snapshot_id)
            if g is not None:
                if req.snapshot_ids and sorted(req.snapshot_ids) != sorted(g.members):
                    raise Fail(grpc.StatusCode.INVALID_ARGUMENT,
                               "snapshot_ids do not match the group snapshot's")  # fmt: skip
                for m in g.members:
                    self.store.remove(m)
                self.store.remove(g.id)
        return csi.DeleteVolumeGroupSnapshotResponse()

    def get_group(self, req: Any) -> Any:
        require(req.group_snapshot_id, "group_snapshot_id")
        g = self.store.get("group", self.driver.name, req.group_snapshot_id)
        if g is None:
            raise Fail(
                grpc.StatusCode.NOT_FOUND, f"group snapshot {req.group_snapshot_id} not found"
            )
        return csi.GetVolumeGroupSnapshotResponse(group_snapshot=self.group_message(g))


def mounted(path: str) -> bool:
    target = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1].encode().decode("unicode_escape") == target for line in f)


class Node:
    """The node service: bind mounts on the kubelet's target paths."""

    def __init__(
        self, driver: Driver, store: Store, node_id: str, topology: dict[str, str]
    ) -> None:
        self.driver = driver
        self.store = store
        self.node_id = node_id
        self.topology = topology

    def publish(self, req: Any) -> Any:
        require(req.volume_id, "volume_id")
        require(req.target_path, "target_path")
        if not req.HasField("volume_capability"):
            raise Fail(grpc.StatusCode.INVALID_ARGUMENT, "volume_capability is required")
        Controller.check_capabilities([req.volume_capability])
        r = self.store.get("volume", self.driver.name, req.volume_id)
        if r is None:
            raise Fail(grpc.StatusCode.NOT_FOUND, f"volume {req.volume_id} not found")
        where = r.topology
        if any(self.topology.get(k) != v for k, v in where.items()):
            raise Fail(grpc.StatusCode.FAILED_PRECONDITION,
                       f"volume {r.id} lives in {describe(where)}, not on this node")  # fmt: skip
        target = Path(req.target_path)
        target.mkdir(parents=True, exist_ok=True)
        if not mounted(str(target)):
            run("mount", "--bind", str(self.store.data(r.id)), str(target))
            if req.readonly:
                run("mount", "-o", "remount,bind,ro", str(target))
        log.info("%s: published %s on %s", self.driver.name, r.id, target)
        return csi.NodePublishVolumeResponse()

    def unpublish(self, req: Any) -> Any:
        require(req.volume_id, "volume_id")
        require(req.target_path, "target_path")
        target = Path(req.target_path)
        while target.exists() and mounted(str(target)):
            run("umount", str(target))
        with contextlib.suppress(FileNotFoundError):
            target.rmdir()
        return csi.NodeUnpublishVolumeResponse()

    def info(self, req: Any = None) -> Any:
        return csi.NodeGetInfoResponse(
            node_id=self.node_id,
            max_volumes_per_node=0,
            accessible_topology=csi.Topology(segments=self.topology),
        )


def run(*argv: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise Fail(grpc.StatusCode.INTERNAL, f"{' '.join(argv)}: {result.stderr.strip()}")


def handler(fn: Any) -> Any:
    """A gRPC method from a function of the request: Fail becomes its status (logged, with
    the function's name: what a test fixture refused matters)."""

    def method(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return fn(request)
        except Fail as e:
            log.info("%s: %s: %s", fn.__name__, e.code.name, e)
            context.abort(e.code, str(e))
        except Exception as e:
            log.exception("%s failed", fn.__name__)
            context.abort(grpc.StatusCode.INTERNAL, repr(e))

    return method


def servicers(driver: Driver, store: Store, node: Node | None, home: dict[str, str],
              api: Any) -> list[tuple[Any, Any]]:  # fmt: skip
    """The (servicer, add_to_server) pairs of one driver."""
    ctl = Controller(driver, store, home, api)
    unimplemented = grpc.StatusCode.UNIMPLEMENTED

    class Identity(csi_grpc.IdentityServicer):  # type: ignore[misc,name-defined]
        def GetPluginInfo(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC names)
            return csi.GetPluginInfoResponse(name=driver.name, vendor_version=VERSION)

        def GetPluginCapabilities(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC names)
            svc = csi.PluginCapability.Service
            kinds = [svc.CONTROLLER_SERVICE, svc.VOLUME_ACCESSIBILITY_CONSTRAINTS]
            if driver.group_snapshots:
                kinds.append(svc.GROUP_CONTROLLER_SERVICE)
            return csi.GetPluginCapabilitiesResponse(
                capabilities=[csi.PluginCapability(service=svc(type=k)) for k in kinds]
            )

        def Probe(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC names)
            return csi.ProbeResponse()

    class ControllerService(csi_grpc.ControllerServicer):  # type: ignore[misc,name-defined]
        CreateVolume = handler(ctl.create_volume)
        DeleteVolume = handler(ctl.delete_volume)
        ValidateVolumeCapabilities = handler(ctl.validate)
        ControllerGetCapabilities = handler(ctl.capabilities)
        CreateSnapshot = handler(ctl.create_snapshot)
        DeleteSnapshot = handler(ctl.delete_snapshot)
        ListSnapshots = handler(ctl.list_snapshots)

    class GroupService(csi_grpc.GroupControllerServicer):  # type: ignore[misc,name-defined]
        def GroupControllerGetCapabilities(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC names)
            rpc = csi.GroupControllerServiceCapability.RPC
            kinds = [rpc.CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT] if driver.group_snapshots else []
            return csi.GroupControllerGetCapabilitiesResponse(
                capabilities=[csi.GroupControllerServiceCapability(rpc=rpc(type=k)) for k in kinds]
            )

        def _groups(self, fn: Any, request: Any, context: Any) -> Any:
            if not driver.group_snapshots:
                context.abort(unimplemented, "group snapshots are not supported")
            return handler(fn)(self, request, context)

        def CreateVolumeGroupSnapshot(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC names)
            return self._groups(ctl.create_group, request, context)

        def DeleteVolumeGroupSnapshot(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC names)
            return self._groups(ctl.delete_group, request, context)

        def GetVolumeGroupSnapshot(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC names)
            return self._groups(ctl.get_group, request, context)

    out: list[tuple[Any, Any]] = [
        (Identity(), csi_grpc.add_IdentityServicer_to_server),
        (ControllerService(), csi_grpc.add_ControllerServicer_to_server),
        (GroupService(), csi_grpc.add_GroupControllerServicer_to_server),
    ]
    if node is not None:
        n = node

        class NodeService(csi_grpc.NodeServicer):  # type: ignore[misc,name-defined]
            NodePublishVolume = handler(n.publish)
            NodeUnpublishVolume = handler(n.unpublish)
            NodeGetInfo = handler(n.info)
            NodeGetCapabilities = handler(lambda r: csi.NodeGetCapabilitiesResponse())

        out.append((NodeService(), csi_grpc.add_NodeServicer_to_server))
    return out


def serve(endpoint: Path, pairs: list[tuple[Any, Any]]) -> grpc.Server:
    endpoint.parent.mkdir(parents=True, exist_ok=True)
    endpoint.unlink(missing_ok=True)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    for servicer, add in pairs:
        add(servicer, server)
    server.add_insecure_port(f"unix://{endpoint}")
    server.start()
    return server


class Registration(reg_grpc.RegistrationServicer):  # type: ignore[misc,name-defined]
    """The kubelet's plugin watcher asks a socket in plugins_registry who it is."""

    def __init__(self, name: str, endpoint: Path) -> None:
        self.name = name
        self.endpoint = endpoint

    def GetInfo(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC names)
        return reg.PluginInfo(type="CSIPlugin", name=self.name, endpoint=str(self.endpoint),
                              supported_versions=["1.0.0"])  # fmt: skip

    def NotifyRegistrationStatus(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC names)
        if request.plugin_registered:
            log.info("%s: registered with the kubelet", self.name)
        else:
            log.warning("%s: the kubelet refused it: %s", self.name, request.error)
        return reg.RegistrationStatusResponse()


def keep_registered(kubelet_dir: Path, endpoints: dict[str, Path]) -> None:
    """Offer each driver to the kubelet whenever its plugins_registry has no socket of ours:
    the real node may come up after this process, or be recreated under it."""
    servers: dict[str, grpc.Server] = {}
    while True:
        registry = kubelet_dir / "plugins_registry"
        if registry.is_dir():
            for name, endpoint in endpoints.items():
                sock = registry / f"{name}-reg.sock"
                # Ours is gone (a recreated node), or was a predecessor's: offer it anew.
                if name not in servers or not sock.exists():
                    if name in servers:
                        servers.pop(name).stop(0)
                    sock.unlink(missing_ok=True)
                    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
                    reg_grpc.add_RegistrationServicer_to_server(
                        Registration(name, endpoint), server
                    )
                    server.add_insecure_port(f"unix://{sock}")
                    server.start()
                    servers[name] = server
                    log.info("%s: offered to the kubelet at %s", name, sock)
        time.sleep(2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, type=Path, help="volumes and records")
    parser.add_argument("--socket-dir", required=True, type=Path, help="<driver>.sock for each")
    parser.add_argument("--driver", action="append", choices=sorted(DRIVERS),
                        help="default: every driver")  # fmt: skip
    parser.add_argument("--node-id", default="", help="serve the node service as this node")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--zone", default="us-east-1a")
    parser.add_argument("--kubelet-dir", type=Path, help="register with this kubelet")
    parser.add_argument("--kubeconfig", help="read VolumeSnapshot annotations (faults)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    api = None
    if args.kubeconfig:
        from kubernetes import client, config

        config.load_kube_config(args.kubeconfig)
        api = client.CustomObjectsApi()
    store = Store(args.root)
    home = {REGION_KEY: args.region, ZONE_KEY: args.zone}
    endpoints: dict[str, Path] = {}
    servers = []
    for name in args.driver or sorted(DRIVERS):
        driver = DRIVERS[name]
        node = Node(driver, store, args.node_id, home) if args.node_id else None
        endpoints[name] = args.socket_dir / f"{name}.sock"
        servers.append(serve(endpoints[name], servicers(driver, store, node, home, api)))
        log.info("%s: serving on %s", name, endpoints[name])
    if args.kubelet_dir:
        threading.Thread(target=keep_registered, args=(args.kubelet_dir, endpoints),
                         daemon=True).start()  # fmt: skip
    for server in servers:
        server.wait_for_termination()
    return 0


if __name__ == "__main__":
    sys.exit(main())
