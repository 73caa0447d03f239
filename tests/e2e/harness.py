"""The operator under test as the e2e suite drives it, and the settings it runs with.

`OperatorProcess` runs `python -m clone_operator run` on this machine;
`tests/e2e/incluster.py`'s `OperatorPod` has the same interface for the chart's pods
on the real node. The fixtures that choose between them are in tests/e2e/conftest.py.
This module holds no fixtures and no tests.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.cluster import localcluster
from tests.e2e.kube import wait_for

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / ".artifacts"

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
    # The data mover (copyMethod Transfer; its image the default, `make mover-image`): every
    # transfer limited to 512 KiB/s, so that a test catches one mid-way with a few MB.
    "CLONE_OPERATOR_MOVER_BANDWIDTH_KIB": "512",
}

# The CA of the local API server's client certificate for webhooks: reviews it sends
# are answered in full (set wherever a test serves the webhook).
WEBHOOK_CLIENT_CA = {
    "CLONE_OPERATOR_WEBHOOK_CLIENT_CA": str(localcluster.webhook_client(localcluster.paths()).ca)
}
# The operator's ValidatingWebhookConfiguration (and MutatingWebhookConfiguration).
WEBHOOK_CONFIGURATION = "clone-operator.cloning.dev"

# The in-cluster release: one name, left running after the session (its pod's
# restarts and logs are there to inspect); a process-mode session removes it.
IN_CLUSTER_RELEASE, IN_CLUSTER_NAMESPACE = "e2e", "clone-operator-e2e"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# A port of this session's own: kopf binds with SO_REUSEPORT, so two sessions on one
# machine serving 9443 would share each other's connections.
WEBHOOK_ENV = {
    **DEFAULT_OPERATOR_ENV,
    **WEBHOOK_CLIENT_CA,
    "CLONE_OPERATOR_WEBHOOK_MODE": "local",
    "CLONE_OPERATOR_WEBHOOK_PORT": str(free_port()),
}


def crashes(log: str) -> list[str]:
    """The lines of an operator log that say it crashed or logged an error.

    Events posted into a namespace that an earlier test is deleting fail: expected noise.
    """
    return [
        line
        for line in log.splitlines()
        if ("Traceback" in line or " ERROR " in line or '"level": "ERROR"' in line)
        and "engines.posting" not in line
    ]


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


WRITES = ("POST", "PUT", "PATCH", "DELETE")


class Replica(OperatorProcess):
    """One operator replica with its own metrics port (and no health port)."""

    def __init__(self, kubeconfig: Path, name: str, metrics_port: int) -> None:
        super().__init__(kubeconfig, name)
        self.metrics_port = metrics_port
        self.env = {
            **DEFAULT_OPERATOR_ENV,
            "CLONE_OPERATOR_HEALTH_PORT": "0",
            "CLONE_OPERATOR_METRICS_PORT": str(metrics_port),
        }

    def leads(self) -> bool:
        return self.running() and "took over as leader" in self.log()

    def metric(self, name: str) -> dict[str, float]:
        """label text → value of one metric family, scraped from the replica."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        pattern = rf"^{name}(\{{[^}}]*\}})? (\S+)$"
        return {m.group(1) or "": float(m.group(2)) for m in re.finditer(pattern, text, re.M)}

    def engine_writes(self) -> float:
        counts = self.metric("clone_operator_api_requests_total")
        return sum(v for label, v in counts.items() if any(f'"{w}"' in label for w in WRITES))


def stop_all(replicas: list[Replica]) -> None:
    """Stop every replica, resuming a paused one first (SIGTERM waits behind SIGSTOP)."""
    for replica in replicas:
        if replica.proc is not None and replica.proc.poll() is None:
            replica.proc.send_signal(signal.SIGCONT)
        replica.stop()
