"""Benchmark: time to a Ready clone per copy method, against the floor made by hand.

    make bench-copy                       # 5 rounds, 2 replicas, StorageClass clone-test
    python -m tests.bench.copies --rounds 3 --replicas 3 --storage-class clone-test-throttled

Each round, for each method, one at a time (latency, not throughput), on the same
source and the same StorageClass:
  * the floor: what the method consists of, made directly through the API (the same
    calls `kubectl create` makes) — `VolumeClone`: the target's PVCs with the source's
    PVCs as dataSource, its headless Service and StatefulSet; `Snapshot`: a
    VolumeSnapshot per source PVC, waited for readyToUse, then the PVCs restored from
    them (dataSource VolumeSnapshot), Service and StatefulSet; `GroupSnapshot`: one
    VolumeGroupSnapshot over the source's PVCs (its selector), waited for readyToUse,
    then the PVCs restored from its member snapshots, Service and StatefulSet. Timed
    from the first create to readyReplicas == replicas (watch events);
  * the operator: a CloningOperation with that copyMethod, from create to Succeeded
    (its snapshots already removed, the target handed over). `Auto` too, with the
    requester recorded (it may snapshot, so it takes Snapshot where the class allows).
Between two runs, the benchmark waits until every snapshot (and its content) of the
one before is gone. Prints per method the median (and min, max) of both, the ratio
of the medians, and the operator's pickup (create → InProgress) median.
Timings are seconds from watch events, on the local cluster's CSI storage
(docs/development/storage.md), with kwok pods.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client, watch

from tests.bench.operations import apply_all, prepare, start_operator
from tests.cluster import localcluster
from tests.e2e.manifests import claim, operation, statefulset

ROOT = Path(__file__).resolve().parents[2]
METHODS = ("VolumeClone", "Snapshot", "GroupSnapshot", "Auto")
SNAPSHOT = ("snapshot.storage.k8s.io", "v1", "volumesnapshots")
GROUP = ("groupsnapshot.storage.k8s.io", "v1", "volumegroupsnapshots")
CLASSES = {  # the local storage's classes for its disk driver (tests/cluster/storage.py)
    "Snapshot": "clone-test-snapshots",
    "GroupSnapshot": "clone-test-group-snapshots",
}
REGION = "us-east-1"


class Timer:
    """The first watch event at which a predicate holds for an object, by name."""

    def __init__(
        self,
        lister: Callable[..., Any],
        args: tuple[Any, ...],
        holds: Callable[[Any], bool],
    ) -> None:
        self.seen: dict[str, float] = {}
        self.events: dict[str, threading.Event] = {}
        self.lock = threading.Lock()
        listed = lister(*args)
        since = (
            listed["metadata"]["resourceVersion"]
            if isinstance(listed, dict)
            else listed.metadata.resource_version
        )
        self.thread = threading.Thread(
            target=self.follow, args=(lister, args, holds, since), daemon=True
        )
        self.thread.start()

    def follow(
        self,
        lister: Callable[..., Any],
        args: tuple[Any, ...],
        holds: Callable[[Any], bool],
        since: str,
    ) -> None:
        while True:  # a watch ends after its timeout: start it again from where it was
            w = watch.Watch()
            for event in w.stream(lister, *args, resource_version=since, timeout_seconds=300):
                obj = event["object"]
                meta = obj["metadata"] if isinstance(obj, dict) else obj.metadata
                name = meta["name"] if isinstance(meta, dict) else meta.name
                since = meta["resourceVersion"] if isinstance(meta, dict) else meta.resource_version
                if event["type"] != "DELETED" and holds(obj):
                    with self.lock:
                        if name not in self.seen:
                            self.seen[name] = time.monotonic()
                            self.events.setdefault(name, threading.Event()).set()

    def wait(self, name: str, timeout: float = 300) -> float:
        with self.lock:
            event = self.events.setdefault(name, threading.Event())
        if not event.wait(timeout):
            raise SystemExit(f"{name}: not done within {timeout:g} s")
        return self.seen[name]


def ready(replicas: int) -> Callable[[Any], bool]:
    return lambda sts: (sts.status.ready_replicas or 0) >= replicas


def snapshot_ready(obj: dict[str, Any]) -> bool:
    return bool((obj.get("status") or {}).get("readyToUse"))


def picked(obj: dict[str, Any]) -> bool:
    return bool((obj.get("status") or {}).get("phase") not in (None, "Pending"))


def succeeded(obj: dict[str, Any]) -> bool:
    return (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def restore(name: str, source_pvc: str, size: str, kind: str) -> dict[str, Any]:
    """A target PVC made from a source PVC (clone) or a VolumeSnapshot (restore)."""
    source: dict[str, Any] = {"kind": kind, "name": source_pvc}
    if kind == "VolumeSnapshot":
        source["apiGroup"] = SNAPSHOT[0]
    return claim(name, size, data_source=source)


class Bench:
    def __init__(self, api: client.ApiClient, namespace: str, replicas: int, storage_class: str):
        self.api, self.namespace, self.replicas = api, namespace, replicas
        self.storage_class = storage_class
        self.core, self.apps = client.CoreV1Api(api), client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.sets = Timer(self.apps.list_namespaced_stateful_set, (namespace,), ready(replicas))
        self.snapshots = Timer(
            self.custom.list_namespaced_custom_object, (*SNAPSHOT[:2], namespace, SNAPSHOT[2]),
            snapshot_ready,
        )  # fmt: skip
        self.groups = Timer(
            self.custom.list_namespaced_custom_object, (*GROUP[:2], namespace, GROUP[2]),
            snapshot_ready,
        )  # fmt: skip
        operations = ("cloning.dev", "v1alpha1", namespace, "cloningoperations")
        self.operations = Timer(self.custom.list_namespaced_custom_object, operations, succeeded)
        self.pickups = Timer(self.custom.list_namespaced_custom_object, operations, picked)

    def source(self) -> None:
        objects = statefulset("src", replicas=self.replicas, region=REGION)
        objects[1]["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] = (
            self.storage_class
        )
        apply_all(self.api, self.namespace, objects)
        self.sets.wait("src")

    def target(self, name: str, pvcs: list[dict[str, Any]]) -> float:
        """Create the restored PVCs, the Service and StatefulSet; when every replica is ready."""
        service, sts = statefulset(name, replicas=self.replicas, region=REGION)
        sts["spec"]["selector"] = {"matchLabels": {"floor": name}}
        sts["spec"]["template"]["metadata"]["labels"] = {"floor": name}
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] = self.storage_class
        for pvc in pvcs:
            pvc["spec"]["storageClassName"] = self.storage_class
        apply_all(self.api, self.namespace, [*pvcs, service, sts])
        return self.sets.wait(name)

    def snapshot_of(self, name: str, pvc: str, method: str) -> dict[str, Any]:
        return {
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshot",
            "metadata": {"name": name},
            "spec": {
                "volumeSnapshotClassName": CLASSES[method],
                "source": {"persistentVolumeClaimName": pvc},
            },
        }

    def floor(self, method: str, name: str) -> float:
        ordinals = range(self.replicas)
        started = time.monotonic()
        if method == "VolumeClone":
            pvcs = [restore(f"data-{name}-{i}", f"data-src-{i}", "1Gi", "PersistentVolumeClaim")
                    for i in ordinals]  # fmt: skip
            return self.target(name, pvcs) - started
        if method == "Snapshot":
            for i in ordinals:
                self.custom.create_namespaced_custom_object(
                    *SNAPSHOT[:2], self.namespace, SNAPSHOT[2],
                    self.snapshot_of(f"data-{name}-{i}", f"data-src-{i}", method),
                )  # fmt: skip
            for i in ordinals:
                self.snapshots.wait(f"data-{name}-{i}")
            members = {i: f"data-{name}-{i}" for i in ordinals}
        else:
            group = {
                "apiVersion": "groupsnapshot.storage.k8s.io/v1",
                "kind": "VolumeGroupSnapshot",
                "metadata": {"name": name},
                "spec": {
                    "volumeGroupSnapshotClassName": CLASSES[method],
                    "source": {"selector": {"matchLabels": {"app": "src"}}},
                },
            }
            made = self.custom.create_namespaced_custom_object(
                *GROUP[:2], self.namespace, GROUP[2], group
            )
            self.groups.wait(name)
            uid = made["metadata"]["uid"]
            listed = self.custom.list_namespaced_custom_object(
                *SNAPSHOT[:2], self.namespace, SNAPSHOT[2]
            )["items"]
            by_pvc = {
                s["spec"]["source"].get("persistentVolumeClaimName"): s["metadata"]["name"]
                for s in listed
                if any(r.get("uid") == uid for r in s["metadata"].get("ownerReferences") or [])
            }
            members = {i: by_pvc[f"data-src-{i}"] for i in ordinals}
        pvcs = [restore(f"data-{name}-{i}", members[i], "1Gi", "VolumeSnapshot") for i in ordinals]
        done = self.target(name, pvcs)
        self.remove_snapshots(method, name)  # as the operator does, after the target is ready
        return done - started

    def remove_snapshots(self, method: str, name: str) -> None:
        if method == "GroupSnapshot":
            self.custom.delete_namespaced_custom_object(*GROUP[:2], self.namespace, GROUP[2], name)
        else:
            for i in range(self.replicas):
                self.custom.delete_namespaced_custom_object(
                    *SNAPSHOT[:2], self.namespace, SNAPSHOT[2], f"data-{name}-{i}"
                )

    def settle(self, timeout: float = 120) -> None:
        """Wait until every snapshot of the namespace is gone, with its content (deletions
        keep the snapshot-controller and the driver busy): each run starts on quiet storage."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = [
                *self.custom.list_namespaced_custom_object(*GROUP[:2], self.namespace, GROUP[2])[
                    "items"
                ],
                *self.custom.list_namespaced_custom_object(
                    *SNAPSHOT[:2], self.namespace, SNAPSHOT[2]
                )["items"],
                *(
                    c
                    for c in self.custom.list_cluster_custom_object(
                        SNAPSHOT[0], SNAPSHOT[1], "volumesnapshotcontents"
                    )["items"]
                    if c["spec"]["volumeSnapshotRef"].get("namespace") == self.namespace
                ),
            ]
            if not left:
                return
            time.sleep(0.2)
        raise SystemExit(f"snapshots still there after {timeout:g} s")

    def clone(self, method: str, name: str) -> tuple[float, float, str]:
        """A CloningOperation by `method`: seconds to Succeeded and to InProgress (its
        pickup: the storage's facts read, the method decided), and the method it used."""
        body = operation(name, "src", copyMethod=method)
        body["metadata"]["annotations"] = {"cloning.dev/requested-by": self.requester}
        started = time.monotonic()
        self.custom.create_namespaced_custom_object(
            "cloning.dev", "v1alpha1", self.namespace, "cloningoperations", body
        )
        done = self.operations.wait(name)
        status = self.custom.get_namespaced_custom_object(
            "cloning.dev", "v1alpha1", self.namespace, "cloningoperations", name
        )["status"]
        if status["phase"] != "Succeeded":
            raise SystemExit(f"{name}: {status['phase']}: {status.get('message')}")
        return done - started, self.pickups.wait(name) - started, status.get("copyMethod", "?")

    requester = ""


