"""One real node in the local cluster: containerd, kubelet and kube-proxy on this machine.

The kwok nodes simulate pods; this node runs them. It exists for what must
really run: the operator's image, installed by the Helm chart, with its probes,
its webhook behind a Service and its security context enforced by the kernel.

- containerd is Debian's (CRI plugin, runc, overlayfs), with its own socket,
  root and state under `$CLONE_OPERATOR_CACHE/realnode/`; it refuses negative
  OOM scores (`restrict_oom_score_adj`: root here lacks CAP_SYS_RESOURCE).
- kubelet and kube-proxy are built from the same pinned Kubernetes module as
  the control plane (tests/cluster/build.sh node). The kubelet uses the
  cgroupfs driver and never lowers an OOM score; kube-proxy runs in iptables
  mode, so the API server (a host process) reaches webhook pods through their
  Service.
- Pods join the bridge `cloneop0` (Debian's CNI plugins, no NAT: traffic stays
  on this machine). The API server listens on all addresses and advertises the
  bridge's address, so pods reach it through the `kubernetes` Service; an
  iptables chain of ours refuses its port (and the kubelet's) on any interface
  but loopback and the bridge.
- The sandbox ("pause") image is built here from tests/cluster/pause; images
  get to the node through `docker save | ctr import` (no registry).
- Cluster DNS: a CoreDNS built from tests/cluster/dns (plugins bind, ready,
  errors, kubernetes) runs on the host, bound to the bridge's address, and
  the kubelet hands that address to pods: `<pod>.<service>.<ns>.svc.cluster.local`
  and Service names resolve as in any cluster. Names outside `cluster.local`
  are refused (nothing here may leave the machine).

The node carries region labels like the kwok nodes and the taint
`cloning.dev/real-node=true:NoSchedule`: only pods that tolerate it land here.

`down()` undoes everything `up()` did: pods, processes, mounts, cgroups,
veths, the bridge, and every iptables rule (kube-proxy's own with
`kube-proxy --cleanup`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_NAME = "real-east-c"
REGION, ZONE = "us-east-1", "us-east-1c"
TAINT_KEY = "cloning.dev/real-node"
TAINT = f"{TAINT_KEY}=true:NoSchedule"
BRIDGE = "cloneop0"
POD_SUBNET = "10.213.0.0/24"
GATEWAY = "10.213.0.1"  # the host's address on the bridge: the node IP, the API server's
SERVICE_IP = "10.0.0.1"  # the `kubernetes` Service (kube-apiserver's default range)
CHAIN = "CLONE-OPERATOR-NODE"
KUBELET_PORT = 10250
KUBE_PROXY_HEALTH = "127.0.0.1:10256"
CLUSTER_DOMAIN = "cluster.local"
DNS_READY = "127.0.0.1:10253"  # CoreDNS's `ready` plugin: 200 once the kubernetes plugin synced
READY_TIMEOUT_S = 120.0


class NodeError(RuntimeError):
    """The real node could not start; the message says why."""


@dataclass(frozen=True)
class NodePaths:
    state: Path
    kube_bin: Path
    pause_bin: Path
    dns_bin: Path
    kubeconfig: Path
    pki: Path

    @property
    def socket(self) -> Path:
        return self.state / "containerd.sock"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    def pidfile(self, component: str) -> Path:
        return self.state / f"{component}.pid"


def _versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (HERE / "versions.env").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.strip().split("=", 1)
            out[key] = value
    return out


def node_paths(cache: Path, cluster_dir: Path) -> NodePaths:
    key = _pause_key()
    return NodePaths(
        state=cache / "realnode",
        kube_bin=cache / "bin" / f"kubernetes-{_versions()['KUBE_VERSION']}",
        pause_bin=cache / "bin" / f"pause-{key}" / "pause",
        dns_bin=cache
        / "bin"
        / f"dns-{_source_key('dns', 'go.mod', 'go.sum', 'main.go')}"
        / "coredns",
        kubeconfig=cluster_dir / "kubeconfig.yaml",
        pki=cluster_dir / "pki",
    )


def _source_key(directory: str, *files: str) -> str:
    """build.sh's cache key of a binary built from a directory here (the same hash)."""
    import hashlib

    data = b"".join((HERE / directory / f).read_bytes() for f in files)
    return hashlib.sha256(data).hexdigest()[:12]


