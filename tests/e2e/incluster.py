"""The operator as users run it: its image, installed by the Helm chart, in a pod
on the local cluster's real node (tests/cluster/realnode.py).

`OperatorPod` has the interface of the process-mode `OperatorProcess`
(tests/conftest.py), so the e2e suite runs unchanged against either
(CLONE_OPERATOR_E2E_TARGET). The Kubernetes way stands in for signals:

- the chart's default shape: REPLICAS (2) pods with leader election, so the
  whole suite runs against an operator with a standby replica (the Lease
  holder acts; never more than the configured InProgress limit whoever leads).
- settings (`ensure(env)`) become chart values (`helm upgrade`: a rolling
  update, the new pods take the lead when an old one releases it); settings
  without a value go through `extraEnv`. Process-only settings (where to
  listen) are the chart's business.
- `stop()` scales the Deployment to 0 and waits for the pods to go (SIGTERM,
  kopf's cleanup); `kill()` force-deletes them with no grace period, as when
  their node dies; `start()` scales back and waits until they are Ready and
  one of them leads.
- "the pod" (`pod`, `pod_object()`, `monitoring_url`, `log()`) is the leader,
  found from the Lease's holder. `log()` is `kubectl logs` of it; every pod's
  log is kept in `.artifacts/` (per pod, so a replaced pod's log stays readable).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.cluster import realnode
from tests.e2e.kube import Kubectl, wait_for

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "clone-operator"

# Operator settings that are chart values: env name -> (value path, is JSON).
CHART_VALUES = {
    "CLONE_OPERATOR_REGION_ALIASES": ("operator.regionAliases", True),
    "CLONE_OPERATOR_ALLOWED_REGIONS": ("operator.allowedRegions", True),
    "CLONE_OPERATOR_MAX_IN_PROGRESS": ("operator.maxInProgress", True),
    "CLONE_OPERATOR_MAX_IN_PROGRESS_PER_NAMESPACE": ("operator.maxInProgressPerNamespace", True),
    "CLONE_OPERATOR_MAX_TIMEOUT_SECONDS": ("operator.maxTimeoutSeconds", True),
    "CLONE_OPERATOR_UNSCHEDULABLE_GRACE_SECONDS": ("operator.unschedulableGraceSeconds", True),
    "CLONE_OPERATOR_LOG_FORMAT": ("operator.logFormat", False),
    "CLONE_OPERATOR_MOVER_IMAGE": ("operator.mover.image", False),
    "CLONE_OPERATOR_MOVER_BANDWIDTH_KIB": ("operator.mover.bandwidthKiB", True),
    "CLONE_OPERATOR_TRANSFER_STALL_SECONDS": ("operator.transferStallSeconds", True),
    "CLONE_OPERATOR_SMTP_HOST": ("notifications.smtp.host", False),
    "CLONE_OPERATOR_SMTP_PORT": ("notifications.smtp.port", True),
    "CLONE_OPERATOR_SMTP_SECURITY": ("notifications.smtp.security", False),
    "CLONE_OPERATOR_SMTP_FROM": ("notifications.smtp.from", False),
    "CLONE_OPERATOR_SMTP_MAX_ATTEMPTS": ("notifications.smtp.maxAttempts", True),
}
# Where the process listens is the chart's to decide in a pod (probes, Services).
PROCESS_ONLY = {
    "CLONE_OPERATOR_WEBHOOK_MODE",
    "CLONE_OPERATOR_WEBHOOK_PORT",
    "CLONE_OPERATOR_WEBHOOK_HOST",
    "CLONE_OPERATOR_METRICS_HOST",
    "CLONE_OPERATOR_METRICS_PORT",
    "CLONE_OPERATOR_HEALTH_PORT",
    # The chart names the Lease its RBAC lets the pod renew.
    "CLONE_OPERATOR_LEADER_ELECTION_NAMESPACE",
    "CLONE_OPERATOR_LEADER_ELECTION_LEASE",
}
METRICS_PORT = 8081  # the chart's metrics.port
REPLICAS = 2  # the chart's default replicaCount


def chart_values(
    image: str, env: dict[str, str], host_address: str = realnode.GATEWAY
) -> list[str]:
    """`helm` arguments that run `image` on the real node with these operator settings.

    Shared by the harness (`OperatorPod`) and `make deploy` (hack/deploy.py): the
    image is imported into the node, never pulled; the CRDs are applied from crds/
    beforehand; a local SMTP host is this machine as pods reach it.
    """
    repository, tag = image.rsplit(":", 1)
    webhook = env.get("CLONE_OPERATOR_WEBHOOK_MODE", "off") != "off"
    args = [
        "--set", f"image.repository={repository}",
        "--set", f"image.tag={tag}",
        "--set", "image.pullPolicy=Never",  # imported into the node, never pulled
        "--set", "crds.enabled=false",  # applied from crds/ (the tests, `make crds-apply`)
        "--set", f"webhook.enabled={str(webhook).lower()}",
        "--set", "operator.logFormat=json",
        "--set", f"replicaCount={REPLICAS}",
        "--set-json", f"nodeSelector={json.dumps({realnode.TAINT_KEY: 'true'})}",
        "--set-json", "tolerations=" + json.dumps(
            [{"key": realnode.TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]
        ),
    ]  # fmt: skip
    extra = []
    for name, value in env.items():
        if name in PROCESS_ONLY:
            continue
        if name == "CLONE_OPERATOR_SMTP_HOST" and value in ("127.0.0.1", "localhost"):
            value = host_address
        if name == "CLONE_OPERATOR_WEBHOOK_CLIENT_CA":  # a file here, its PEM in the chart
            args += ["--set-file", f"webhook.clientCA={value}"]
        elif name in CHART_VALUES:
            path, is_json = CHART_VALUES[name]
            args += ["--set-json" if is_json else "--set-string", f"{path}={value}"]
        else:
            extra.append({"name": name, "value": value})
    args += ["--set-json", f"extraEnv={json.dumps(extra)}"]
    return args


def helm_install(helm: list[str], release: str, namespace: str, values: list[str]) -> None:
    """`helm upgrade --install` (values reset to these), waiting for the Deployment."""
    result = subprocess.run(
        [*helm, "upgrade", "--install", release, str(CHART),
         "--namespace", namespace, "--create-namespace", "--reset-values",
         *values, "--wait", "--timeout", "180s"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise AssertionError(f"helm upgrade --install {release}: {result.stderr}")


def fullname(release: str) -> str:
    """The chart's `clone-operator.fullname`: its Deployment's and its Lease's name."""
    return release if "clone-operator" in release else f"{release}-clone-operator"


