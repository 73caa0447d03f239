"""The local control plane: a real kube-apiserver and friends, run by kwokctl.

One implementation serves `make cluster`, `make cluster-down` and the pytest
session fixture. It builds missing binaries (tests/cluster/build.sh), starts
etcd, kube-apiserver, kube-controller-manager, kube-scheduler and the kwok
controller as plain processes on 127.0.0.1 via kwokctl's binary runtime, then
adds region-labelled kwok nodes, a default StorageClass and the test volume
provisioner (the stand-in for a CSI driver; see provisioner.py) and, when this
machine can run it, one real node that runs containers (see realnode.py).

Everything is idempotent: `up()` on a running cluster only checks it and
restarts the provisioner if it died.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: tests/cluster/localcluster.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.cluster import realnode, webhookclient

HERE = Path(__file__).resolve().parent
CLUSTER_NAME = "clone-operator"
DEFAULT_PORT = 36443
READY_TIMEOUT_S = float(os.environ.get("CLONE_OPERATOR_CLUSTER_TIMEOUT", "180"))

# Nodes: two regions so that placement by region is testable.
NODES: list[tuple[str, str, str]] = [
    ("kwok-east-a", "us-east-1", "us-east-1a"),
    ("kwok-east-b", "us-east-1", "us-east-1b"),
    ("kwok-west-a", "us-west-2", "us-west-2a"),
    ("kwok-west-b", "us-west-2", "us-west-2b"),
]
NODE_LEASE_SECONDS = 10
# Pods per kwok node: enough for `make bench-scale` (1,000 sources, 1,000 clones and
# room to spare on four nodes). Simulated pods cost the scheduler nothing more for it.
POD_CAPACITY = "1500"
STORAGE_CLASS = "clone-test"
PROVISIONER_NAME = "cloning.dev/test-provisioner"


class ClusterError(RuntimeError):
    """A problem a developer can act on; printed without a traceback."""


def _versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (HERE / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
    return out


@dataclass(frozen=True)
class Paths:
    cache: Path
    kube_bin: Path
    etcd_bin: Path
    kwok_bin: Path
    helm_bin: Path
    workdir: Path

    @property
    def cluster_dir(self) -> Path:
        return self.workdir / "clusters" / CLUSTER_NAME

    @property
    def kubeconfig(self) -> Path:
        return self.cluster_dir / "kubeconfig.yaml"

    @property
    def bin_dir(self) -> Path:
        """A directory of symlinks to every tool, to put first on PATH."""
        return self.cache / "path"

    @property
    def provisioner_pid(self) -> Path:
        return self.workdir / "provisioner.pid"

    @property
    def provisioner_log(self) -> Path:
        return self.workdir / "provisioner.log"


def paths() -> Paths:
    v = _versions()
    cache = Path(os.environ.get("CLONE_OPERATOR_CACHE", Path.home() / ".cache" / "clone-operator"))
    return Paths(
        cache=cache,
        kube_bin=cache / "bin" / f"kubernetes-{v['KUBE_VERSION']}",
        etcd_bin=cache / "bin" / f"etcd-{v['ETCD_VERSION']}",
        kwok_bin=cache / "bin" / f"kwok-{v['KWOK_VERSION']}",
        helm_bin=cache / "bin" / f"helm-{v['HELM_VERSION']}",
        workdir=cache / "kwok",
    )


def port() -> int:
    return int(os.environ.get("CLONE_OPERATOR_CLUSTER_PORT", DEFAULT_PORT))


def build() -> None:
    """Build whatever binary is missing (a no-op when all are cached)."""
    result = subprocess.run([str(HERE / "build.sh")], check=False)
    if result.returncode != 0:
        raise ClusterError("building the control plane failed (see the log path printed above)")
    p = paths()
    p.bin_dir.mkdir(parents=True, exist_ok=True)
    tools = {
        "kubectl": p.kube_bin / "kubectl",
        "kube-apiserver": p.kube_bin / "kube-apiserver",
        "etcd": p.etcd_bin / "etcd",
        "kwokctl": p.kwok_bin / "kwokctl",
        "kwok": p.kwok_bin / "kwok",
        "helm": p.helm_bin / "helm",
    }
    for name, target in tools.items():
        link = p.bin_dir / name
        if link.is_symlink() or link.exists():
            if link.resolve() == target:
                continue
            link.unlink()
        link.symlink_to(target)


def real_node_wanted() -> bool:
    """Whether this machine can run the real node (see realnode.unavailable_reason)."""
    return realnode.unavailable_reason() is None


def kwokctl_config(p: Paths, real_node: bool = False) -> str:
    """The KwokctlConfiguration: local binaries only, loopback only, RBAC on.

    With the real node, the API server also listens on the node's bridge (its
    port refused on every other interface, see realnode.py) and advertises that
    address, so pods reach it through the `kubernetes` Service; its certificate
    names the Service's IP; it authenticates to the kubelet with the admin
    certificate (`kubectl logs`). To admission webhooks it presents a client
    certificate of its own (webhookclient.py).
    """
    apiserver_args = [{"key": "advertise-address", "value": "127.0.0.1"}]
    if real_node:
        pki = p.cluster_dir / "pki"
        apiserver_args = [
            {"key": "advertise-address", "value": realnode.GATEWAY},
            {"key": "bind-address", "value": "0.0.0.0"},
            {"key": "kubelet-client-certificate", "value": str(pki / "admin.crt")},
            {"key": "kubelet-client-key", "value": str(pki / "admin.key")},
            {"key": "kubelet-preferred-address-types", "value": "InternalIP"},
        ]
    apiserver_args.append(
        {"key": "admission-control-config-file", "value": str(webhook_client(p).admission_config)}
    )
    config: dict[str, object] = {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokctlConfiguration",
        "options": {
            "runtime": "binary",
            "bindAddress": "127.0.0.1",
            "kubeApiserverPort": port(),
            "kubeAuthorization": True,
            "kubeAdmission": True,
            "kubeVersion": _versions()["KUBE_VERSION"],
            "etcdVersion": _versions()["ETCD_VERSION"],
            "kwokVersion": _versions()["KWOK_VERSION"],
            "kubeApiserverBinary": str(p.kube_bin / "kube-apiserver"),
            "kubeControllerManagerBinary": str(p.kube_bin / "kube-controller-manager"),
            "kubeSchedulerBinary": str(p.kube_bin / "kube-scheduler"),
            "kubectlBinary": str(p.kube_bin / "kubectl"),
            "etcdBinary": str(p.etcd_bin / "etcd"),
            "etcdctlBinary": str(p.etcd_bin / "etcdctl"),
            "kwokControllerBinary": str(p.kwok_bin / "kwok"),
            # kwok's controller takes a new identity at every start and leaves a
            # lease held by another alone until it expires, retrying every
            # quarter of its duration: with kwokctl's default (40 s times its
            # heartbeatFactor 5 = 200 s), nodes stayed unserved for minutes after
            # a restart. 10 s leases are renewed every 2.5 s (four nodes: trivial
            # load); node health keeps Kubernetes' own defaults.
            "heartbeatFactor": 1,
            "nodeLeaseDurationSeconds": NODE_LEASE_SECONDS,
            "kubeControllerManagerNodeMonitorGracePeriodMilliseconds": 40_000,
            "kubeControllerManagerNodeMonitorPeriodMilliseconds": 5_000,
            "cacheDir": str(p.cache / "kwok-cache"),
            "kubeAuditPolicy": str(_audit_policy(p)),
        },
        "componentsPatches": [
            {"name": "kube-apiserver", "extraArgs": apiserver_args},
            # kwok simulates the kwok nodes only, never the real node.
            {
                "name": "kwok-controller",
                "extraArgs": [
                    {"key": "manage-all-nodes", "value": "false"},
                    {
                        "key": "manage-nodes-with-annotation-selector",
                        "value": "kwok.x-k8s.io/node=fake",
                    },
                ],
            },
            # One instance of each: leader election would only make a restarted
            # one wait out its dead predecessor's lease (15 s) before scheduling.
            *(
                {"name": name, "extraArgs": [{"key": "leader-elect", "value": "false"}]}
                for name in ("kube-scheduler", "kube-controller-manager")
            ),
        ],
    }
    if real_node:
        options = config["options"]
        assert isinstance(options, dict)
        options["kubeApiserverCertSANs"] = [realnode.SERVICE_IP, realnode.GATEWAY]
    # JSON is valid YAML; kwokctl reads either.
    return json.dumps(config, indent=2)


# The API server's own record of what the operator's ServiceAccounts wrote: who
# (user, userAgent: each replica names itself), what, when. Writes only, metadata
# only, and only the test release's namespace of ServiceAccounts: small enough to
# keep. The torture suite reads it to prove a paused leader never wrote after
# losing its Lease (audit_log()).
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {
            "level": "Metadata",
            "userGroups": ["system:serviceaccounts:clone-operator-e2e"],
            "verbs": ["create", "update", "patch", "delete", "deletecollection"],
        },
        {"level": "None"},
    ],
}


def _audit_policy(p: Paths) -> Path:
    path = p.workdir / "audit-policy.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(AUDIT_POLICY, indent=2)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def webhook_client(p: Paths) -> webhookclient.Files:
    """The API server's client certificate for webhooks, and the CA the operator trusts
    (made by `up`)."""
    return webhookclient.files_in(p.workdir / "webhook-client")


def audit_log(p: Paths) -> Path:
    """Where the API server writes its audit events (one JSON object per line)."""
    return p.cluster_dir / "logs" / "audit.log"


def _kwokctl(p: Paths, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KWOK_WORKDIR=str(p.workdir), PATH=f"{p.bin_dir}:{os.environ['PATH']}")
    config = p.workdir / "kwokctl.yaml"
    return subprocess.run(
        [str(p.kwok_bin / "kwokctl"), "--name", CLUSTER_NAME, "--config", str(config), *args],
        env=env,
        check=check,
        text=True,
        capture_output=True,
    )


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> str:
    p = paths()
    result = subprocess.run(
        [str(p.kube_bin / "kubectl"), "--kubeconfig", str(p.kubeconfig), *args],
        input=stdin,
        text=True,
        capture_output=True,
        check=False,
    )
    if check and result.returncode != 0:
        raise ClusterError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def uninstall_operators(p: Paths) -> list[str]:
    """Uninstall every Helm release that runs the operator in this cluster (the in-cluster
    e2e session leaves its release running, for inspection): an operator that watches
    every namespace would act beside the one a benchmark or a process-mode session
    starts. Returns the releases removed, as namespace/name."""
    selector = "app.kubernetes.io/name=clone-operator"
    found = json.loads(kubectl("get", "deployments", "-A", "-l", selector, "-o", "json"))["items"]
    removed = []
    for deployment in found:
        meta = deployment["metadata"]
        release = (meta.get("labels") or {}).get("app.kubernetes.io/instance")
        if not release:
            continue
        subprocess.run(
            [str(p.helm_bin / "helm"), "--kubeconfig", str(p.kubeconfig),
             "uninstall", release, "--namespace", meta["namespace"], "--wait"],
            check=False, capture_output=True,
        )  # fmt: skip
        removed.append(f"{meta['namespace']}/{release}")
    return removed


def _apiserver_ready(p: Paths) -> bool:
    if not p.kubeconfig.exists():
        return False
    result = subprocess.run(
        [str(p.kube_bin / "kubectl"), "--kubeconfig", str(p.kubeconfig), "get", "--raw", "/readyz"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return result.returncode == 0 and result.stdout.strip() == "ok"


def _ready_within(p: Paths, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _apiserver_ready(p):
            return True
        time.sleep(0.5)
    return False


def _port_in_use(number: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", number))
        except OSError:
            return True
    return False


def dry_run_plan() -> str:
    """kwokctl's plan for creating the cluster; proves nothing is downloaded."""
    p = paths()
    (p.workdir / "dry-run").mkdir(parents=True, exist_ok=True)
    config = p.workdir / "dry-run" / "kwokctl.yaml"
    config.write_text(kwokctl_config(p, real_node=real_node_wanted()))
    env = dict(os.environ, KWOK_WORKDIR=str(p.workdir / "dry-run"))
    result = subprocess.run(
        [
            str(p.kwok_bin / "kwokctl"),
            "--dry-run",
            "--name",
            CLUSTER_NAME,
            "--config",
            str(config),
            "create",
            "cluster",
        ],
        env=env,
        text=True,
        capture_output=True,
        check=True,
    )
    return result.stdout + result.stderr