def _pause_key() -> str:
    return _source_key("pause", "go.mod", "main.go")


def pause_image() -> str:
    return f"clone-operator.local/pause:{_pause_key()}"


# --- can this machine run it? ----------------------------------------------------------------


def docker_client() -> str | None:
    """A Docker client that talks to a running engine (Debian's first: it builds with BuildKit)."""
    for candidate in ("/usr/bin/docker", shutil.which("docker")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def spawn(argv: list[str], log_path: Path) -> int:
    """Start a daemon that outlives this process (and the pytest session that may start
    it), its output appended to `log_path`: spawned without a Popen handle, so nothing is
    left open or reported as "subprocess still running" when this process lets go of it."""
    with log_path.open("ab") as log:
        return os.posix_spawnp(
            argv[0],
            argv,
            dict(os.environ),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, log.fileno(), 1),
                (os.POSIX_SPAWN_DUP2, log.fileno(), 2),
            ],
            setsid=True,
        )


def ensure_docker_engine(logs: Path) -> None:
    """A Docker engine to build and export images: Debian's dockerd, started if none answers."""
    docker = docker_client()
    if docker is None:
        raise NodeError("no docker client (apt-get install docker.io)")
    if subprocess.run([docker, "info"], capture_output=True).returncode == 0:
        return
    logs.mkdir(parents=True, exist_ok=True)
    spawn(["dockerd"], logs / "dockerd.log")
    _wait(
        "dockerd answering",
        lambda: subprocess.run([docker, "info"], capture_output=True).returncode == 0,
        60,
        logs / "dockerd.log",
    )


def unavailable_reason() -> str | None:
    """Why this machine cannot run the real node, or None when it can."""
    if os.environ.get("CLONE_OPERATOR_REAL_NODE", "1") == "0":
        return "turned off (CLONE_OPERATOR_REAL_NODE=0)"
    if sys.platform != "linux":
        return f"needs Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return "needs root (containerd, kubelet and iptables)"
    missing = [
        tool
        for tool in ("containerd", "runc", "ctr", "iptables", "ip", "go", "dockerd")
        if shutil.which(tool) is None
    ]
    missing += [
        f"/usr/lib/cni/{p}"
        for p in ("bridge", "host-local", "loopback")
        if not Path(f"/usr/lib/cni/{p}").exists()
    ]
    if docker_client() is None:
        missing.append("docker")
    if missing:
        return (
            f"missing {', '.join(missing)} "
            "(apt-get install docker.io containerd containernetworking-plugins iptables)"
        )
    if (
        not Path("/sys/fs/cgroup/memory").is_dir()
        and not Path("/sys/fs/cgroup/cgroup.controllers").exists()
    ):
        return "no memory cgroup controller"
    return None


# --- small helpers -----------------------------------------------------------------------------


def _run(*args: str, check: bool = True, stdin: bytes | None = None) -> str:
    result = subprocess.run(list(args), input=stdin, capture_output=True, check=False)
    if check and result.returncode != 0:
        raise NodeError(f"{' '.join(args)} failed: {result.stderr.decode(errors='replace')}")
    return result.stdout.decode(errors="replace")


