"""Scale benchmark: N CloningOperations created at once, at N=100 and N=1,000.

    make bench-scale                          # 100, then 1,000
    python -m tests.bench.scale --operations 100 1000

For each N, in a namespace of its own, with a fresh operator process (as its image
runs it, InProgress limit N, leader election off: one process), it creates N
1-replica sources, waits until they are ready, creates the N operations in one
burst and follows them with a watch. It prints:
  * how many succeeded, create → Succeeded median/p95, pickup (create →
    InProgress) median/p95;
  * the operator's peak RSS (VmHWM) and what it grew by between the two N;
  * API requests per operation by method (the operator's own client; Events and
    kopf's watches aside) next to MINIMUM_REQUESTS, the fewest the workflow needs.
Targets (issue 12): all succeed at 1,000; RSS ≤ 150 MiB at 1,000; requests ≤ 1.5x
the minimum. The machine's load average is printed: quote medians and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client, config

from tests.bench.operations import cpu_seconds, operations, p95, peak_rss_mib, start_operator
from tests.cluster import localcluster
from tests.e2e.manifests import statefulset

ROOT = Path(__file__).resolve().parents[2]


def minimum_requests(replicas: int) -> dict[str, int]:
    """The fewest API requests one CloningOperation needs (VolumeClone, no targetRegion,
    no notifications), with `replicas` PVCs per source; Events are not counted.

    POST the lock Lease (the one-per-source rule needs an atomic create); GET the
    source StatefulSet and its Service; LIST the source's pods (its region); PATCH the
    status to InProgress (guarded); GET each source PVC (the clone's size); POST the
    StatefulSet as a dry run (a target the API server refuses, or whose name is taken,
    fails before any volume is cloned); POST each PVC clone, the Service and the
    StatefulSet; PATCH each of those to drop the owner reference (hand-over); PATCH the
    status to Succeeded; DELETE the lock; PATCH the status to finalized. Following
    readiness and the pods' scheduling costs nothing: watches.
    """
    return {
        "POST": 1 + 1 + replicas + 2,
        "GET": 2 + 1 + replicas,
        "PATCH": 1 + (replicas + 2) + 1 + 1,
        "DELETE": 1,
    }


def make_sources(api: client.ApiClient, namespace: str, n: int) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    for i in range(n):
        service, sts = statefulset(f"src-{i}", replicas=1)
        core.create_namespaced_service(namespace, service)
        apps.create_namespaced_stateful_set(namespace, sts)
    deadline = time.monotonic() + 60 + n
    while time.monotonic() < deadline:
        # Raw JSON: the client's models cost a CPU-second per look at 1,000 objects.
        raw = apps.list_namespaced_stateful_set(namespace, _preload_content=False)
        items = json.loads(raw.data)["items"]
        if sum((s.get("status") or {}).get("readyReplicas") == 1 for s in items) >= n:
            return
        time.sleep(3.0)
    raise SystemExit(f"{n} sources did not become ready in time")


def run(
    api: client.ApiClient, paths: localcluster.Paths, n: int, trace_memory: bool = False
) -> dict[str, Any]:
    core = client.CoreV1Api(api)
    namespace = f"scale-{n}-{uuid.uuid4().hex[:5]}"
    core.create_namespace({"metadata": {"name": namespace}})
    operator = None
    log_path = ROOT / ".artifacts" / f"bench-scale-{namespace}.log"
    log_path.parent.mkdir(exist_ok=True)
    try:
        started = time.monotonic()
        make_sources(api, namespace, n)
        print(f"  N={n}: {n} sources ready in {time.monotonic() - started:.0f} s")
        env = {
            **os.environ,
            "KUBECONFIG": str(paths.kubeconfig),
            "CLONE_OPERATOR_MAX_IN_PROGRESS": str(n),
            "CLONE_OPERATOR_MAX_IN_PROGRESS_PER_NAMESPACE": str(n),  # one namespace
            "CLONE_OPERATOR_NAMESPACES": f'["{namespace}"]',
            "CLONE_OPERATOR_LEADER_ELECTION": "false",
            "CLONE_OPERATOR_METRICS_PORT": "0",
            "CLONE_OPERATOR_HEALTH_PORT": "0",
        }
        command = None
        if trace_memory:
            traced = log_path.with_suffix(".memory.txt")
            command = [sys.executable, "-m", "tests.bench.traced_operator", str(traced)]
            print(f"  N={n}: operator under tracemalloc; where its memory goes: {traced}")
        operator = start_operator(env, log_path, command)
        idle_rss = peak_rss_mib(operator.pid)
        latency, pickup, phases = operations(api, namespace, n)
        rss = peak_rss_mib(operator.pid)
        cpu = cpu_seconds(operator.pid)
        operator.terminate()
        operator.wait(timeout=60)
        text = log_path.read_text(errors="replace")
        match = re.search(r"api requests: total=(\d+) (.*)", text)
        assert match, f"no request count in {log_path}"
        by_method = {m: int(c) for m, c in re.findall(r"(\w+)=(\d+)", match.group(2))}
        found = re.search(r"api requests by resource: (.*)", text)
        by_resource = re.findall(r"(\w+ [\w/]+)=(\d+)", found.group(1)) if found else []
    finally:
        if operator is not None and operator.poll() is None:
            operator.kill()
        core.delete_namespace(namespace)
    return {
        "n": n,
        "succeeded": sum(p == "Succeeded" for p in phases.values()),
        "latency_median": statistics.median(latency),
        "latency_p95": p95(latency),
        "pickup_median": statistics.median(pickup),
        "pickup_p95": p95(pickup),
        "idle_rss": idle_rss,
        "rss": rss,
        "cpu": cpu,
        **{f"req_{m}": c / n for m, c in by_method.items()},
        "requests": sum(by_method.values()) / n,
        "by_resource": ", ".join(f"{what} {int(c) / n:.1f}" for what, c in by_resource[:8]),
    }


def report(r: dict[str, Any], minimum: dict[str, int]) -> None:
    floor = sum(minimum.values())
    n = int(r["n"])
    methods = " ".join(
        f"{m}={r.get(f'req_{m}', 0):.1f}" for m in ("GET", "POST", "PATCH", "DELETE")
    )
    print(f"N={n}:")
    print(f"  succeeded:                {r['succeeded']:.0f}/{n}")
    print(f"  create→Succeeded:         median {r['latency_median']:.1f} s, "
          f"p95 {r['latency_p95']:.1f} s")  # fmt: skip
    print(f"  pickup create→InProgress: median {r['pickup_median']:.2f} s, "
          f"p95 {r['pickup_p95']:.2f} s")  # fmt: skip
    print(f"  operator peak RSS:        {r['rss']:.1f} MiB (idle after start "
          f"{r['idle_rss']:.1f} MiB); CPU {r['cpu']:.1f} s")  # fmt: skip
    print(f"  API requests / operation: {r['requests']:.1f} ({methods}); minimum "
          f"{floor} ({' '.join(f'{m}={c}' for m, c in minimum.items())}); "
          f"ratio {r['requests'] / floor:.2f}")  # fmt: skip
    print(f"  by resource / operation:  {r['by_resource']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, nargs="+", default=[100, 1000])
    parser.add_argument(
        "--trace-memory",
        action="store_true",
        help="run the operator under tracemalloc and write where its memory goes "
        "(slower; its RSS figures are then not the product's)",
    )
    args = parser.parse_args()
    paths = localcluster.up()
    subprocess.run(
        [str(paths.kube_bin / "kubectl"), "--kubeconfig", str(paths.kubeconfig),
         "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds")],
        check=True, capture_output=True,
    )  # fmt: skip
    for release in localcluster.uninstall_operators(paths):
        print(f"uninstalled {release}: its operator would act on the benchmark's resources too")
    config.load_kube_config(str(paths.kubeconfig))
    api = client.ApiClient()
    api.configuration.connection_pool_maxsize = 32
    print(f"scale benchmark: {args.operations} operations at once; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip
    minimum = minimum_requests(1)
    floor = sum(minimum.values())
    results = []
    for n in args.operations:  # each N's figures as soon as they are there
        r = run(api, paths, n, args.trace_memory)
        results.append(r)
        report(r, minimum)
    if len(results) >= 2:
        a, b = results[0], results[-1]
        per = (b["rss"] - a["rss"]) * 1024 / (b["n"] - a["n"])
        print(f"RSS growth {a['n']:.0f}→{b['n']:.0f} operations: {b['rss'] - a['rss']:.1f} MiB "
              f"({per:.0f} KiB per operation in flight)")  # fmt: skip
    last = results[-1]
    ok = last["succeeded"] == last["n"] and last["rss"] <= 150 and last["requests"] <= 1.5 * floor
    print(f"targets at N={last['n']:.0f} (all succeed, RSS ≤ 150 MiB, requests ≤ 1.5x minimum): "
          f"{'met' if ok else 'NOT met'}; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