def downloads_in(plan: str) -> list[str]:
    """URLs in a kwokctl plan that point anywhere but this machine's cluster."""
    local = re.compile(r"https?://(127\.0\.0\.1|localhost|kubernetes\.default\.svc)")
    return [url for url in re.findall(r"https?://\S+", plan) if not local.match(url)]


def _node_manifest() -> str:
    items = []
    for name, region, zone in NODES:
        items.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {
                        "kwok.x-k8s.io/node": "fake",
                        "node.alpha.kubernetes.io/ttl": "0",
                    },
                    "labels": {
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "type": "kwok",
                        "topology.kubernetes.io/region": region,
                        "topology.kubernetes.io/zone": zone,
                    },
                },
                "status": {
                    "allocatable": {"cpu": "64", "memory": "256Gi", "pods": POD_CAPACITY},
                    "capacity": {"cpu": "64", "memory": "256Gi", "pods": POD_CAPACITY},
                },
            }
        )
    items.append(
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": STORAGE_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": PROVISIONER_NAME,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
            "allowVolumeExpansion": True,
        }
    )
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def _provisioner_alive(p: Paths) -> bool:
    try:
        pid = int(p.provisioner_pid.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def _start_provisioner(p: Paths) -> None:
    if _provisioner_alive(p):
        return
    argv = [sys.executable, str(HERE / "provisioner.py"), "--kubeconfig", str(p.kubeconfig)]
    pid = realnode.spawn(argv, p.provisioner_log)
    p.provisioner_pid.write_text(str(pid))


def _stop_provisioner(p: Paths) -> None:
    if _provisioner_alive(p):
        os.kill(int(p.provisioner_pid.read_text()), signal.SIGTERM)
    p.provisioner_pid.unlink(missing_ok=True)


def _wait(what: str, ok: object, timeout: float, logs: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ok():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise ClusterError(f"{what} did not happen within {timeout:.0f} s; component logs: {logs}")


def _nodes_ready() -> bool:
    out = kubectl("get", "nodes", "-o", "json", check=False)
    if not out:
        return False
    nodes = json.loads(out)["items"]
    ready = [
        n
        for n in nodes
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in n["status"].get("conditions", [])
        )
    ]
    return len(ready) >= len(NODES)


def restart(p: Paths, config: str) -> bool:
    """Stop every component and start them again on the same state; True once the
    API server is ready and the kwok nodes are served by the new kwok controller."""
    _stop_provisioner(p)
    (p.workdir / "kwokctl.yaml").write_text(config)
    _kwokctl(p, "stop", "cluster", check=False)
    if _kwokctl(p, "start", "cluster", check=False).returncode != 0 or not _ready_within(p, 30):
        return False
    # The node leases still name the controller that died: hand them back at
    # once (the new controller recreates each within one renew interval).
    kubectl("delete", "lease", "--namespace", "kube-node-lease", "--ignore-not-found",
            *(name for name, _, _ in NODES), check=False)  # fmt: skip
    return True


def node_paths(p: Paths) -> realnode.NodePaths:
    return realnode.node_paths(p.cache, p.cluster_dir)


def up() -> Paths:
    """Start the cluster, or check and reuse the running one. Idempotent."""
    started = time.monotonic()
    build()
    p = paths()
    p.workdir.mkdir(parents=True, exist_ok=True)
    webhookclient.ensure(webhook_client(p))
    np = node_paths(p)
    reason = realnode.unavailable_reason()
    other = realnode.owned_elsewhere(np)
    if reason is None and other:
        reason = f"this machine's real node belongs to another local cluster ({other})"
    config = kwokctl_config(p, real_node=reason is None)
    stored = p.workdir / "kwokctl.yaml"
    if p.cluster_dir.exists() and stored.exists() and stored.read_text() != config:
        print("the cluster's configuration changed: recreating it", file=sys.stderr)
        down()
    if not _apiserver_ready(p):
        # A stopped cluster (a reboot, a killed session): start its components
        # again; if it is not ready soon, recreate it from scratch (3 s).
        if p.cluster_dir.exists() and not restart(p, config):
            print("the stopped cluster did not come back: recreating it", file=sys.stderr)
            _kwokctl(p, "delete", "cluster", check=False)
            shutil.rmtree(p.cluster_dir, ignore_errors=True)
        if not _apiserver_ready(p) and not p.cluster_dir.exists():
            deadline = time.monotonic() + 30  # a cluster just deleted may still hold it
            while _port_in_use(port()) and time.monotonic() < deadline:
                time.sleep(0.5)
            if _port_in_use(port()):
                raise ClusterError(
                    f"port {port()} on 127.0.0.1 is already in use by another process; "
                    "free it or choose another with CLONE_OPERATOR_CLUSTER_PORT=<port>"
                )
            stored.write_text(config)
            result = _kwokctl(
                p, "create", "cluster", "--timeout", f"{int(READY_TIMEOUT_S)}s", check=False
            )
            if result.returncode != 0:
                raise ClusterError(
                    f"kwokctl create cluster failed:\n{result.stderr[-3000:]}\n"
                    f"component logs: {p.cluster_dir / 'logs'}"
                )
        _wait(
            "kube-apiserver /readyz",
            lambda: _apiserver_ready(p),
            READY_TIMEOUT_S,
            p.cluster_dir / "logs",
        )
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=_node_manifest())
    # A node's status is a subresource: apply sets it at creation only. A cluster made
    # before POD_CAPACITY changed gets the new capacity here.
    pods = json.dumps({"status": {"capacity": {"pods": POD_CAPACITY},
                                  "allocatable": {"pods": POD_CAPACITY}}})  # fmt: skip
    for name, _, _ in NODES:
        kubectl("patch", "node", name, "--subresource=status", "--type=merge", "-p", pods)
    _start_provisioner(p)
    _wait(f"{len(NODES)} Ready nodes", _nodes_ready, READY_TIMEOUT_S, p.cluster_dir / "logs")
    if reason is None:
        try:
            realnode.up(np, port())
        except realnode.NodeError as e:
            print(f"real node: could not start; kwok nodes only: {e}", file=sys.stderr)
            realnode.down(np)
    else:
        print(f"real node: not on this machine: {reason}; kwok nodes only")
    print(f"cluster {CLUSTER_NAME} ready in {time.monotonic() - started:.1f} s")
    print(f"kubeconfig: {p.kubeconfig}")
    print(f"tools:      {p.bin_dir} (kubectl, helm, kwokctl)")
    return p