def _alive(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _start(np: NodePaths, component: str, args: list[str]) -> None:
    if _alive(np.pidfile(component)):
        return
    np.logs.mkdir(parents=True, exist_ok=True)
    pid = spawn(args, np.logs / f"{component}.log")
    np.pidfile(component).write_text(str(pid))


def _stop(np: NodePaths, component: str, timeout: float = 15) -> None:
    pid = _alive(np.pidfile(component))
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(np.pidfile(component)):
            time.sleep(0.2)
        if _alive(np.pidfile(component)):
            os.kill(pid, signal.SIGKILL)
    np.pidfile(component).unlink(missing_ok=True)


def _wait(what: str, ok: object, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ok():  # type: ignore[operator]
            return
        time.sleep(0.5)
    tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
    raise NodeError(f"{what} did not happen within {timeout:.0f} s; {log}:\n" + "\n".join(tail))


def ctr(np: NodePaths, *args: str, check: bool = True, stdin: bytes | None = None) -> str:
    return _run("ctr", "--address", str(np.socket), "-n", "k8s.io", *args, check=check, stdin=stdin)


# --- network -----------------------------------------------------------------------------------


def _iptables(*args: str, check: bool = True) -> bool:
    result = subprocess.run(["iptables", "-w", *args], capture_output=True, check=False)
    if check and result.returncode != 0:
        raise NodeError(f"iptables {' '.join(args)}: {result.stderr.decode(errors='replace')}")
    return result.returncode == 0


def _chains(family: str) -> dict[str, set[str]]:
    """The chains of each table (filter, nat, mangle) of `iptables` or `ip6tables`."""
    out: dict[str, set[str]] = {}
    for table in ("filter", "nat", "mangle"):
        listed = subprocess.run(
            [family, "-w", "-t", table, "-S"], capture_output=True, text=True, check=False
        ).stdout
        out[table] = {line.split()[1] for line in listed.splitlines() if line[:3] in ("-N ", "-P ")}
    return out


def _nft_tables() -> list[str]:
    listed = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=False)
    return [line.removeprefix("table ").strip() for line in listed.stdout.splitlines()]


def _snapshot_firewall(np: NodePaths) -> None:
    """What the firewall held before the node first came up, for down() to return to."""
    path = np.state / "firewall-before.json"
    if path.exists():
        return
    before = {
        "iptables": {t: sorted(c) for t, c in _chains("iptables").items()},
        "ip6tables": {t: sorted(c) for t, c in _chains("ip6tables").items()},
        "nft": _nft_tables(),
    }
    path.write_text(json.dumps(before))


def _restore_firewall(np: NodePaths) -> None:
    """Remove every chain (and nft table) the node's components added since the snapshot."""
    path = np.state / "firewall-before.json"
    if not path.exists():
        return
    before = json.loads(path.read_text())
    for family in ("iptables", "ip6tables"):
        for table, chains in _chains(family).items():
            added = chains - set(before[family].get(table, []))
            rules = subprocess.run(
                [family, "-w", "-t", table, "-S"], capture_output=True, text=True, check=False
            ).stdout.splitlines()
            for rule in rules:
                words = rule.split()
                if words[:1] == ["-A"] and any(words[i + 1] in added for i in range(len(words) - 1)
                                               if words[i] == "-j"):  # fmt: skip
                    subprocess.run([family, "-w", "-t", table, "-D", *words[1:]],
                                   capture_output=True, check=False)  # fmt: skip
            for chain in added:
                subprocess.run([family, "-w", "-t", table, "-F", chain], capture_output=True)
            for chain in added:
                subprocess.run([family, "-w", "-t", table, "-X", chain], capture_output=True)
    for table in set(_nft_tables()) - set(before["nft"]):
        listed = subprocess.run(["nft", "list", "table", *table.split()],
                                capture_output=True, text=True, check=False).stdout  # fmt: skip
        rules = [
            line.strip()
            for line in listed.splitlines()
            if line.strip() and not line.strip().startswith(("table", "chain", "type", "}", "#"))
        ]
        if not rules:
            subprocess.run(["nft", "delete", "table", *table.split()], capture_output=True)


def _network_up(api_port: int) -> None:
    if subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True).returncode != 0:
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
    addrs = _run("ip", "-4", "-o", "addr", "show", "dev", BRIDGE)
    if f" {GATEWAY}/" not in addrs:
        _run("ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
    _run("ip", "link", "set", BRIDGE, "up")
    # Our chain, rebuilt from scratch: pods may talk to each other and to the host
    # (dockerd's FORWARD policy is DROP); the API server and kubelet ports answer
    # only on loopback and the bridge.
    if not _iptables("-N", CHAIN, check=False):
        _iptables("-F", CHAIN)
    for port in (api_port, KUBELET_PORT):
        for iface in ("lo", BRIDGE):
            _iptables("-A", CHAIN, "-i", iface, "-p", "tcp", "--dport", str(port), "-j", "RETURN")
        _iptables("-A", CHAIN, "-p", "tcp", "--dport", str(port), "-j", "DROP")
    _iptables("-A", CHAIN, "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT")
    _iptables("-A", CHAIN, "-o", BRIDGE, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED",
              "-j", "ACCEPT")  # fmt: skip
    for hook in ("INPUT", "FORWARD"):
        if not _iptables("-C", hook, "-j", CHAIN, check=False):
            _iptables("-I", hook, "1", "-j", CHAIN)


def _network_down(np: NodePaths) -> None:
    for hook in ("INPUT", "FORWARD"):
        while _iptables("-D", hook, "-j", CHAIN, check=False):
            pass
    _iptables("-F", CHAIN, check=False)
    _iptables("-X", CHAIN, check=False)
    kube_proxy = np.kube_bin / "kube-proxy"
    if kube_proxy.exists():
        subprocess.run([str(kube_proxy), "--cleanup"], capture_output=True, check=False)
    _restore_firewall(np)
    links = subprocess.run(
        ["ip", "-o", "link", "show", "master", BRIDGE], capture_output=True, text=True, check=False
    ).stdout
    for line in links.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        subprocess.run(["ip", "link", "delete", name], capture_output=True, check=False)
    subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True, check=False)
    # Network namespaces containerd made for our pods (now holding only `lo`).
    netns = Path("/var/run/netns")
    for ns in sorted(netns.glob("cni-*")) if netns.is_dir() else []:
        inside = subprocess.run(
            ["ip", "-n", ns.name, "-o", "link"], capture_output=True, text=True, check=False
        ).stdout.splitlines()
        if all(": lo:" in link for link in inside):
            subprocess.run(["ip", "netns", "delete", ns.name], capture_output=True, check=False)