def pods_of(kubectl: Kubectl, release: str) -> list[str]:
    pods = kubectl.items("pod", "-l", f"app.kubernetes.io/instance={release}")
    return [p["metadata"]["name"] for p in pods]


def leader_of(kubectl: Kubectl, release: str) -> str | None:
    """The pod named by the release's Lease holder (`<pod>_<random>`), if one holds it."""
    lease = kubectl.get("lease", fullname(release))
    holder = ((lease or {}).get("spec") or {}).get("holderIdentity") or ""
    return holder.rsplit("_", 1)[0] or None


def all_ready_and_leading(kubectl: Kubectl, release: str) -> str | None:
    """The leading pod once every replica is Ready and one of them holds the Lease."""
    pods = pods_of(kubectl, release)
    dep = kubectl.get("deployment", fullname(release)) or {}
    ready = int((dep.get("status") or {}).get("readyReplicas") or 0)
    leader = leader_of(kubectl, release)
    if len(pods) != REPLICAS or ready != REPLICAS or leader not in pods:
        return None
    return leader


class OperatorPod:
    """The chart's operator Deployment on the real node, driven like a process."""

    in_cluster = True
    host_address = realnode.GATEWAY  # this machine, as pods reach it (e.g. the test SMTP server)

    def __init__(
        self, admin: Kubectl, helm: Path, release: str, namespace: str, image: str, artifacts: Path
    ) -> None:
        self.admin = admin
        self.kubectl = admin.in_namespace(namespace)
        self.helm = [str(helm), "--kubeconfig", str(admin.kubeconfig)]
        self.release, self.namespace = release, namespace
        self.image = image
        self.artifacts = artifacts
        self.env: dict[str, str] = {}
        self.installed_env: dict[str, str] | None = None
        self.pod = ""
        self.log_path = artifacts / "operator-pod-none.log"

    @property
    def deployment(self) -> str:
        return fullname(self.release)

    # --- the chart ----------------------------------------------------------------------------

    def install(self, env: dict[str, str]) -> None:
        """`helm upgrade --install` with these settings; returns once the pod is Ready."""
        self._save_log()
        values = chart_values(self.image, env, self.host_address)
        helm_install(self.helm, self.release, self.namespace, values)
        self.installed_env = dict(env)
        self.env = dict(env)
        self._scale(REPLICAS)
        self._wait_started()

    def uninstall(self) -> None:
        self._save_log()
        subprocess.run(
            [*self.helm, "uninstall", self.release, "--namespace", self.namespace, "--wait"],
            capture_output=True, check=False,
        )  # fmt: skip

    # --- the OperatorProcess interface --------------------------------------------------------

    def ensure(self, env: dict[str, str]) -> None:
        """Running with exactly these settings (the pod replaced if they differ)."""
        if self.installed_env == env:
            if not self.running():
                self.start()
            return
        self.install(env)

    def start(self) -> None:
        self._scale(REPLICAS)
        self._wait_started()

    def stop(self) -> None:
        """Scale to 0: the pod gets SIGTERM and kopf's cleanup runs, as on a drain."""
        self._save_log()
        self._scale(0)
        # Right after the control plane was killed (test_control_plane), the real node's
        # kubelet may take a minute to resume its watch and see the pods deleted (67 s once).
        wait_for("the operator pods to be gone", lambda: not self._pods(), timeout=180)

    def kill(self) -> None:
        """No cleanup at all: the pod is force-deleted with no grace period."""
        self._save_log()
        self._scale(0)
        pods = self._pods()
        if pods:
            self.kubectl("delete", "pod", *pods, "--grace-period=0", "--force", check=False)
        wait_for("the operator pods to be gone", lambda: not self._pods(), timeout=60)

    def running(self) -> bool:
        dep = self.kubectl.get("deployment", self.deployment)
        return bool(dep) and int((dep.get("status") or {}).get("readyReplicas") or 0) >= 1

    def ready(self) -> bool:
        # Acting, not just started: the leader, once a killed predecessor's Lease expired.
        return self.running() and "took over as leader" in self.log()

    def log(self) -> str:
        """The leader's log (also written to `log_path`; the other pods' beside it)."""
        self._save_log()
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # --- what only a pod has ------------------------------------------------------------------

    def pod_object(self) -> dict[str, Any]:
        """The leader's pod."""
        obj = self.kubectl.get("pod", self.pod) if self.pod else None
        gone = f"the leading operator pod {self.pod!r} of release {self.release} is gone"
        assert obj, gone
        assert not obj["metadata"].get("deletionTimestamp"), gone
        return dict(obj)

    def pod_ips(self) -> list[str]:
        """Every live operator pod's IP (all of them serve the webhook)."""
        pods = self.kubectl.items("pod", "-l", f"app.kubernetes.io/instance={self.release}")
        return sorted(
            p["status"]["podIP"] for p in pods if not p["metadata"].get("deletionTimestamp")
        )

    def leader(self) -> str | None:
        """The pod named by the Lease's holder (`<pod>_<random>`), if one holds it."""
        return leader_of(self.kubectl, self.release)

    @property
    def monitoring_url(self) -> str:
        """The pod's monitoring endpoint (/metrics, /readyz), scraped from this machine."""
        return f"http://{self.pod_object()['status']['podIP']}:{METRICS_PORT}"

    # --- helpers ------------------------------------------------------------------------------

    def _pods(self) -> list[str]:
        return pods_of(self.kubectl, self.release)

    def _scale(self, replicas: int) -> None:
        self.kubectl("scale", f"deployment/{self.deployment}", f"--replicas={replicas}")

    def _wait_started(self) -> None:
        def started() -> bool:
            leader = all_ready_and_leading(self.kubectl, self.release)
            if leader is None:
                return False
            self.pod = leader
            self.log_path = self.artifacts / f"operator-{self.pod}.log"
            return self.ready()

        wait_for("the operator pods Ready and one leading", started, timeout=150, interval=0.5)

    def _save_log(self) -> None:
        for pod in self._pods():
            result = self.kubectl("logs", pod, "--container", "operator", check=False)
            if result.returncode == 0 and result.stdout:
                self.artifacts.mkdir(exist_ok=True)
                (self.artifacts / f"operator-{pod}.log").write_text(result.stdout)


