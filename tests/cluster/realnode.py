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
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
TAINT_KEY = "cloning.dev/real-node"
TAINT = f"{TAINT_KEY}=true:NoSchedule"
SERVICE_IP = "10.0.0.1"  # the `kubernetes` Service (kube-apiserver's default range)
CLUSTER_DOMAIN = "cluster.local"
READY_TIMEOUT_S = 120.0
NETNS_DIR = Path("/run/netns")


@dataclass(frozen=True)
class NodeSpec:
    """One real node: its name and place, its network and its ports.

    `netns` None: its daemons run in the host's network namespace, the bridge is the
    host's and `gateway` (the host's address on it) is the node's IP. Otherwise they
    run in their own network namespace (created by up()), joined to the host by a
    veth pair, `link` (a /30: the host's end .1, the node's .2), so that its
    kube-proxy's iptables and its bridge are its own; the host routes the pod subnet
    through the node's end, and pods reach the host through it.
    """

    key: str  # CLONE_OPERATOR_REAL_NODES names nodes by it
    name: str
    region: str
    zone: str
    bridge: str
    pod_subnet: str  # a /24
    gateway: str  # the bridge's address: the pods' gateway and DNS server
    state_dir: str  # under the cache: containerd root/state/socket, kubelet root dir, logs
    chain: str  # our iptables chain on the host
    owner: Path  # which local cluster holds this node (one per machine)
    kubelet_port: int = 10250
    kubelet_healthz_port: int = 10248
    kube_proxy_health_port: int = 10256
    kube_proxy_metrics_port: int = 10249
    dns_ready_port: int = 10253
    netns: str | None = None
    veth: str | None = None  # the host's end of the veth pair (the node's end is eth0)
    link: str | None = None  # the veth pair's /30
    cgroup_root: str = "/"  # the kubelet's: two kubelets must never share `kubepods`
    # The value of its `cloning.dev/real-node` label: `true` is the first node (pods
    # that select `cloning.dev/real-node=true` land there, as they always have).
    label: str = "true"

    @property
    def node_ip(self) -> str:
        """The address the API server reaches the kubelet on (its InternalIP)."""
        return self.gateway if self.link is None else _link_address(self.link, 2)

    @property
    def host_address(self) -> str:
        """This machine (the API server, DNS on the host) as the node's processes reach it."""
        return self.gateway if self.link is None else _link_address(self.link, 1)

    @property
    def local_address(self) -> str:
        """Where the node's health endpoints listen, reachable from the host."""
        return "127.0.0.1" if self.netns is None else self.node_ip

    @property
    def host_interface(self) -> str:
        """The host's interface that leads to this node's pods."""
        return self.veth or self.bridge

    @property
    def kube_proxy_health(self) -> str:
        return f"{self.local_address}:{self.kube_proxy_health_port}"

    @property
    def dns_ready(self) -> str:
        return f"{self.local_address}:{self.dns_ready_port}"


def _link_address(link: str, host: int) -> str:
    import ipaddress

    return str(ipaddress.ip_network(link)[host])


# The first node: in the host's network namespace (unchanged since it was the only one).
EAST = NodeSpec(
    key="east",
    name="real-east-c",
    region="us-east-1",
    zone="us-east-1c",
    bridge="cloneop0",
    pod_subnet="10.213.0.0/24",
    gateway="10.213.0.1",  # the host's address on the bridge: the node IP, the API server's
    state_dir="realnode",
    chain="CLONE-OPERATOR-NODE",
    owner=Path("/run/clone-operator-realnode.owner"),
)
# The second node, in the other region: its own network namespace (two kube-proxies in
# one namespace would rewrite each other's chains; see docs/development/local-cluster.md),
# its own cgroup root (a kubelet removes pod cgroups it does not know under its own).
WEST = NodeSpec(
    key="west",
    name="real-west-c",
    region="us-west-2",
    zone="us-west-2c",
    bridge="cloneop1",
    pod_subnet="10.214.0.0/24",
    gateway="10.214.0.1",
    state_dir="node-west",  # short: unix socket paths under it must stay within 107 bytes
    chain="CLONE-OPERATOR-WEST",
    owner=Path("/run/clone-operator-realnode-west.owner"),
    netns="cloneop-west",
    veth="cloneop-w0",
    link="10.215.0.0/30",
    cgroup_root="/clone-operator-west",
    label="west",
)
SPECS = {spec.key: spec for spec in (EAST, WEST)}