# --- configuration files -----------------------------------------------------------------------


def _containerd_config(np: NodePaths) -> str:
    s = np.state
    return f"""version = 2
root = "{s}/containerd/root"
state = "{s}/containerd/state"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{np.socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{s}/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_image()}"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{s}/cni/net.d"
"""


def _cni_config(np: NodePaths) -> str:
    return json.dumps(
        {
            "cniVersion": "0.4.0",
            "name": "clone-operator",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_SUBNET, "gateway": GATEWAY}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(np.state / "cni" / "ipam"),
                    },
                }
            ],
        },
        indent=2,
    )


def _kubelet_config(np: NodePaths) -> str:
    return json.dumps(
        {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": GATEWAY,
            "port": KUBELET_PORT,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(np.pki / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "cgroupDriver": "cgroupfs",
            "containerRuntimeEndpoint": f"unix://{np.socket}",
            "failSwapOn": False,
            # Root here lacks CAP_SYS_RESOURCE: no negative OOM scores.
            "oomScoreAdj": 0,
            "makeIPTablesUtilChains": False,
            "registerWithTaints": [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}],
            "clusterDomain": CLUSTER_DOMAIN,
            "clusterDNS": [GATEWAY],
            "resolvConf": "/etc/resolv.conf",
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
            # Imported images cannot be pulled again: never collect them.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
            "maxPods": 50,
            "podPidsLimit": 4096,
            "protectKernelDefaults": False,
            "localStorageCapacityIsolation": True,
        },
        indent=2,
    )


def _corefile(np: NodePaths) -> str:
    return (
        f"{CLUSTER_DOMAIN}:53 {{\n"
        f"    bind {GATEWAY}\n"
        f"    ready {DNS_READY}\n"
        "    errors\n"
        f"    kubernetes {CLUSTER_DOMAIN} {{\n"
        f"        kubeconfig {np.kubeconfig}\n"
        "    }\n"
        "}\n"
    )


def _kube_proxy_config(np: NodePaths) -> str:
    return json.dumps(
        {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(np.kubeconfig)},
            "hostnameOverride": NODE_NAME,
            "mode": "iptables",
            "clusterCIDR": POD_SUBNET,
            "healthzBindAddress": KUBE_PROXY_HEALTH,
            "metricsBindAddress": "127.0.0.1:10249",
            # Leave the kernel's conntrack settings alone (no CAP_SYS_RESOURCE here).
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
            "iptables": {"localhostNodePorts": False},
            "nodePortAddresses": [f"{GATEWAY}/32"],
        },
        indent=2,
    )


# --- up / down ---------------------------------------------------------------------------------