def build_and_import(cluster_cache: Path, cluster_dir: Path) -> str:
    """Build the image (`make image`'s script), import it into the real node; its reference.

    The tag is the image ID, so a changed image is a new reference: the node
    never runs a stale one under an old name.
    """
    started = time.monotonic()
    built = subprocess.run(
        [str(ROOT / "hack" / "image.sh"), "clone-operator:e2e"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if built.returncode != 0:
        raise AssertionError(f"building the image failed:\n{built.stderr[-3000:]}")
    image_id = built.stdout.strip().splitlines()[-1].removeprefix("sha256:")[:12]
    ref = f"clone-operator:{image_id}"
    docker = realnode.docker_client()
    assert docker
    subprocess.run([docker, "tag", "clone-operator:e2e", ref], check=True)
    # Earlier builds' tags (their layers are mostly shared) go.
    listed = subprocess.run(
        [docker, "images", "clone-operator", "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True, text=True, check=False,
    ).stdout.split()  # fmt: skip
    stale = [r for r in listed if r != ref and len(r.rsplit(":", 1)[1]) == 12]
    if stale:
        subprocess.run([docker, "rmi", *stale], capture_output=True, check=False)
    np = realnode.node_paths(cluster_cache, cluster_dir)
    if not realnode.has_image(np, ref):
        realnode.import_image(np, ref, docker)
    print(f"image {ref} built and on the real node in {time.monotonic() - started:.1f} s")
    return ref


def make_mover_image() -> None:
    """`make mover-image`, as users run it: the data mover's image (the settings' default
    name), built on a minimal Debian base and imported into the running real nodes."""
    started = time.monotonic()
    built = subprocess.run(["make", "mover-image"], cwd=ROOT, capture_output=True, text=True,
                           check=False)  # fmt: skip
    if built.returncode != 0:
        raise AssertionError(
            f"make mover-image failed:\n{built.stdout[-2000:]}{built.stderr[-3000:]}"
        )
    print(f"make mover-image: {time.monotonic() - started:.1f} s")
