"""The real operator process, authenticated as the chart's ServiceAccount.

The operator runs as a child process (no image is needed) with a kubeconfig
holding a `kubectl create token` token of the ServiceAccount the chart
installed, instead of admin credentials: whatever it needs and the chart's
RBAC does not grant shows up as a 403 in its log and a stuck operation.

It watches only the test's namespace (CLONE_OPERATOR_NAMESPACES). The shared
session operator (the `operator` fixture), when some other test started it,
watches every namespace and may act on the same objects; the engine is built
for that (atomic lease lock, guarded transitions), so the outcome is the same,
and the assertions on *this* process's log hold either way.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.chart.helm import Release
from tests.e2e.clones import wait_state
from tests.e2e.harness import OperatorProcess
from tests.e2e.kube import Kubectl, ready_replicas, sa_kubeconfig, wait_for
from tests.e2e.manifests import clone_object, operation, statefulset

pytestmark = pytest.mark.e2e

FORBIDDEN_MARKERS = ("Forbidden", "forbidden", " 403")


def phase(kubectl: Kubectl, name: str) -> str | None:
    op = kubectl.get("cloningoperation", name) or {}
    return (op.get("status") or {}).get("phase")


def run_clone(kubectl: Kubectl, proc: OperatorProcess) -> dict[str, object]:
    kubectl.apply(statefulset("src", replicas=1))
    wait_for("the source to be ready", lambda: ready_replicas(kubectl, "src") == 1, timeout=90)
    kubectl.apply(operation("copy", "src", targetName="src-copy"))
    final = wait_for(
        "the operation to finish",
        lambda: (
            phase(kubectl, "copy") in ("Succeeded", "Failed", "Canceled")
            and kubectl.get("cloningoperation", "copy")
        ),
        timeout=120,
    )
    assert proc.running(), f"the operator died:\n{proc.log()[-3000:]}"
    return final


def test_operator_with_chart_sa_token_reconciles(
    release: Release, admin: Kubectl, kubectl: Kubectl, namespace: str, crds: None, tmp_path: Path
) -> None:
    release.install(**{"crds.enabled": "false"})
    config = sa_kubeconfig(admin, namespace, release.fullname, tmp_path / "sa.kubeconfig")
    # The kubeconfig really is the ServiceAccount's: it may read nodes, not change them.
    as_sa = Kubectl(admin.binary, config)
    whoami = json.loads(as_sa("auth", "whoami", "-o", "json").stdout)
    assert whoami["status"]["userInfo"]["username"] == (
        f"system:serviceaccount:{namespace}:{release.fullname}"
    )
    assert as_sa("get", "nodes").returncode == 0
    denied = as_sa("label", "node", "kwok-east-a", "x=y", check=False)
    assert "forbidden" in denied.stderr

    # Restricted to this namespace, kopf lists/watches Namespace objects, a
    # permission the chart grants only with watchNamespaces (where the operator
    # is always restricted); grant that one rule here, as that mode would.
    scan = f"{release.fullname}-namespace-scan"
    admin("create", "clusterrole", scan, "--verb=list,watch", "--resource=namespaces")
    admin(
        "create",
        "clusterrolebinding",
        scan,
        f"--clusterrole={scan}",
        f"--serviceaccount={namespace}:{release.fullname}",
    )
    proc = OperatorProcess(config, name="sa-token")
    env = chart_env(release, namespace)
    try:
        proc.ensure(env)
        assert f"namespaces={namespace}" in proc.log()
        final = run_clone(kubectl, proc)
        status = final["status"]
        assert isinstance(status, dict)
        assert status["phase"] == "Succeeded", status
        assert status["targetCluster"] == "src-copy"
        assert ready_replicas(kubectl, "src-copy") == 1
        # CloneObjects too: a ConfigMap and a Secret (listed by owner, never watched).
        kubectl("create", "configmap", "seed", "--from-literal=k=v")
        kubectl("create", "secret", "generic", "seed", "--from-literal=k=v")
        for kind in ("ConfigMap", "Secret"):
            name = f"seed-{kind.lower()}"
            kubectl.apply(clone_object(name, kind, "seed", name=name))
            assert wait_state(kubectl, name)["state"] == "Created"
            assert kubectl.get(kind.lower(), name) is not None
    finally:
        proc.stop()
        admin("delete", f"clusterrolebinding/{scan}", f"clusterrole/{scan}", check=False)
    log = proc.log()
    assert not [m for m in FORBIDDEN_MARKERS if m in log], log[-4000:]


def chart_env(release: Release, namespace: str) -> dict[str, str]:
    """The settings the chart gives the operator that its RBAC depends on."""
    return {
        "CLONE_OPERATOR_NAMESPACES": json.dumps([namespace]),
        "CLONE_OPERATOR_LEADER_ELECTION_NAMESPACE": release.namespace,
        "CLONE_OPERATOR_LEADER_ELECTION_LEASE": release.fullname,
    }


def test_operator_with_namespaced_rbac_starts(
    release: Release, admin: Kubectl, namespace: str, crds: None, tmp_path: Path
) -> None:
    release.install(**{"crds.enabled": "false", "watchNamespaces": json.dumps([namespace])})
    config = sa_kubeconfig(admin, namespace, release.fullname, tmp_path / "sa.kubeconfig")
    proc = OperatorProcess(config, name="sa-token-namespaced")
    env = chart_env(release, namespace)
    try:
        proc.ensure(env)
    finally:
        proc.stop()
    assert "clone-operator started" in proc.log()