# The first node's names, as the tests and tools have always used them.
NODE_NAME = EAST.name
REGION, ZONE = EAST.region, EAST.zone
BRIDGE = EAST.bridge
POD_SUBNET = EAST.pod_subnet
GATEWAY = EAST.gateway
CHAIN = EAST.chain
KUBELET_PORT = EAST.kubelet_port
KUBE_PROXY_HEALTH = EAST.kube_proxy_health
DNS_READY = EAST.dns_ready  # CoreDNS's `ready` plugin: 200 once the kubernetes plugin synced
OWNER = EAST.owner


def wanted_specs() -> tuple[NodeSpec, ...]:
    """The real nodes asked for: CLONE_OPERATOR_REAL_NODES (comma-separated keys; default
    `east,west`: both, when the machine can), none with CLONE_OPERATOR_REAL_NODE=0."""
    if os.environ.get("CLONE_OPERATOR_REAL_NODE", "1") == "0":
        return ()
    keys = [k.strip() for k in os.environ.get("CLONE_OPERATOR_REAL_NODES", "east,west").split(",")]
    unknown = [k for k in keys if k and k not in SPECS]
    if unknown:
        raise NodeError(f"CLONE_OPERATOR_REAL_NODES: unknown {unknown} (known: {sorted(SPECS)})")
    return tuple(SPECS[k] for k in SPECS if k in keys)


class NodeError(RuntimeError):
    """The real node could not start; the message says why."""


@dataclass(frozen=True)
class NodePaths:
    spec: NodeSpec
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

    @property
    def node_kubeconfig(self) -> Path:
        """The cluster's kubeconfig as the node's processes use it (their own network
        namespace reaches the API server at the host's end of the link, not loopback)."""
        return self.kubeconfig if self.spec.netns is None else self.state / "kubeconfig.yaml"

    def pidfile(self, component: str) -> Path:
        return self.state / f"{component}.pid"


def _versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (HERE / "versions.env").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.strip().split("=", 1)
            out[key] = value
    return out