def _kubectl(np: NodePaths, *args: str, check: bool = True) -> str:
    return _run(str(np.kube_bin / "kubectl"), "--kubeconfig", str(np.kubeconfig), *args,
                check=check)  # fmt: skip


def node_ready(np: NodePaths) -> bool:
    out = _kubectl(np, "get", "node", NODE_NAME, "-o", "json", check=False)
    if not out:
        return False
    conditions = json.loads(out)["status"].get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


DAEMONS = ("containerd", "kubelet", "kube-proxy", "coredns")


def running(np: NodePaths) -> bool:
    """The node's processes are alive and the API server has it Ready."""
    alive = all(_alive(np.pidfile(c)) for c in DAEMONS)
    return alive and node_ready(np)


def import_image(np: NodePaths, ref: str, docker: str | None = None) -> None:
    """Make a Docker image available to the node's pods (containerd's k8s.io namespace)."""
    docker = docker or docker_client()
    assert docker
    saved = subprocess.run([docker, "save", ref], capture_output=True, check=False)
    if saved.returncode != 0:
        raise NodeError(f"docker save {ref}: {saved.stderr.decode(errors='replace')}")
    ctr(np, "images", "import", "-", stdin=saved.stdout)


def has_image(np: NodePaths, ref: str) -> bool:
    listed = ctr(np, "images", "ls", "-q", check=False).split()
    return ref in listed or f"docker.io/library/{ref}" in listed


def _ensure_pause(np: NodePaths) -> None:
    ref = pause_image()
    if has_image(np, ref):
        return
    docker = docker_client()
    assert docker
    if subprocess.run([docker, "image", "inspect", ref], capture_output=True).returncode != 0:
        import io
        import tarfile

        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(str(np.pause_bin), arcname="pause")
        _run(docker, "import", "--change", 'ENTRYPOINT ["/pause"]', "-", ref, stdin=buf.getvalue())
    import_image(np, ref, docker)


def _build() -> None:
    if subprocess.run([str(HERE / "build.sh"), "node"], check=False).returncode != 0:
        raise NodeError("building kubelet/kube-proxy failed (see the log path printed above)")


OWNER = Path("/run/clone-operator-realnode.owner")


def owned_elsewhere(np: NodePaths) -> str | None:
    """The state directory of another local cluster whose real node is up, if any.

    The node's pieces are machine-wide (the bridge, iptables, the kubelet's
    port): one real node per machine, for the first cluster that asks.
    """
    try:
        other = Path(OWNER.read_text().strip())
    except OSError:
        return None
    if other == np.state or not _alive(other / "containerd.pid"):
        return None
    return str(other)


def up(np: NodePaths, api_port: int) -> None:
    """Bring the node up (or check the running one). Raises NodeError when it cannot."""
    if running(np):
        return
    other = owned_elsewhere(np)
    if other:
        raise NodeError(f"this machine's real node belongs to another local cluster ({other})")
    OWNER.write_text(str(np.state))
    started = time.monotonic()
    _build()
    for d in ("containerd", "cni/net.d", "cni/ipam", "kubelet", "logs"):
        (np.state / d).mkdir(parents=True, exist_ok=True)
    _snapshot_firewall(np)
    _network_up(api_port)
    (np.state / "containerd.toml").write_text(_containerd_config(np))
    (np.state / "cni" / "net.d" / "10-clone-operator.conflist").write_text(_cni_config(np))
    (np.state / "kubelet.json").write_text(_kubelet_config(np))
    (np.state / "kube-proxy.json").write_text(_kube_proxy_config(np))
    (np.state / "Corefile").write_text(_corefile(np))

    _start(np, "containerd", ["containerd", "--config", str(np.state / "containerd.toml")])
    _wait(
        "containerd answering",
        lambda: np.socket.exists() and ctr(np, "version", check=False) != "",
        30,
        np.logs / "containerd.log",
    )
    ensure_docker_engine(np.state.parent / "logs")
    _ensure_pause(np)
    labels = {
        "topology.kubernetes.io/region": REGION,
        "topology.kubernetes.io/zone": ZONE,
        "type": "real",
        "cloning.dev/real-node": "true",
    }
    _start(
        np,
        "kubelet",
        [
            str(np.kube_bin / "kubelet"),
            f"--config={np.state / 'kubelet.json'}",
            f"--kubeconfig={np.kubeconfig}",
            f"--root-dir={np.state / 'kubelet'}",
            f"--cert-dir={np.state / 'kubelet' / 'pki'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={GATEWAY}",
            "--node-labels=" + ",".join(f"{k}={v}" for k, v in labels.items()),
            "--v=1",
        ],
    )
    _start(
        np,
        "kube-proxy",
        [str(np.kube_bin / "kube-proxy"), f"--config={np.state / 'kube-proxy.json'}", "--v=1"],
    )
    _start(np, "coredns", [str(np.dns_bin), "-conf", str(np.state / "Corefile")])
    _wait("the real node Ready", lambda: node_ready(np), READY_TIMEOUT_S, np.logs / "kubelet.log")
    _wait("cluster DNS ready", lambda: _http_ok(f"http://{DNS_READY}/ready"), 60,
          np.logs / "coredns.log")  # fmt: skip
    _wait(
        "kube-proxy healthy",
        lambda: _http_ok(f"http://{KUBE_PROXY_HEALTH}/healthz"),
        60,
        np.logs / "kube-proxy.log",
    )
    print(f"real node {NODE_NAME} ready in {time.monotonic() - started:.1f} s")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status) == 200
    except OSError:
        return False