def whoami(paths: localcluster.Paths) -> str:
    """The benchmark's own user name: recorded as the requester (Auto asks its rights)."""
    out = subprocess.run(
        [str(paths.kube_bin / "kubectl"), "--kubeconfig", str(paths.kubeconfig), "auth", "whoami",
         "-o", "jsonpath={.status.userInfo.username}"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return out.stdout.strip()


def may_snapshot(api: client.ApiClient, namespace: str, user: str) -> None:
    """Let the benchmark's user create VolumeSnapshots in its namespace by name: Auto asks
    the API server about the recorded requester's user name alone (its groups, e.g.
    system:masters, are not recorded), and takes snapshots only for one who may."""
    rbac = client.RbacAuthorizationV1Api(api)
    rules = [{"apiGroups": [SNAPSHOT[0]], "resources": ["volumesnapshots"], "verbs": ["create"]}]
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "snapshots"}, "rules": rules})
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "snapshots"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "snapshots",
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    )


def summary(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):6.2f} s (min {min(values):.2f}, max {max(values):.2f})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "5")))
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--storage-class", default="clone-test")
    args = parser.parse_args()

    paths = prepare()
    api = client.ApiClient()
    core = client.CoreV1Api(api)
    namespace = f"bench-copy-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": namespace}})
    operator = None
    floors: dict[str, list[float]] = {m: [] for m in METHODS if m != "Auto"}
    clones: dict[str, list[float]] = {m: [] for m in METHODS}
    used: dict[str, set[str]] = {m: set() for m in METHODS}
    pickups: dict[str, list[float]] = {m: [] for m in METHODS}
    try:
        print(
            f"benchmark: {args.rounds} rounds, {args.replicas} replicas, StorageClass "
            f"{args.storage_class}, namespace {namespace}"
        )
        bench = Bench(api, namespace, args.replicas, args.storage_class)
        bench.requester = whoami(paths)
        may_snapshot(api, namespace, bench.requester)
        bench.source()
        log_path = ROOT / ".artifacts" / f"bench-operator-{namespace}.log"
        log_path.parent.mkdir(exist_ok=True)
        env = {
            **os.environ,
            "KUBECONFIG": str(paths.kubeconfig),
            "CLONE_OPERATOR_NAMESPACES": f'["{namespace}"]',
        }
        operator = start_operator(env, log_path)
        for r in range(args.rounds):
            for method in METHODS:
                tag = method.lower()
                if method in floors:
                    floors[method].append(bench.floor(method, f"floor-{tag}-{r}"))
                    bench.settle()
                took, pickup, resolved = bench.clone(method, f"op-{tag}-{r}")
                bench.settle()
                clones[method].append(took)
                pickups[method].append(pickup)
                used[method].add(resolved)
            print(f"round {r + 1}/{args.rounds} done", flush=True)
    finally:
        if operator is not None:
            operator.terminate()
            try:
                operator.wait(timeout=30)
            except subprocess.TimeoutExpired:
                operator.kill()
        core.delete_namespace(namespace)

    print(f"{'method':<18} {'floor (by hand)':<38} {'operator (to Succeeded)':<38} ratio  pickup")
    for method in METHODS:
        floor_of = method if method in floors else next(iter(used[method]))
        floor = floors.get(floor_of)
        ratio = statistics.median(clones[method]) / statistics.median(floor) if floor else None
        label = method if method != "Auto" else f"Auto→{'/'.join(sorted(used[method]))}"
        print(
            f"{label:<18} {summary(floor) if floor else '-':<38} "
            f"{summary(clones[method]):<38} {f'{ratio:.2f}' if ratio else '-':<6} "
            f"{statistics.median(pickups[method]):.2f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
