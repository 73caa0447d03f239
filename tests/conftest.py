"""Shared pytest wiring: `e2e` tests get the real local cluster, started on demand."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import localcluster
from tests.e2e.kube import Kubectl, wait_for

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / ".artifacts"


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


@pytest.fixture
def namespace(admin: Kubectl) -> Iterator[str]:
    """A throwaway namespace per test, deleted afterwards (without waiting)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    admin("create", "namespace", name)
    yield name
    admin("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def kubectl(admin: Kubectl, namespace: str) -> Kubectl:
    """kubectl bound to the test's namespace."""
    return admin.in_namespace(namespace)


class OperatorProcess:
    """The real operator (`clone-operator run`) as a child process."""

    def __init__(self, kubeconfig: Path, env: dict[str, str] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path = ARTIFACTS / f"operator-{uuid.uuid4().hex[:6]}.log"

    def start(self) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), **self.env}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "clone_operator", "run", "--dev"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        wait_for("the operator to start", lambda: self.ready(), timeout=60)

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(
                f"the operator exited with {self.proc.returncode}; log: {self.log_path}"
            )
        return "clone-operator started" in self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no cleanup, as when a node dies."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        self.kill()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def operator(cluster: localcluster.Paths, crds: None) -> Iterator[OperatorProcess]:
    """The operator running against the cluster for the whole session."""
    proc = OperatorProcess(cluster.kubeconfig, env={"CLONE_OPERATOR_MAX_IN_PROGRESS": "50"})
    proc.start()
    time.sleep(0.5)
    yield proc
    proc.stop()
