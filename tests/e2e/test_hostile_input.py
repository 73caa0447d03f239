"""Hostile input, tried as an attacker would: every write stays inside what admission
checked, and no input stalls the operator. And the isolation guard makes the clones it
should (operations named like pods, servers that advertise `$(POD_NAME).<service>…`).

Requests that probe admission are made with a token-only kubeconfig (a
ServiceAccount that may create CloneObjects, CloningOperations and ConfigMaps, and
nothing else). Assertions read back from the real API server.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import Any

import pytest

from tests.e2e.clones import TERMINAL, wait_phase
from tests.e2e.harness import OperatorProcess
from tests.e2e.kube import Kubectl, ready_replicas, wait_for
from tests.e2e.manifests import clone_object, operation, statefulset
from tests.e2e.requesters import Requester

pytestmark = pytest.mark.e2e

PWN = {
    "apiVersion": "apps/v1",
    "kind": "StatefulSet",
    "spec": {
        "serviceName": "pwn",
        "replicas": 1,
        "selector": {"matchLabels": {"app": "pwn"}},
        "template": {
            "metadata": {"labels": {"app": "pwn"}},
            "spec": {
                "containers": [
                    {"name": "c", "image": "busybox:1.36", "securityContext": {"privileged": True}}
                ]
            },
        },
    },
}

# (what the override swaps to, the overrides): the issue's kind swap and its relatives.
SWAPS: list[tuple[str, dict[str, Any]]] = [
    ("StatefulSet", PWN),
    ("Secret", {"kind": "Secret", "type": "Opaque"}),
    ("Service", {"kind": "Service", "spec": {"ports": [{"port": 80}]}}),
    ("Pod", {"kind": "Pod", "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    ("CloneObject", {"apiVersion": "cloning.dev/v1alpha1", "kind": "CloneObject"}),
    ("CloningOperation", {"apiVersion": "cloning.dev/v1alpha1", "kind": "CloningOperation"}),
    ("apiVersion", {"apiVersion": "v2"}),
    ("nonsense", {"kind": "Nope"}),
]


def test_overrides_that_change_what_a_copy_is_are_refused_at_apply(
    crds: None,
    requester: Requester,
    kubectl: Kubectl,
) -> None:
    """No operator needed: the CRDs refuse them, for every requester."""
    namespace = kubectl.namespace or ""
    requester.allow(namespace, "get,create", "configmaps")
    kubectl("create", "configmap", "seed", "--from-literal=a=b")
    for swapped, overrides in SWAPS:
        manifest = clone_object(f"swap-{swapped.lower()}", "ConfigMap", "seed",
                                name="pwn", overrides=overrides)  # fmt: skip
        result = requester.kubectl.apply(manifest, check=False)
        assert result.returncode != 0, f"the {swapped} swap was admitted"
        assert "spec.options.overrides" in result.stderr, result.stderr
        assert "cannot set apiVersion or kind" in result.stderr, result.stderr
    for field in ("name", "namespace", "ownerReferences"):
        value: Any = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "u"}]
        value = value if field == "ownerReferences" else "elsewhere"
        manifest = clone_object(f"move-{field.lower()}", "ConfigMap", "seed",
                                overrides={"metadata": {field: value}})  # fmt: skip
        result = requester.kubectl.apply(manifest, check=False)
        assert result.returncode != 0, field
        assert f"metadata.{field}" in result.stderr, result.stderr
    cluster = operation("kind-in-target", "any", targetOverrides={"kind": "Deployment"})
    result = requester.kubectl.apply(cluster, check=False)
    assert result.returncode != 0
    assert "spec.targetOverrides: Invalid value" in result.stderr, result.stderr
    assert "cannot set apiVersion or kind" in result.stderr
    assert kubectl.items("cloneobjects") == []
    assert kubectl.items("cloningoperations") == []
    for kind in ("statefulset", "secret", "service", "pod", "deployment"):
        assert kubectl.get(kind, "pwn") is None, kind


def test_content_overrides_still_apply(kubectl: Kubectl, operator: OperatorProcess) -> None:
    kubectl("create", "configmap", "seed", "--from-literal=a=b")
    kubectl.apply(clone_object("content", "ConfigMap", "seed", name="copied",
                               overrides={"data": {"a": "c"}, "metadata": {"labels": {"x": "y"}}}))  # fmt: skip
    wait_for("the copy", lambda: (kubectl.get("cloneobject", "content").get("status") or {})
             .get("state") == "Created")  # fmt: skip
    copied = kubectl.get("configmap", "copied")
    assert (copied["data"], copied["metadata"]["labels"]["x"]) == ({"a": "c"}, "y")


def source(kubectl: Kubectl, name: str, replicas: int = 1, **server: Any) -> None:
    """A source whose governing Service is `<name>-peers`; `server` adds to its container."""
    service, sts = statefulset(name, replicas=replicas)
    service["metadata"]["name"] = sts["spec"]["serviceName"] = f"{name}-peers"
    sts["spec"]["template"]["spec"]["containers"][0].update(server)
    # Created, not applied: `kubectl apply` would copy a huge value into an annotation.
    kubectl("create", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                   "items": [service, sts]}))  # fmt: skip
    wait_for(f"source {name} ready", lambda: ready_replicas(kubectl, name) == replicas, timeout=90)


def succeeds(kubectl: Kubectl, name: str, timeout: float = 120) -> dict[str, Any]:
    st = wait_phase(kubectl, name, TERMINAL, timeout=timeout)
    assert st["phase"] == "Succeeded", st
    return st


def test_operations_named_like_the_sources_pods_clone(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    """`race-0`, `race-1`: the guard looks at what came from the source, never at the
    operator's own provenance (its operation annotation, the target's selector label)."""
    source(kubectl, "race")
    for name in ("race-0", "race-1"):
        kubectl.apply(operation(name, "race"))
        succeeds(kubectl, name)
    kubectl.apply(operation("race-2", "race", targetName="race-1"))
    st = succeeds(kubectl, "race-2")
    assert st["targetCluster"] == "race-1"


def test_operations_named_like_the_sources_pods_pass_the_webhook(
    webhook: OperatorProcess,
    kubectl: Kubectl,
) -> None:
    source(kubectl, "race")
    kubectl.apply(operation("race-0", "race", targetName="race-1"))
    succeeds(kubectl, "race-0")


def test_a_server_that_advertises_its_own_name_clones_into_the_targets_zone(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    namespace = kubectl.namespace or ""
    advertised = f"$(POD_NAME).adv-peers.{namespace}.svc.cluster.local"
    source(
        kubectl,
        "adv",
        replicas=2,
        args=[f"--peering-address={advertised}", "--srv=_peer._tcp.adv-peers." + namespace],
        env=[
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "ADVERTISED_LISTENERS", "value": f"PLAINTEXT://{advertised}:9092"},
        ],
    )
    kubectl.apply(operation("advertise", "adv", targetName="adv-copy"))
    succeeds(kubectl, "advertise")
    own = f"$(POD_NAME).adv-copy.{namespace}.svc.cluster.local"
    pods = kubectl.items("pods", "-l", "cloning.dev/cluster=adv-copy")
    assert len(pods) == 2
    for pod in pods:
        [server] = pod["spec"]["containers"]
        assert server["args"] == [
            f"--peering-address={own}",
            f"--srv=_peer._tcp.adv-copy.{namespace}",
        ]
        assert server["env"][1] == {
            "name": "ADVERTISED_LISTENERS",
            "value": f"PLAINTEXT://{own}:9092",
        }
        assert "adv-peers" not in json.dumps(pod["spec"])
    events = kubectl.items("events", "--field-selector", "involvedObject.name=advertise")
    [audit] = [e["message"] for e in events if e["reason"] == "IdentityRewritten"]
    assert "rewrote 3 references to the source" in audit
    assert f"spec.template.spec.containers[0].args[0]: '--peering-address={advertised}' → " in audit


def test_a_huge_value_does_not_stall_the_operator(
    kubectl: Kubectl, other_namespace: str, operator: OperatorProcess
) -> None:
    """300 kB in a source's pod template (a reference at its end, as the old backtracking
    guard was slowest on): health answers throughout, another namespace's clone is made
    meanwhile, and the operation itself succeeds."""
    namespace = kubectl.namespace or ""
    huge = "a" * 300_000 + f" big-0.big-peers.{namespace}.svc"
    source(kubectl, "big", env=[{"name": "SEEDS", "value": huge}])
    slowest, stop = [0.0], threading.Event()

    def probe() -> None:
        while not stop.is_set():
            started = time.monotonic()
            with urllib.request.urlopen(f"{operator.monitoring_url}/readyz", timeout=10):
                pass
            slowest[0] = max(slowest[0], time.monotonic() - started)
            time.sleep(0.2)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        other = kubectl.in_namespace(other_namespace)
        other("create", "configmap", "seed", "--from-literal=a=b")
        kubectl.apply(operation("huge", "big", targetName="big-copy"))
        other.apply(clone_object("meanwhile", "ConfigMap", "seed"))
        wait_for("the other namespace's clone", lambda: (other.get("cloneobject", "meanwhile")
                 .get("status") or {}).get("state") == "Created", timeout=60)  # fmt: skip
        succeeds(kubectl, "huge", timeout=120)
    finally:
        stop.set()
        prober.join(timeout=15)
    assert slowest[0] < 2.0, f"/readyz took {slowest[0]:.2f} s"
    [server] = kubectl.get("statefulset", "big-copy")["spec"]["template"]["spec"]["containers"]
    assert server["env"][0]["value"].endswith(f" big-copy-0.big-copy.{namespace}.svc")
