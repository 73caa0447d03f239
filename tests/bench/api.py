"""Benchmark: the gateway's latency for create, get and a 10-per-page list, per seed API.

    make bench-api                        # 1,000 operations and 1,000 clone objects
    python -m tests.bench.api --count 200

Runs the real gateway (`clone-operator api`, with the chart's gateway identity)
against the local cluster and calls it as a client would, one request at a time,
with a ServiceAccount token. No operator runs: the numbers are the gateway's and
the API server's. Typesense allows one active operation per cluster, so the
benchmark marks each new operation Succeeded (a status write, not timed) before
creating the next; lists page through all of them.
Prints p50/p95 per API and call. Target (issue 13): p95 ≤ 100 ms for get and list.
Beside each Typesense get and list it also times, with the same token, the API
server calls that list makes (the Table of the cluster's names, the page's ten
objects by label), so the gateway's own share shows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import ssl
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
from kubernetes import client, config

from clone_operator.gateway import views
from clone_operator.gateway.kube import TABLE, Endpoint
from tests.cluster import localcluster
from tests.e2e.gateway import GatewayProcess, install_gateway_rbac
from tests.e2e.kube import Kubectl, sa_kubeconfig
from tests.e2e.manifests import statefulset

ROOT = Path(__file__).resolve().parents[2]
RELEASE = "bench-api"
TARGET_MS = 100.0
DIRECT = "  api server:"
"""Rows that time the API server alone (no target: they show what the gateway adds)."""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(q * len(ordered)) - 1)]


def loads(averages: tuple[float, float, float]) -> str:
    """Load averages as `uptime` prints them."""
    return ", ".join(f"{a:.2f}" for a in averages)


def timed(samples: list[float], call: Callable[[], httpx.Response], expect: int) -> httpx.Response:
    start = time.perf_counter()
    response = call()
    samples.append((time.perf_counter() - start) * 1000)
    if response.status_code != expect:
        raise SystemExit(f"{response.request.url}: {response.status_code} {response.text}")
    return response


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="operations and objects each")
    args = parser.parse_args()

    paths = localcluster.up()
    load_before = os.getloadavg()
    admin = Kubectl(paths.kube_bin / "kubectl", paths.kubeconfig)
    admin("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    suffix = uuid.uuid4().hex[:6]
    home, gateway_ns = f"bench-api-{suffix}", f"bench-api-gw-{suffix}"
    for ns in (home, gateway_ns):
        admin("create", "namespace", ns)
    user = admin.in_namespace(home)
    try:
        user("create", "serviceaccount", "bench")
        user("create", "role", "bench", "--verb=*",
             "--resource=cloningoperations.cloning.dev,cloneobjects.cloning.dev,statefulsets.apps,configmaps,secrets,services,persistentvolumeclaims")  # fmt: skip
        user("create", "rolebinding", "bench", "--role=bench", f"--serviceaccount={home}:bench")
        token = user("create", "token", "bench", "--duration", "2h").stdout.strip()
        user.apply(statefulset("search", replicas=1))
        user("create", "configmap", "settings", "--from-literal=a=b")
        install_gateway_rbac(admin, paths.helm_bin / "helm", gateway_ns, RELEASE)
        kubeconfig = sa_kubeconfig(
            admin, gateway_ns, f"{RELEASE}-clone-operator-api",
            Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-api-{suffix}.kubeconfig",
        )  # fmt: skip
        gateway = GatewayProcess(kubeconfig, gateway_ns, "bench-gateway")
        config.load_kube_config(str(paths.kubeconfig))
        custom = client.CustomObjectsApi()
        endpoint = Endpoint.from_kubeconfig(paths.kubeconfig)
        try:
            with httpx.Client(
                base_url=endpoint.server,
                verify=ssl.create_default_context(cafile=endpoint.ca_file),
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            ) as direct:
                results = run(gateway.url, token, home, args.count, custom, direct)
        finally:
            gateway.stop()
    finally:
        for ns in (home, gateway_ns):
            admin("delete", "namespace", ns, "--wait=false", check=False)

    print(f"\ngateway latency, {args.count} each, one request at a time (ms), "
          f"on {os.cpu_count()} CPUs with load averages (1, 5, 15 min) "
          f"{loads(load_before)} before, {loads(os.getloadavg())} after:")  # fmt: skip
    print(f"  {'call':<34} {'p50':>7} {'p95':>7}")
    failed = False
    for name, samples in results.items():
        p50, p95 = statistics.median(samples), percentile(samples, 0.95)
        flag = ""
        if not name.endswith("create") and not name.startswith(DIRECT) and p95 > TARGET_MS:
            flag, failed = f"  > target {TARGET_MS:.0f} ms", True
        print(f"  {name:<34} {p50:7.1f} {p95:7.1f}{flag}")
    print(json.dumps({k: round(percentile(v, 0.95), 1) for k, v in results.items()}))
    return 1 if failed else 0


def run(
    url: str,
    token: str,
    namespace: str,
    count: int,
    custom: client.CustomObjectsApi,
    direct: httpx.Client,
) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {
        k: []
        for k in (
            "typesense create",
            "typesense get",
            "typesense list (10 per page)",
            f"{DIRECT} get",
            f"{DIRECT} Table of the names",
            f"{DIRECT} 10 by label (in)",
            "bridge create",
            "bridge get",
            "bridge list (10 per page)",
        )
    }
    ts = "/api/v1/clusters/search/cloning-operations"
    done = {"phase": "Succeeded", "completedAt": "2026-01-01T00:00:00Z"}
    with httpx.Client(
        base_url=url, headers={"X-TYPESENSE-CLOUD-MANAGEMENT-API-KEY": token}, timeout=30
    ) as http:
        ids: list[str] = []
        for _ in range(count):
            r = timed(results["typesense create"],
                      lambda: http.post(ts, json={"typesense_server_version": "28.0"}), 201)  # fmt: skip
            ids.append(r.json()["cloning_operation"]["id"])
            custom.patch_namespaced_custom_object_status(
                "cloning.dev", "v1alpha1", namespace, "cloningoperations", ids[-1], {"status": done}
            )
        pages = (count + 9) // 10
        resource = f"/apis/cloning.dev/v1alpha1/namespaces/{namespace}/cloningoperations"
        names = {"fieldSelector": "spec.sourceCluster=search", "includeObject": "None"}
        for _ in range(count):
            op = random.choice(ids)
            timed(results["typesense get"], lambda op=op: http.get(f"{ts}/{op}"), 200)
            page = random.randint(1, pages)
            timed(results["typesense list (10 per page)"],
                  lambda page=page: http.get(ts, params={"page": page, "per_page": 10}), 200)  # fmt: skip
            timed(results[f"{DIRECT} get"], lambda op=op: direct.get(f"{resource}/{op}"), 200)
            timed(results[f"{DIRECT} Table of the names"],
                  lambda: direct.get(resource, params=names, headers={"Accept": TABLE}), 200)  # fmt: skip
            selector = views.any_of(views.OPERATION_ID_LABEL, random.sample(ids, 10))
            timed(results[f"{DIRECT} 10 by label (in)"],
                  lambda s=selector: direct.get(resource, params={"labelSelector": s}), 200)  # fmt: skip

        bridge = "/api/admin/clone_objects"
        body = {"clone_objects": [{"source_id": "settings", "source_type": "ConfigMap"}]}
        numbers: list[int] = []
        for _ in range(count):
            r = timed(results["bridge create"], lambda: http.post(bridge, json=body), 201)
            numbers.append(r.json()["clone_objects"][0]["id"])
        for _ in range(count):
            number = random.choice(numbers)
            timed(results["bridge get"], lambda n=number: http.get(f"{bridge}/{n}"), 200)
            page = random.randint(1, pages)
            timed(results["bridge list (10 per page)"],
                  lambda page=page: http.get(bridge, params={"page": page, "per_page": 10}), 200)  # fmt: skip
    return results


if __name__ == "__main__":
    raise SystemExit(main())