def node_paths(cache: Path, cluster_dir: Path, spec: NodeSpec = EAST) -> NodePaths:
    key = _pause_key()
    return NodePaths(
        spec=spec,
        state=cache / spec.state_dir,
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


def unavailable_reason(spec: NodeSpec = EAST) -> str | None:
    """Why this machine cannot run the real node, or None when it can."""
    if os.environ.get("CLONE_OPERATOR_REAL_NODE", "1") == "0":
        return "turned off (CLONE_OPERATOR_REAL_NODE=0)"
    if spec.netns is not None and shutil.which("nsenter") is None:
        return "missing nsenter (apt-get install util-linux)"
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


NODE_CHAIN_PREFIXES = ("KUBE-", "CNI-", "CLONE-OPERATOR")
"""Chains the node's components name (kube-proxy, the kubelet, the CNI plugins, ours)."""


def node_chains(added: set[str]) -> set[str]:
    """Of the chains added since the snapshot, those the node's components made: another
    program's (dockerd started after the node: DOCKER, DOCKER-USER, ...) are never ours
    to remove."""
    return {chain for chain in added if chain.startswith(NODE_CHAIN_PREFIXES)}


def _restore_firewall(np: NodePaths) -> None:
    """Remove every chain (and nft table) the node's components added since the snapshot."""
    path = np.state / "firewall-before.json"
    if not path.exists():
        return
    before = json.loads(path.read_text())
    for family in ("iptables", "ip6tables"):
        for table, chains in _chains(family).items():
            added = node_chains(chains - set(before[family].get(table, [])))
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


def _network_up(np: NodePaths, api_port: int, cluster_interfaces: tuple[str, ...] = ()) -> None:
    """The node's bridge, and our chain on the host. `cluster_interfaces`: the host's
    interfaces towards the other real nodes of the same cluster, whose pods and kubelet
    reach the API server too."""
    spec = np.spec
    if spec.netns is not None:
        _netns_up(spec)
    ip = _ip_in(spec)
    if subprocess.run([*ip, "link", "show", spec.bridge], capture_output=True).returncode != 0:
        _run(*ip, "link", "add", spec.bridge, "type", "bridge")
    addrs = _run(*ip, "-4", "-o", "addr", "show", "dev", spec.bridge)
    if f" {spec.gateway}/" not in addrs:
        _run(*ip, "addr", "add", f"{spec.gateway}/24", "dev", spec.bridge)
    _run(*ip, "link", "set", spec.bridge, "up")
    chain = spec.chain
    # Our chain, rebuilt from scratch.
    if not _iptables("-N", chain, check=False):
        _iptables("-F", chain)
    for rule in chain_rules(spec, api_port, cluster_interfaces):
        _iptables("-A", chain, *rule)
    for hook in ("INPUT", "FORWARD"):
        if not _iptables("-C", hook, "-j", chain, check=False):
            _iptables("-I", hook, "1", "-j", chain)


def chain_rules(
    spec: NodeSpec, api_port: int, cluster_interfaces: tuple[str, ...] = ()
) -> list[list[str]]:
    """Our chain's rules (hooked into INPUT and FORWARD): pods may talk to each other and
    to the host (dockerd's FORWARD policy is DROP); the API server and kubelet ports
    answer only on loopback and the bridge (and the other real nodes' interfaces)."""
    own = spec.host_interface
    allowed = ("lo", own, *(i for i in cluster_interfaces if i != own))
    rules = []
    # A node in its own namespace has its kubelet there: the host's port is not its own.
    ports = (api_port,) if spec.netns is not None else (api_port, spec.kubelet_port)
    for port in ports:
        for iface in allowed:
            # A second node's own link is let in outright: the first node's chain (which
            # may come later in INPUT) knows its interface only once it is rebuilt.
            verdict = "ACCEPT" if spec.veth is not None and iface == spec.veth else "RETURN"
            rules.append(["-i", iface, "-p", "tcp", "--dport", str(port), "-j", verdict])
        rules.append(["-p", "tcp", "--dport", str(port), "-j", "DROP"])
    if spec.netns is None:
        rules.append(["-i", spec.bridge, "-o", spec.bridge, "-j", "ACCEPT"])
    else:
        # Forwarded between this node's pods and the other real nodes' (both ways).
        for other in allowed[2:]:
            rules.append(["-i", own, "-o", other, "-j", "ACCEPT"])
            rules.append(["-i", other, "-o", own, "-j", "ACCEPT"])
    rules.append(["-o", own, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED",
                  "-j", "ACCEPT"])  # fmt: skip
    return rules


def _ip_in(spec: NodeSpec) -> list[str]:
    """`ip`, in the node's network namespace."""
    return ["ip"] if spec.netns is None else ["ip", "-n", spec.netns]


def _in_netns(spec: NodeSpec, argv: list[str]) -> list[str]:
    """`argv`, run in the node's network namespace and nothing else: the mount namespace
    stays the host's, so the kubelet's mounts are containerd's (`ip netns exec` would give
    each process a mount namespace of its own)."""
    if spec.netns is None:
        return argv
    return ["nsenter", f"--net={NETNS_DIR / spec.netns}", "--", *argv]


def _netns_up(spec: NodeSpec) -> None:
    """The node's network namespace, its veth pair to the host and the routes both ways."""
    assert spec.netns
    assert spec.veth
    assert spec.link
    ns, veth = spec.netns, spec.veth
    if not (NETNS_DIR / ns).exists():
        _run("ip", "netns", "add", ns)
    if subprocess.run(["ip", "link", "show", veth], capture_output=True).returncode != 0:
        _run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
    prefix = spec.link.split("/")[1]
    if f" {spec.host_address}/" not in _run("ip", "-4", "-o", "addr", "show", "dev", veth):
        _run("ip", "addr", "add", f"{spec.host_address}/{prefix}", "dev", veth)
    _run("ip", "link", "set", veth, "up")
    if f" {spec.node_ip}/" not in _run("ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "eth0"):
        _run("ip", "-n", ns, "addr", "add", f"{spec.node_ip}/{prefix}", "dev", "eth0")
    _run("ip", "-n", ns, "link", "set", "eth0", "up")
    _run("ip", "-n", ns, "link", "set", "lo", "up")
    _run("ip", "-n", ns, "route", "replace", "default", "via", spec.host_address)
    _run("ip", "route", "replace", spec.pod_subnet, "via", spec.node_ip, "dev", veth)
    # The namespace forwards between its bridge and the link; bridged pod traffic goes
    # through its iptables (kube-proxy's Service rules), as on any node.
    _run(*_in_netns(spec, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1",
                           "net.bridge.bridge-nf-call-iptables=1"]))  # fmt: skip


def _network_down(np: NodePaths, netns_held: list[str] | None = None) -> None:
    spec = np.spec
    chain = spec.chain
    for hook in ("INPUT", "FORWARD"):
        while _iptables("-D", hook, "-j", chain, check=False):
            pass
    _iptables("-F", chain, check=False)
    _iptables("-X", chain, check=False)
    if spec.netns is not None:
        # Its iptables, bridge, pods' veths and the link die with the namespace; the
        # host's route through the link goes with the link.
        subprocess.run(["ip", "netns", "delete", spec.netns], capture_output=True, check=False)
        assert spec.veth
        subprocess.run(["ip", "link", "delete", spec.veth], capture_output=True, check=False)
        subprocess.run(["ip", "route", "delete", spec.pod_subnet], capture_output=True,
                       check=False)  # fmt: skip
        for name in netns_held or []:  # the pods' own namespaces, which only we held
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
        return
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
    # runc's state of a second node in a directory of its own, never beside the first's.
    runc_root = "" if np.spec.netns is None else f'\n        Root = "{s}/runc"'
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
        SystemdCgroup = false{runc_root}
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
                    "bridge": np.spec.bridge,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": np.spec.pod_subnet, "gateway": np.spec.gateway}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(np.state / "cni" / "ipam"),
                    },
                }
            ],
        },
        indent=2,
    )


