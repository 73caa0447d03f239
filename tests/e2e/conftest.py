"""The e2e suite's fixtures: the real local cluster, started on demand, and the operator.

The operator under test runs in one of two ways (CLONE_OPERATOR_E2E_TARGET):

- `in-cluster`: its image, built here, installed by the Helm chart, in a pod on
  the local cluster's real node (tests/e2e/incluster.py);
- `process`: `python -m clone_operator run` on this machine, with a token of the
  chart's ServiceAccount (tests/e2e/harness.py);
- `auto` (the default): `in-cluster` when the real node is up, else `process`.

Helpers live in modules of their own (harness, kube, manifests, clones, mail,
incluster, gateway); no test module imports another.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import localcluster, realnode
from tests.e2e.harness import (
    ARTIFACTS,
    DEFAULT_OPERATOR_ENV,
    E2E_RELEASE,
    E2E_RELEASE_NAMESPACE,
    IN_CLUSTER_NAMESPACE,
    IN_CLUSTER_RELEASE,
    ROOT,
    WEBHOOK_CONFIGURATION,
    WEBHOOK_ENV,
    OperatorProcess,
    Replica,
    crashes,
    stop_all,
)
from tests.e2e.incluster import OperatorPod, build_and_import
from tests.e2e.kube import Kubectl, sa_kubeconfig, wait_for
from tests.e2e.requesters import Requester


@pytest.fixture(scope="session")
def cluster() -> localcluster.Paths:
    """The local control plane: reused when running, else built and started."""
    try:
        return localcluster.up()
    except localcluster.ClusterError as e:
        pytest.fail(f"the local cluster is not available: {e}", pytrace=False)


@pytest.fixture(scope="session")
def admin(cluster: localcluster.Paths) -> Kubectl:
    """kubectl with the cluster-admin kubeconfig, no namespace."""
    return Kubectl(cluster.kube_bin / "kubectl", cluster.kubeconfig)


@pytest.fixture(scope="session")
def crds(admin: Kubectl) -> None:
    """The generated CRDs, applied as users apply them."""
    admin("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    for plural in ("cloningoperations", "cloneobjects"):
        admin("wait", "--for=condition=Established", f"crd/{plural}.cloning.dev", "--timeout=30s")


def throwaway_namespace(admin: Kubectl) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    admin("create", "namespace", name)
    yield name
    admin("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def namespace(admin: Kubectl) -> Iterator[str]:
    """A throwaway namespace per test, deleted afterwards (without waiting)."""
    yield from throwaway_namespace(admin)


@pytest.fixture
def other_namespace(admin: Kubectl) -> Iterator[str]:
    """A second throwaway namespace, for what crosses namespaces."""
    yield from throwaway_namespace(admin)


@pytest.fixture
def kubectl(admin: Kubectl, namespace: str) -> Kubectl:
    """kubectl bound to the test's namespace."""
    return admin.in_namespace(namespace)


