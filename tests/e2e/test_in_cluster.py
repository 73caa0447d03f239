"""The operator as it ships: its image, installed by the chart, in a pod on the real node.

Only in the in-cluster mode (CLONE_OPERATOR_E2E_TARGET, see tests/conftest.py):
these prove what a process on this machine cannot — that the kernel enforces
the chart's security context, that the kubelet's probes pass, that the API
server reaches the webhook through its Service, that the Service routes.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest

from tests.cluster import realnode
from tests.e2e.harness import (
    DEFAULT_OPERATOR_ENV,
    WEBHOOK_CLIENT_CA,
    WEBHOOK_CONFIGURATION,
    OperatorProcess,
)
from tests.e2e.incluster import OperatorPod
from tests.e2e.kube import Kubectl, wait_for
from tests.e2e.manifests import operation

pytestmark = pytest.mark.e2e

WEBHOOK_ENV = {
    **DEFAULT_OPERATOR_ENV,
    **WEBHOOK_CLIENT_CA,
    "CLONE_OPERATOR_WEBHOOK_MODE": "service",
}

# Run inside the operator's container: what the kernel says about this process.
PROBE = """
import json, os
status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines())
try:
    open("/probe-write", "w")
    root_writable = True
except OSError as e:
    root_writable = e.strerror
open("/tmp/probe-write", "w").write("ok")
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
    "no_new_privs": status["NoNewPrivs"].strip(), "cap_eff": status["CapEff"].strip(),
    "cap_bnd": status["CapBnd"].strip(), "seccomp": status["Seccomp"].strip(),
    "root_writable": root_writable,
    "root_mount": [l.split()[3] for l in open("/proc/self/mounts") if l.split()[1] == "/"],
}))
"""


@pytest.fixture
def pod(operator: OperatorProcess) -> OperatorPod:
    if not isinstance(operator, OperatorPod):
        pytest.skip("in-cluster mode only (the real node is not up)")
    return operator


def test_pod_runs_on_the_real_node_ready_and_never_restarted(pod: OperatorPod) -> None:
    obj = pod.pod_object()
    assert obj["spec"]["nodeName"] == realnode.NODE_NAME
    assert obj["status"]["phase"] == "Running"
    [status] = obj["status"]["containerStatuses"]
    assert status["ready"] is True
    assert status["restartCount"] == 0
    assert status["image"].endswith(f"clone-operator:{pod.tag}")
    conditions = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
    assert conditions["Ready"] == "True"  # the kubelet's readiness probe passed


def test_security_context_is_enforced_by_the_kernel(pod: OperatorPod) -> None:
    out = pod.kubectl("exec", pod.pod_object()["metadata"]["name"], "-c", "operator", "--",
                      "python3", "-c", PROBE).stdout  # fmt: skip
    seen = json.loads(out)
    assert (seen["uid"], seen["gid"]) == (65532, 65532)  # non-root, as the chart says
    assert seen["no_new_privs"] == "1"  # allowPrivilegeEscalation: false
    assert int(seen["cap_eff"], 16) == 0  # capabilities: drop [ALL]
    assert int(seen["cap_bnd"], 16) == 0
    assert seen["seccomp"] == "2"  # seccompProfile: RuntimeDefault (filter mode)
    assert seen["root_writable"] == "Read-only file system"  # readOnlyRootFilesystem
    assert seen["root_mount"]
    assert seen["root_mount"][0].startswith("ro")


def test_probes_are_served_and_the_health_service_routes(pod: OperatorPod, admin: Kubectl) -> None:
    svc = admin.get("service", f"{pod.deployment}", "-n", pod.namespace)
    port = next(p["port"] for p in svc["spec"]["ports"] if p["name"] == "health")
    # This machine reaches the ClusterIP through kube-proxy's rules, like any node.
    url = f"http://{svc['spec']['clusterIP']}:{port}/healthz"
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
    with urllib.request.urlopen(f"{pod.monitoring_url}/readyz", timeout=10) as r:
        assert (r.status, json.loads(r.read())) == (200, {"ready": True})
    with urllib.request.urlopen(f"{pod.monitoring_url}/metrics", timeout=10) as r:
        metrics = r.read().decode()
    assert "clone_operator_" in metrics


def test_logs_are_json_as_the_chart_sets(pod: OperatorPod) -> None:
    lines = [json.loads(line) for line in pod.log().splitlines() if line.strip()]
    assert lines
    assert all({"time", "level", "message"} <= line.keys() for line in lines)
    assert any(line["message"].startswith("clone-operator started") for line in lines)


@pytest.fixture
def webhook_pod(pod: OperatorPod, admin: Kubectl) -> Iterator[OperatorPod]:
    pod.ensure(WEBHOOK_ENV)
    wait_for("the webhook configuration", lambda: admin.get("validatingwebhookconfiguration",
                                                             WEBHOOK_CONFIGURATION))  # fmt: skip
    yield pod
    pod.ensure(DEFAULT_OPERATOR_ENV)
    admin("delete", "validatingwebhookconfiguration", WEBHOOK_CONFIGURATION, "--ignore-not-found")


def test_webhook_refuses_a_bad_manifest_through_the_service(
    webhook_pod: OperatorPod, admin: Kubectl, kubectl: Kubectl
) -> None:
    [hook] = admin.get("validatingwebhookconfiguration", WEBHOOK_CONFIGURATION)["webhooks"]
    service = hook["clientConfig"]["service"]
    assert (service["namespace"], service["name"]) == (
        webhook_pod.namespace,
        f"{webhook_pod.deployment}-webhook",
    )
    # The Service's endpoints are the operator pods, leader and standby alike.
    slices = admin.items(
        "endpointslices", "-n", webhook_pod.namespace,
        "-l", f"kubernetes.io/service-name={service['name']}",
    )  # fmt: skip
    addresses = [a for s in slices for e in s.get("endpoints") or [] for a in e["addresses"]]
    assert sorted(addresses) == webhook_pod.pod_ips()
    assert len(addresses) == 2

    # Both replicas serve one certificate, shared through the chart's Secret: the
    # API server trusts whichever endpoint it picks (with a certificate each, the
    # replicas would overwrite each other's caBundle and half the calls would fail
    # open). Enough tries that both endpoints answer some of them.
    secret = admin.get(
        "secret", f"{webhook_pod.deployment}-webhook-cert", "-n", webhook_pod.namespace
    )
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "clone-operator"
    assert hook["clientConfig"]["caBundle"] == secret["data"]["tls.crt"]
    for attempt in range(8):
        name = f"bad-{attempt}"
        refused = kubectl.apply(operation(name, "missing", targetRegion="mars-1"), check=False)
        assert refused.returncode != 0, f"attempt {attempt} was admitted"
        assert f'admission webhook "{hook["name"]}" denied the request' in refused.stderr
        assert "spec.targetRegion: unknown target region 'mars-1'" in refused.stderr
        assert kubectl.get("cloningoperation", name) is None