def down() -> None:
    """Stop the real node, the cluster and the provisioner; delete their state. Idempotent."""
    p = paths()
    realnode.down(node_paths(p))
    _stop_provisioner(p)
    if (p.kwok_bin / "kwokctl").exists() and p.cluster_dir.exists():
        (p.workdir / "kwokctl.yaml").write_text(kwokctl_config(p))
        _kwokctl(p, "delete", "cluster", check=False)
    if p.cluster_dir.exists():
        shutil.rmtree(p.cluster_dir, ignore_errors=True)
    print(f"cluster {CLUSTER_NAME} is down")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "build", "plan", "kubeconfig", "path"])
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            up()
        elif args.command == "down":
            down()
        elif args.command == "build":
            build()
        elif args.command == "plan":
            plan = dry_run_plan()
            print(plan)
            urls = downloads_in(plan)
            if urls:
                print(f"the plan downloads: {urls}", file=sys.stderr)
                return 1
            print("the plan downloads nothing (no URL outside 127.0.0.1)", file=sys.stderr)
        elif args.command == "kubeconfig":
            print(paths().kubeconfig)
        elif args.command == "path":
            print(paths().bin_dir)
    except ClusterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as e:
        print(f"error: {' '.join(map(str, e.cmd))} failed:\n{e.stderr}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