def _running_tasks(np: NodePaths) -> list[str]:
    listed = ctr(np, "tasks", "ls", check=False).splitlines()[1:]
    return [line.split()[0] for line in listed if "RUNNING" in line]


def _our_shims(np: NodePaths) -> list[int]:
    """containerd-shim processes of our containerd (matched by its socket address)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and b"containerd-shim" in argv[0] and str(np.socket).encode() in argv:
            pids.append(int(proc.name))
    return pids


def down(np: NodePaths) -> None:
    """Remove the node and undo every change it made to this machine. Idempotent."""
    if owned_elsewhere(np):
        return  # the machine's node is another cluster's: touch nothing
    if _alive(np.pidfile("kubelet")) and np.kubeconfig.exists():
        # Let the kubelet tear its pods down (CNI DEL, unmounts) before it goes; cordoned
        # first, or their controllers would place replacements here at once.
        _kubectl(np, "cordon", NODE_NAME, check=False)
        _kubectl(np, "delete", "pods", "-A", f"--field-selector=spec.nodeName={NODE_NAME}",
                 "--grace-period=0", "--force", "--wait=false", check=False)  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _running_tasks(np):
            time.sleep(0.5)
    _stop(np, "coredns")
    _stop(np, "kube-proxy")
    _stop(np, "kubelet")
    if _alive(np.pidfile("containerd")):
        for task in ctr(np, "tasks", "ls", "-q", check=False).split():
            ctr(np, "tasks", "kill", "-s", "SIGKILL", task, check=False)
            ctr(np, "tasks", "delete", "-f", task, check=False)
        for container in ctr(np, "containers", "ls", "-q", check=False).split():
            ctr(np, "containers", "delete", container, check=False)
    _stop(np, "containerd")
    for pid in _our_shims(np):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    _unmount_under(np.state)
    _remove_cgroups()
    _network_down(np)
    if np.kubeconfig.exists():
        _kubectl(np, "delete", "node", NODE_NAME, "--ignore-not-found", "--wait=false",
                 check=False)  # fmt: skip
    shutil.rmtree(np.state, ignore_errors=True)
    if owned_elsewhere(np) is None:
        OWNER.unlink(missing_ok=True)
    for logs in (Path("/var/log/pods"), Path("/var/log/containers")):
        shutil.rmtree(logs, ignore_errors=True)


def _unmount_under(root: Path) -> None:
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    targets = [
        line.split()[1].encode().decode("unicode_escape")
        for line in mounts
        if line.split()[1].startswith(str(root) + "/")
    ]
    for target in sorted(set(targets), key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True, check=False)


def _remove_cgroups() -> None:
    """The kubelet's `kubepods` hierarchy in every cgroup controller (empty by now)."""
    root = Path("/sys/fs/cgroup")
    for top in [*root.glob("*/kubepods"), root / "kubepods"]:
        if not top.is_dir():
            continue
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()