def _kubelet_config(np: NodePaths) -> str:
    spec = np.spec
    config: dict[str, object] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": spec.node_ip,
        "port": spec.kubelet_port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": spec.kubelet_healthz_port,
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
        "clusterDNS": [spec.gateway],
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
    }
    if spec.netns is not None:
        # Beside another kubelet: pod cgroups and logs of its own (a kubelet removes
        # what it does not know under its cgroup root; down() removes its log dir).
        config["cgroupRoot"] = spec.cgroup_root
        config["podLogsDir"] = str(np.state / "pod-logs")
    return json.dumps(config, indent=2)


def _corefile(np: NodePaths) -> str:
    return (
        f"{CLUSTER_DOMAIN}:53 {{\n"
        f"    bind {np.spec.gateway}\n"
        f"    ready {np.spec.dns_ready}\n"
        "    errors\n"
        f"    kubernetes {CLUSTER_DOMAIN} {{\n"
        f"        kubeconfig {np.node_kubeconfig}\n"
        "    }\n"
        "}\n"
    )


def _kube_proxy_config(np: NodePaths) -> str:
    return json.dumps(
        {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(np.node_kubeconfig)},
            "hostnameOverride": np.spec.name,
            "mode": "iptables",
            "clusterCIDR": np.spec.pod_subnet,
            "healthzBindAddress": np.spec.kube_proxy_health,
            "metricsBindAddress": f"127.0.0.1:{np.spec.kube_proxy_metrics_port}",
            # Leave the kernel's conntrack settings alone (no CAP_SYS_RESOURCE here).
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
            "iptables": {"localhostNodePorts": False},
            "nodePortAddresses": [f"{np.spec.node_ip}/32"],
        },
        indent=2,
    )


# --- up / down ---------------------------------------------------------------------------------


def _kubectl(np: NodePaths, *args: str, check: bool = True) -> str:
    return _run(str(np.kube_bin / "kubectl"), "--kubeconfig", str(np.kubeconfig), *args,
                check=check)  # fmt: skip


def node_ready(np: NodePaths) -> bool:
    out = _kubectl(np, "get", "node", np.spec.name, "-o", "json", check=False)
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


