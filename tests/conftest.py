"""Shared pytest wiring: `e2e` tests get the real local cluster, started on demand.

The operator under test runs in one of two ways (CLONE_OPERATOR_E2E_TARGET):

- `in-cluster`: its image, built here, installed by the Helm chart, in a pod on
  the local cluster's real node (tests/e2e/incluster.py);
- `process`: `python -m clone_operator run` on this machine, with a token of the
  chart's ServiceAccount;
- `auto` (the default): `in-cluster` when the real node is up, else `process`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import localcluster, realnode
from tests.e2e.incluster import OperatorPod, build_and_import
from tests.e2e.kube import Kubectl, sa_kubeconfig, wait_for

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / ".artifacts"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that restart the control plane run last: the rest need a steady one."""
    items.sort(key=lambda item: item.get_closest_marker("disruptive") is not None)


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


# Settings of the shared operator: a short unschedulable grace keeps failure tests quick.
# One release per test session: a token is bound to its ServiceAccount, so two
# sessions sharing one release would revoke each other's tokens on uninstall.
E2E_RELEASE, E2E_RELEASE_NAMESPACE = f"e2e-{os.getpid()}", "clone-operator-e2e"

DEFAULT_OPERATOR_ENV = {
    "CLONE_OPERATOR_MAX_IN_PROGRESS": "50",
    "CLONE_OPERATOR_UNSCHEDULABLE_GRACE_SECONDS": "5",
    "CLONE_OPERATOR_REGION_ALIASES": '{"virginia": "us-east-1", "oregon": "us-west-2"}',
    # The Lease the chart's RBAC lets its ServiceAccount renew; short timings, so that
    # an operator started after a SIGKILLed one takes over in seconds.
    "CLONE_OPERATOR_LEADER_ELECTION_NAMESPACE": E2E_RELEASE_NAMESPACE,
    "CLONE_OPERATOR_LEADER_ELECTION_LEASE": f"{E2E_RELEASE}-clone-operator",
    "CLONE_OPERATOR_LEADER_ELECTION_LEASE_SECONDS": "6",
    "CLONE_OPERATOR_LEADER_ELECTION_RENEW_DEADLINE_SECONDS": "4",
    "CLONE_OPERATOR_LEADER_ELECTION_RETRY_SECONDS": "1",
}
# The CA of the local API server's client certificate for webhooks: reviews it sends
# are answered in full (set wherever a test serves the webhook).
WEBHOOK_CLIENT_CA = {
    "CLONE_OPERATOR_WEBHOOK_CLIENT_CA": str(localcluster.webhook_client(localcluster.paths()).ca)
}


class OperatorProcess:
    """The real operator (`python -m clone_operator run`) as a child process."""

    in_cluster = False
    host_address = "127.0.0.1"  # this machine, as the operator reaches it

    def __init__(self, kubeconfig: Path, name: str = "session") -> None:
        self.kubeconfig = kubeconfig
        self.name = name
        self.env: dict[str, str] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = ARTIFACTS / "operator-none.log"
        self.starts = 0

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure(self, env: dict[str, str]) -> None:
        """Running with exactly these settings (restarted if they differ)."""
        if self.running() and self.env == env:
            return
        self.stop()
        self.env = dict(env)
        self.start()

    def start(self) -> None:
        """Launch it and wait until it acts."""
        self.launch()
        wait_for("the operator to start", self.ready, timeout=60)

    def launch(self) -> None:
        """Start the process; it may stand by (another replica leads)."""
        ARTIFACTS.mkdir(exist_ok=True)
        self.starts += 1
        self.log_path = ARTIFACTS / f"operator-{self.name}-{os.getpid()}-{self.starts}.log"
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), **self.env}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "clone_operator", "run", "--dev"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(
                f"the operator exited with {self.proc.returncode}; log: {self.log_path}"
            )
        # Acting, not just started: a leader that has taken over (after a SIGKILLed
        # predecessor, once its Lease has expired).
        alone = self.env.get("CLONE_OPERATOR_LEADER_ELECTION") == "false"
        return ("clone-operator started" if alone else "took over as leader") in self.log()

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as when the node dies."""
        if self.running():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.running():
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def monitoring_url(self) -> str:
        """The monitoring endpoint (/metrics, /readyz) as the settings place it."""
        host = self.env.get("CLONE_OPERATOR_METRICS_HOST", "127.0.0.1")
        port = self.env.get("CLONE_OPERATOR_METRICS_PORT", "8081")
        return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"


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


# The in-cluster release: one name, left running after the session (its pod's
# restarts and logs are there to inspect); a process-mode session removes it.
IN_CLUSTER_RELEASE, IN_CLUSTER_NAMESPACE = "e2e", "clone-operator-e2e"


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
    # Events posted into a namespace that an earlier test is deleting fail: expected noise.
    crashes = [
        line
        for line in text.splitlines()
        if ("Traceback" in line or " ERROR " in line or '"level": "ERROR"' in line)
        and "engines.posting" not in line
    ]
    assert not crashes, f"the operator logged errors (see {log}): {crashes[:3]}"
