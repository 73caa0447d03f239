"""Benchmark: N CloningOperations at once versus the equivalent StatefulSets created directly.

    make bench                      # N=100, 1 replica each
    python -m tests.bench.operations --operations 20 --replicas 3

Prints, from watch events (not timestamps with one-second resolution):
  * create → Succeeded latency (median, p95) through the operator;
  * the same for a baseline that creates each target's PVC clones, headless Service
    and StatefulSet directly (the floor: what the control plane itself needs);
  * their ratio, pickup latency (create → InProgress; median, p95),
  * the operator's API requests per operation (its own client; kopf's watch streams
    come on top), its peak RSS and its CPU time (its own work, whatever else runs).
Targets (issue 3): all succeed; ratio ≤ 1.5; pickup p95 ≤ 1 s; RSS ≤ 150 MiB.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

from tests.cluster import localcluster
from tests.e2e.manifests import statefulset

ROOT = Path(__file__).resolve().parents[2]

# The operator as its image runs it: without the sync `kubernetes` client, a
# dev-only dependency here (test provisioner, this benchmark) that kopf would
# otherwise import whenever it is installed (~45 MiB of models).
AS_DEPLOYED = (
    "import sys; sys.modules['kubernetes'] = None; "
    "from clone_operator.cli import main; sys.exit(main(['run', '--dev']))"
)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def apply_all(api: client.ApiClient, namespace: str, objects: list[dict[str, Any]]) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    for obj in objects:
        if obj["kind"] == "Service":
            core.create_namespaced_service(namespace, obj)
        elif obj["kind"] == "StatefulSet":
            apps.create_namespaced_stateful_set(namespace, obj)
        elif obj["kind"] == "PersistentVolumeClaim":
            core.create_namespaced_persistent_volume_claim(namespace, obj)


def make_sources(api: client.ApiClient, namespace: str, n: int, replicas: int) -> None:
    for i in range(n):
        apply_all(api, namespace, statefulset(f"src-{i}", replicas=replicas))
    apps = client.AppsV1Api(api)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        items = apps.list_namespaced_stateful_set(namespace).items
        if sum((s.status.ready_replicas or 0) == replicas for s in items) >= n:
            return
        time.sleep(0.5)
    raise SystemExit("sources did not become ready in 300 s")


def baseline(api: client.ApiClient, namespace: str, n: int, replicas: int) -> list[float]:
    """Create what a clone consists of, directly; time each to readyReplicas == replicas."""
    created: dict[str, float] = {}
    ready: dict[str, float] = {}
    done = threading.Event()

    apps = client.AppsV1Api(api)
    since = apps.list_namespaced_stateful_set(namespace).metadata.resource_version

    def follow() -> None:
        # From the listed resourceVersion: every event after it, however late the watch starts.
        w = watch.Watch()
        for event in w.stream(
            apps.list_namespaced_stateful_set,
            namespace,
            resource_version=since,
            timeout_seconds=600,
        ):
            sts = event["object"]
            name = sts.metadata.name
            if (
                name.startswith("floor-")
                and name not in ready
                and (sts.status.ready_replicas or 0) >= replicas
            ):
                ready[name] = time.monotonic()
                if len(ready) >= n:
                    done.set()
                    w.stop()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    for i in range(n):
        name = f"floor-{i}"
        objects = statefulset(name, replicas=replicas)
        service, sts = objects
        sts["spec"]["selector"] = {"matchLabels": {"floor": name}}
        sts["spec"]["template"]["metadata"]["labels"] = {"floor": name}
        pvcs = [
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": f"data-{name}-{r}"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                    "dataSource": {"kind": "PersistentVolumeClaim", "name": f"data-src-{i}-{r}"},
                },
            }
            for r in range(replicas)
        ]
        created[name] = time.monotonic()
        apply_all(api, namespace, [*pvcs, service, sts])
    if not done.wait(600):
        raise SystemExit(f"baseline: only {len(ready)}/{n} StatefulSets became ready")
    return [ready[k] - created[k] for k in created]


def operations(
    api: client.ApiClient, namespace: str, n: int
) -> tuple[list[float], list[float], dict[str, str]]:
    custom = client.CustomObjectsApi(api)
    created: dict[str, float] = {}
    picked: dict[str, float] = {}
    finished: dict[str, float] = {}
    phases: dict[str, str] = {}
    done = threading.Event()

    group = ("cloning.dev", "v1alpha1", namespace, "cloningoperations")
    since = custom.list_namespaced_custom_object(*group)["metadata"]["resourceVersion"]

    def follow() -> None:
        # From the listed resourceVersion: every event after it, however late the watch starts.
        w = watch.Watch()
        for event in w.stream(
            custom.list_namespaced_custom_object,
            *group,
            resource_version=since,
            timeout_seconds=900,
        ):
            obj = event["object"]
            name = obj["metadata"]["name"]
            phase = (obj.get("status") or {}).get("phase")
            now = time.monotonic()
            if phase in ("InProgress", "Succeeded") and name not in picked:
                picked[name] = now
            if phase in ("Succeeded", "Failed", "Canceled") and name not in finished:
                finished[name] = now
                phases[name] = phase
                if len(finished) >= n:
                    done.set()
                    w.stop()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    for i in range(n):
        name = f"op-{i}"
        body = {
            "apiVersion": "cloning.dev/v1alpha1",
            "kind": "CloningOperation",
            "metadata": {"name": name},
            "spec": {"sourceCluster": f"src-{i}", "serverVersion": "28.0"},
        }
        created[name] = time.monotonic()
        custom.create_namespaced_custom_object(
            "cloning.dev", "v1alpha1", namespace, "cloningoperations", body
        )
    if not done.wait(900):
        raise SystemExit(f"operator: only {len(finished)}/{n} operations finished")
    latency = [finished[k] - created[k] for k in created]
    pickup = [picked[k] - created[k] for k in created if k in picked]
    return latency, pickup, phases


def start_operator(
    env: dict[str, str], log_path: Path, command: list[str] | None = None
) -> subprocess.Popen[bytes]:
    """The operator as its image runs it (or as `command` does), logging to `log_path`;
    returns once it started."""
    with log_path.open("wb") as log:
        operator = subprocess.Popen(
            command or [sys.executable, "-c", AS_DEPLOYED],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    deadline = time.monotonic() + 180  # (slower under tracemalloc, or on a busy machine)
    while "clone-operator started" not in log_path.read_text(errors="replace"):
        if operator.poll() is not None or time.monotonic() > deadline:
            operator.kill()
            raise SystemExit(f"the operator did not start; log: {log_path}")
        time.sleep(0.2)
    return operator


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process used so far: its own work, whatever the load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def prepare() -> localcluster.Paths:
    """The local cluster up, this tree's CRDs applied, no other operator acting beside
    the benchmark's, and the client configured for it."""
    paths = localcluster.up()
    subprocess.run(
        [
            str(paths.kube_bin / "kubectl"),
            "--kubeconfig",
            str(paths.kubeconfig),
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            str(ROOT / "crds"),
        ],
        check=True,
        capture_output=True,
    )
    for release in localcluster.uninstall_operators(paths):
        print(f"uninstalled {release}: its operator would act on the benchmark's resources too")
    config.load_kube_config(str(paths.kubeconfig))
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--operations", type=int, default=int(os.environ.get("BENCH_OPERATIONS", "100"))
    )
    parser.add_argument("--replicas", type=int, default=1)
    args = parser.parse_args()
    n, replicas = args.operations, args.replicas

    paths = prepare()
    api = client.ApiClient()
    api.configuration.connection_pool_maxsize = 32
    core = client.CoreV1Api(api)
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": namespace}})
    operator = None
    try:
        print(f"benchmark: {n} operations, {replicas} replica(s) each, namespace {namespace}")
        make_sources(api, namespace, n, replicas)
        floor = baseline(api, namespace, n, replicas)

        log_path = ROOT / ".artifacts" / f"bench-operator-{namespace}.log"
        log_path.parent.mkdir(exist_ok=True)
        env = {
            **os.environ,
            "KUBECONFIG": str(paths.kubeconfig),
            "CLONE_OPERATOR_MAX_IN_PROGRESS": str(n),
            "CLONE_OPERATOR_MAX_IN_PROGRESS_PER_NAMESPACE": str(n),  # one namespace
            "CLONE_OPERATOR_NAMESPACES": f'["{namespace}"]',
        }
        operator = start_operator(env, log_path)
        latency, pickup, phases = operations(api, namespace, n)
        rss = peak_rss_mib(operator.pid)
        cpu = cpu_seconds(operator.pid)
        operator.terminate()
        operator.wait(timeout=30)
        match = re.search(r"api requests: total=(\d+)", log_path.read_text(errors="replace"))
        requests = int(match.group(1)) if match else -1
    finally:
        if operator is not None and operator.poll() is None:
            operator.kill()
        core.delete_namespace(namespace)

    succeeded = sum(p == "Succeeded" for p in phases.values())
    ratio = statistics.median(latency) / statistics.median(floor)
    print(f"succeeded:                 {succeeded}/{n}")
    print(
        f"operator create→Succeeded: median {statistics.median(latency):.2f} s, p95 {p95(latency):.2f} s"
    )
    print(
        f"baseline create→ready:     median {statistics.median(floor):.2f} s, p95 {p95(floor):.2f} s"
    )
    print(f"ratio (medians):           {ratio:.2f}  (p95 ratio {p95(latency) / p95(floor):.2f})")
    print(
        f"pickup create→InProgress:  median {statistics.median(pickup):.2f} s, p95 {p95(pickup):.2f} s"
    )
    print(
        f"API requests / operation:  {requests / n:.1f}  (operator's client; kopf adds only its watches)"
    )
    print(f"operator peak RSS:         {rss:.1f} MiB")
    print(
        f"operator CPU time:         {cpu:.1f} s  ({1000 * cpu / n:.0f} ms / operation, startup included)"
    )
    ok = succeeded == n and ratio <= 1.5 and p95(pickup) <= 1.0 and rss <= 150
    print(
        f"targets (all succeed, ratio ≤ 1.5, pickup p95 ≤ 1 s, RSS ≤ 150 MiB): {'met' if ok else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