@pytest.fixture(scope="session")
def operator_kubeconfig(
    cluster: localcluster.Paths, admin: Kubectl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """The credentials the operator runs with: the Helm chart's ServiceAccount.

    The chart is installed (its RBAC is what matters; kwok runs its pod as a
    stand-in) and the operator process gets a token of its ServiceAccount, so the
    whole e2e suite proves the chart's RBAC sufficient. CLONE_OPERATOR_E2E_ADMIN=1
    runs the operator with the admin kubeconfig instead.
    """
    if os.environ.get("CLONE_OPERATOR_E2E_ADMIN") == "1":
        yield cluster.kubeconfig
        return
    helm = [str(cluster.helm_bin / "helm"), "--kubeconfig", str(cluster.kubeconfig)]
    subprocess.run(
        [*helm, "upgrade", "--install", E2E_RELEASE, str(ROOT / "helm" / "clone-operator"),
         "--namespace", E2E_RELEASE_NAMESPACE, "--create-namespace",
         "--set", "crds.enabled=false", "--set", "image.tag=e2e"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("operator") / "kubeconfig"
    yield sa_kubeconfig(admin, E2E_RELEASE_NAMESPACE, f"{E2E_RELEASE}-clone-operator", path)
    subprocess.run(
        [*helm, "uninstall", E2E_RELEASE, "--namespace", E2E_RELEASE_NAMESPACE],
        check=False, capture_output=True,
    )  # fmt: skip


@pytest.fixture(scope="session")
def e2e_target(cluster: localcluster.Paths) -> str:
    """`in-cluster` or `process` (see the module docstring)."""
    wanted = os.environ.get("CLONE_OPERATOR_E2E_TARGET", "auto")
    if wanted not in ("auto", "in-cluster", "process"):
        pytest.fail(f"CLONE_OPERATOR_E2E_TARGET={wanted}: expected auto, in-cluster or process")
    if wanted == "process":
        return "process"
    node_up = realnode.running(localcluster.node_paths(cluster))
    if wanted == "in-cluster" and not node_up:
        reason = realnode.unavailable_reason() or "it did not start (see `make cluster`)"
        pytest.fail(f"CLONE_OPERATOR_E2E_TARGET=in-cluster, but no real node: {reason}")
    return "in-cluster" if node_up else "process"


@pytest.fixture(scope="session")
def operator_pod(cluster: localcluster.Paths, admin: Kubectl, crds: None) -> OperatorPod:
    """The operator's image on the real node, installed by the chart (not started yet)."""
    image = build_and_import(cluster.cache, cluster.cluster_dir)
    return OperatorPod(
        admin,
        cluster.helm_bin / "helm",
        IN_CLUSTER_RELEASE,
        IN_CLUSTER_NAMESPACE,
        image,
        ARTIFACTS,
    )


@pytest.fixture(scope="session")
def operator_process(
    request: pytest.FixtureRequest, e2e_target: str, crds: None
) -> Iterator[OperatorProcess]:
    """The session's operator: a process, or the chart's pod (same interface)."""
    if e2e_target == "in-cluster":
        pod: OperatorPod = request.getfixturevalue("operator_pod")
        yield pod  # type: ignore[misc]
        # Left running with the default settings, for `kubectl get pods -o wide` and logs.
        pod.ensure(DEFAULT_OPERATOR_ENV)
        pod.log()
        return
    # An in-cluster operator left by an earlier session would act beside this one.
    localcluster.uninstall_operators(request.getfixturevalue("cluster"))
    proc = OperatorProcess(request.getfixturevalue("operator_kubeconfig"))
    yield proc
    proc.stop()


@pytest.fixture
def operator(operator_process: OperatorProcess) -> Iterator[OperatorProcess]:
    """The operator running with the default test settings (restarted if a test changed them).

    A test fails if the operator logged a traceback meanwhile: kopf retries a
    crashed handler, so a crash would otherwise hide behind a passing test.
    """
    operator_process.ensure(DEFAULT_OPERATOR_ENV)
    log, offset = operator_process.log_path, len(operator_process.log())
    yield operator_process
    operator_process.log()  # in-cluster: fetch the pod's log
    text = log.read_text(errors="replace")[offset:] if log == operator_process.log_path else ""
    # What kopf logs while it shuts down (a stop right after a start) is not the test's.
    text = text.split("Activity 'cleanup'")[0]
    found = crashes(text)
    assert not found, f"the operator logged errors (see {log}): {found[:3]}"


@pytest.fixture
def webhook(operator: OperatorProcess, admin: Kubectl) -> Iterator[OperatorProcess]:
    """The operator serving its webhook; the configuration is removed afterwards."""
    operator.ensure({**WEBHOOK_ENV, "CLONE_OPERATOR_UNSCHEDULABLE_GRACE_SECONDS": "600"})
    wait_for(
        "the webhook configuration",
        lambda: admin.get("validatingwebhookconfiguration", WEBHOOK_CONFIGURATION),
    )
    yield operator
    operator.stop()
    admin("delete", "validatingwebhookconfiguration", WEBHOOK_CONFIGURATION, "--ignore-not-found")
    admin("delete", "mutatingwebhookconfiguration", WEBHOOK_CONFIGURATION, "--ignore-not-found")


@pytest.fixture
def requester(admin: Kubectl, namespace: str, tmp_path: Path) -> Requester:
    """A ServiceAccount that may create CloneObjects and CloningOperations in its namespace."""
    name = "requester"
    admin.in_namespace(namespace)("create", "serviceaccount", name)
    token_only = sa_kubeconfig(admin, namespace, name, tmp_path / "kubeconfig")
    who = Requester(name, namespace, admin, Kubectl(admin.binary, token_only, namespace))
    # `kubectl apply` reads before it creates: get and create, as the cloner role grants.
    who.allow(namespace, "get,create", "cloneobjects.cloning.dev")
    who.allow(namespace, "get,create", "cloningoperations.cloning.dev")
    return who


@pytest.fixture
def replicas(
    operator_process: OperatorProcess, operator_kubeconfig: Path
) -> Iterator[list[Replica]]:
    """Two replicas with the chart's ServiceAccount; the session's operator steps aside."""
    operator_process.stop()
    # Names unique per test: a log never carries an earlier test's "took over" line.
    run = uuid.uuid4().hex[:6]
    pair = [
        Replica(operator_kubeconfig, f"a-{run}", 18191),
        Replica(operator_kubeconfig, f"b-{run}", 18192),
    ]
    for replica in pair:
        replica.launch()
    yield pair
    stop_all(pair)