def owned_elsewhere(np: NodePaths) -> str | None:
    """The state directory of another local cluster whose real node is up, if any.

    The node's pieces are machine-wide (the bridge, iptables, the kubelet's
    port, the network namespace): each real node (east, west) once per machine,
    for the first cluster that asks.
    """
    try:
        other = Path(np.spec.owner.read_text().strip())
    except OSError:
        return None
    if other == np.state or not _alive(other / "containerd.pid"):
        return None
    return str(other)


def _node_kubeconfig(np: NodePaths) -> None:
    """The cluster's kubeconfig with the API server at the host's end of the link."""
    if np.spec.netns is None:
        return
    text = np.kubeconfig.read_text()
    rewritten = re.sub(r"(server:\s*https://)(127\.0\.0\.1|localhost)(:\d+)",
                       rf"\g<1>{np.spec.host_address}\g<3>", text)  # fmt: skip
    if rewritten == text:
        raise NodeError(f"no loopback API server address in {np.kubeconfig} to rewrite")
    np.node_kubeconfig.write_text(rewritten)


def _cgroups_up(spec: NodeSpec) -> None:
    """The kubelet's cgroup root, in every controller (it refuses a root that is missing)."""
    if spec.cgroup_root == "/":
        return
    root = Path("/sys/fs/cgroup")
    for controller in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        if not (controller / "cgroup.procs").exists():
            continue
        mine = controller / spec.cgroup_root.strip("/")
        mine.mkdir(exist_ok=True)
        for knob in ("cpuset.cpus", "cpuset.mems"):  # cgroup v1: empty until set
            if (mine / knob).exists() and not (mine / knob).read_text().strip():
                (mine / knob).write_text((controller / knob).read_text())


def up(np: NodePaths, api_port: int, cluster_interfaces: tuple[str, ...] = ()) -> None:
    """Bring the node up (or check the running one). Raises NodeError when it cannot.

    `cluster_interfaces`: the host's interfaces towards the other real nodes of the
    same cluster (their `host_interface`), allowed to the API server as ours is.
    """
    if running(np):
        return
    spec = np.spec
    other = owned_elsewhere(np)
    if other:
        raise NodeError(
            f"this machine's real node {spec.name} belongs to another local cluster ({other})"
        )
    spec.owner.write_text(str(np.state))
    started = time.monotonic()
    _build()
    for d in ("containerd", "cni/net.d", "cni/ipam", "kubelet", "logs"):
        (np.state / d).mkdir(parents=True, exist_ok=True)
    if spec.netns is None:
        _snapshot_firewall(np)
    _network_up(np, api_port, cluster_interfaces)
    _cgroups_up(spec)
    _node_kubeconfig(np)
    (np.state / "containerd.toml").write_text(_containerd_config(np))
    (np.state / "cni" / "net.d" / "10-clone-operator.conflist").write_text(_cni_config(np))
    (np.state / "kubelet.json").write_text(_kubelet_config(np))
    (np.state / "kube-proxy.json").write_text(_kube_proxy_config(np))
    (np.state / "Corefile").write_text(_corefile(np))

    _start(np, "containerd",
           _in_netns(spec, ["containerd", "--config", str(np.state / "containerd.toml")]))  # fmt: skip
    _wait(
        "containerd answering",
        lambda: np.socket.exists() and ctr(np, "version", check=False) != "",
        30,
        np.logs / "containerd.log",
    )
    ensure_docker_engine(np.state.parent / "logs")
    _ensure_pause(np)
    labels = {
        "topology.kubernetes.io/region": spec.region,
        "topology.kubernetes.io/zone": spec.zone,
        "type": "real",
        TAINT_KEY: spec.label,
    }
    _start(
        np,
        "kubelet",
        _in_netns(
            spec,
            [
                str(np.kube_bin / "kubelet"),
                f"--config={np.state / 'kubelet.json'}",
                f"--kubeconfig={np.node_kubeconfig}",
                f"--root-dir={np.state / 'kubelet'}",
                f"--cert-dir={np.state / 'kubelet' / 'pki'}",
                f"--hostname-override={spec.name}",
                f"--node-ip={spec.node_ip}",
                "--node-labels=" + ",".join(f"{k}={v}" for k, v in labels.items()),
                "--v=1",
            ],
        ),
    )
    _start(
        np,
        "kube-proxy",
        _in_netns(
            spec,
            [str(np.kube_bin / "kube-proxy"), f"--config={np.state / 'kube-proxy.json'}", "--v=1"],
        ),
    )
    _start(np, "coredns", _in_netns(spec, [str(np.dns_bin), "-conf", str(np.state / "Corefile")]))
    _wait("the real node Ready", lambda: node_ready(np), READY_TIMEOUT_S, np.logs / "kubelet.log")
    _wait("cluster DNS ready", lambda: _http_ok(f"http://{spec.dns_ready}/ready"), 60,
          np.logs / "coredns.log")  # fmt: skip
    _wait(
        "kube-proxy healthy",
        lambda: _http_ok(f"http://{spec.kube_proxy_health}/healthz"),
        60,
        np.logs / "kube-proxy.log",
    )
    print(f"real node {spec.name} ready in {time.monotonic() - started:.1f} s")


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


def _pod_netns(np: NodePaths) -> list[str]:
    """The network namespaces (/run/netns/<name>) of our containerd's pod sandboxes."""
    names = []
    for container in ctr(np, "containers", "ls", "-q", check=False).split():
        try:
            info = json.loads(ctr(np, "containers", "info", container, check=False) or "{}")
        except json.JSONDecodeError:
            continue
        for ns in (info.get("Spec") or {}).get("linux", {}).get("namespaces", []):
            path = ns.get("path") or ""
            if ns.get("type") == "network" and path.startswith(("/run/netns/", "/var/run/netns/")):
                names.append(Path(path).name)
    return sorted(set(names))


def down(np: NodePaths) -> None:
    """Remove the node and undo every change it made to this machine. Idempotent."""
    if owned_elsewhere(np):
        return  # the machine's node is another cluster's: touch nothing
    spec = np.spec
    if _alive(np.pidfile("kubelet")) and np.kubeconfig.exists():
        # Let the kubelet tear its pods down (CNI DEL, unmounts) before it goes; cordoned
        # first, or their controllers would place replacements here at once.
        _kubectl(np, "cordon", spec.name, check=False)
        _kubectl(np, "delete", "pods", "-A", f"--field-selector=spec.nodeName={spec.name}",
                 "--grace-period=0", "--force", "--wait=false", check=False)  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _running_tasks(np):
            time.sleep(0.5)
    _stop(np, "coredns")
    _stop(np, "kube-proxy")
    _stop(np, "kubelet")
    held: list[str] = []
    if _alive(np.pidfile("containerd")):
        held = _pod_netns(np) if spec.netns is not None else []
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
    _remove_cgroups(spec)
    _network_down(np, held)
    if np.kubeconfig.exists():
        _kubectl(np, "delete", "node", spec.name, "--ignore-not-found", "--wait=false",
                 check=False)  # fmt: skip
    if spec.netns is None:
        for logs in (Path("/var/log/pods"), Path("/var/log/containers")):
            shutil.rmtree(logs, ignore_errors=True)
    else:  # our pods' links among the first node's: only those into our own log dir
        containers = Path("/var/log/containers")
        for link in containers.glob("*.log") if containers.is_dir() else []:
            with contextlib.suppress(OSError):
                if link.is_symlink() and str(np.state) in os.readlink(link):
                    link.unlink()
    shutil.rmtree(np.state, ignore_errors=True)
    if owned_elsewhere(np) is None:
        spec.owner.unlink(missing_ok=True)


def _unmount_under(root: Path) -> None:
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    targets = [
        line.split()[1].encode().decode("unicode_escape")
        for line in mounts
        if line.split()[1].startswith(str(root) + "/")
    ]
    for target in sorted(set(targets), key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True, check=False)


def _remove_cgroups(spec: NodeSpec) -> None:
    """The kubelet's `kubepods` hierarchy in every cgroup controller (empty by now); for a
    node with a cgroup root of its own, that root."""
    root = Path("/sys/fs/cgroup")
    top_name = "kubepods" if spec.cgroup_root == "/" else spec.cgroup_root.strip("/")
    for top in [*root.glob(f"*/{top_name}"), root / top_name]:
        if not top.is_dir():
            continue
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()
