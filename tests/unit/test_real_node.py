"""The real node's wiring, checked without starting it: the control plane's
configuration with and without it, and its kubelet/containerd settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cluster import localcluster, realnode


def args_of(config: dict[str, object], component: str) -> dict[str, str]:
    patches = config["componentsPatches"]
    assert isinstance(patches, list)
    [patch] = [p for p in patches if p["name"] == component]
    return {a["key"]: a["value"] for a in patch["extraArgs"]}


def test_without_the_real_node_everything_stays_on_loopback() -> None:
    p = localcluster.paths()
    config = json.loads(localcluster.kwokctl_config(p, ()))
    assert args_of(config, "kube-apiserver") == {
        "advertise-address": "127.0.0.1",
        # Its client certificate towards webhooks: a file path, nothing that listens.
        "admission-control-config-file": str(localcluster.webhook_client(p).admission_config),
    }
    assert "kubeApiserverCertSANs" not in config["options"]


def test_with_the_real_node_pods_reach_the_api_server_through_its_service() -> None:
    p = localcluster.paths()
    config = json.loads(localcluster.kwokctl_config(p, (realnode.EAST,)))
    args = args_of(config, "kube-apiserver")
    assert args["advertise-address"] == realnode.GATEWAY  # the `kubernetes` endpoint
    assert args["bind-address"] == "0.0.0.0"  # guarded by realnode.CHAIN
    assert args["kubelet-client-certificate"] == str(p.cluster_dir / "pki" / "admin.crt")
    assert args["kubelet-preferred-address-types"] == "InternalIP"  # `kubectl logs`
    # In-cluster clients dial the Service IP; the certificate must name it.
    assert realnode.SERVICE_IP in config["options"]["kubeApiserverCertSANs"]


def test_kwok_never_simulates_the_real_node() -> None:
    for real_nodes in ((), (realnode.EAST,), (realnode.EAST, realnode.WEST)):
        config = json.loads(localcluster.kwokctl_config(localcluster.paths(), real_nodes))
        assert args_of(config, "kwok-controller") == {
            "manage-all-nodes": "false",
            "manage-nodes-with-annotation-selector": "kwok.x-k8s.io/node=fake",
        }
    assert all(name.startswith("kwok-") for name, _, _ in localcluster.NODES)


def test_kubelet_and_containerd_never_ask_for_negative_oom_scores(tmp_path: Path) -> None:
    np = realnode.node_paths(tmp_path, tmp_path / "cluster")
    kubelet = json.loads(realnode._kubelet_config(np))
    assert kubelet["oomScoreAdj"] == 0
    assert kubelet["cgroupDriver"] == "cgroupfs"
    assert kubelet["registerWithTaints"] == [
        {"key": realnode.TAINT_KEY, "value": "true", "effect": "NoSchedule"}
    ]
    containerd = realnode._containerd_config(np)
    assert "restrict_oom_score_adj = true" in containerd
    assert f'sandbox_image = "{realnode.pause_image()}"' in containerd
    cni = json.loads(realnode._cni_config(np))
    [bridge] = cni["plugins"]
    assert (bridge["bridge"], bridge["ipMasq"]) == (realnode.BRIDGE, False)  # no NAT


def test_the_second_node_shares_nothing_with_the_first(tmp_path: Path) -> None:
    east = realnode.node_paths(tmp_path, tmp_path / "cluster", realnode.EAST)
    west = realnode.node_paths(tmp_path, tmp_path / "cluster", realnode.WEST)
    assert (realnode.WEST.region, realnode.EAST.region) == ("us-west-2", "us-east-1")
    # Own network namespace, bridge, pod subnet, chain, state, sockets, owner file.
    assert realnode.WEST.netns
    assert realnode.EAST.netns is None
    for field in ("name", "bridge", "pod_subnet", "gateway", "state_dir", "chain", "owner"):
        assert getattr(realnode.WEST, field) != getattr(realnode.EAST, field), field
    assert east.socket != west.socket
    assert not west.state.is_relative_to(east.state)
    for config in (realnode._containerd_config, realnode._kubelet_config):
        assert f"{east.state}/" not in config(west)
    # The second kubelet: its own cgroup root and pod log dir; its IP the node's end of
    # the link; its DNS its own bridge's address.
    kubelet = json.loads(realnode._kubelet_config(west))
    assert kubelet["cgroupRoot"] == realnode.WEST.cgroup_root != "/"
    assert kubelet["podLogsDir"] == str(west.state / "pod-logs")
    assert kubelet["address"] == realnode.WEST.node_ip == "10.215.0.2"
    assert kubelet["clusterDNS"] == [realnode.WEST.gateway]
    assert 'Root = "' in realnode._containerd_config(west)  # runc's state apart too
    # Its processes reach the API server at the host's end of the link (not loopback),
    # and the host reaches its health endpoints at the node's end.
    proxy = json.loads(realnode._kube_proxy_config(west))
    assert proxy["clientConnection"]["kubeconfig"] == str(west.state / "kubeconfig.yaml")
    assert proxy["healthzBindAddress"] == "10.215.0.2:10256"
    assert proxy["hostnameOverride"] == realnode.WEST.name
    assert f"bind {realnode.WEST.gateway}" in realnode._corefile(west)
    assert realnode.WEST.host_address == "10.215.0.1"
    # Pods that select the real node (`cloning.dev/real-node=true`) stay on the first.
    assert (realnode.EAST.label, realnode.WEST.label) == ("true", "west")
    # Daemons join its network namespace only (not a mount namespace of their own).
    argv = realnode._in_netns(realnode.WEST, ["kubelet"])
    assert argv == ["nsenter", "--net=/run/netns/cloneop-west", "--", "kubelet"]
    assert realnode._in_netns(realnode.EAST, ["kubelet"]) == ["kubelet"]


def test_the_second_nodes_kubeconfig_points_at_the_host_end_of_its_link(tmp_path: Path) -> None:
    cluster = tmp_path / "cluster"
    cluster.mkdir()
    (cluster / "kubeconfig.yaml").write_text(
        "clusters:\n- cluster:\n    server: https://127.0.0.1:18446\n  name: x\n"
    )
    west = realnode.node_paths(tmp_path, cluster, realnode.WEST)
    west.state.mkdir()
    realnode._node_kubeconfig(west)
    assert "server: https://10.215.0.1:18446\n" in west.node_kubeconfig.read_text()
    east = realnode.node_paths(tmp_path, cluster, realnode.EAST)
    assert east.node_kubeconfig == east.kubeconfig  # the first node's is the cluster's own


def test_with_both_nodes_the_api_server_is_named_at_every_address_pods_reach_it() -> None:
    p = localcluster.paths()
    both = json.loads(localcluster.kwokctl_config(p, (realnode.EAST, realnode.WEST)))
    assert args_of(both, "kube-apiserver")["advertise-address"] == realnode.GATEWAY
    assert both["options"]["kubeApiserverCertSANs"] == [
        realnode.SERVICE_IP,
        realnode.GATEWAY,
        realnode.WEST.host_address,
    ]
    west = json.loads(localcluster.kwokctl_config(p, (realnode.WEST,)))
    assert args_of(west, "kube-apiserver")["advertise-address"] == realnode.WEST.host_address


def test_real_nodes_are_chosen_by_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLONE_OPERATOR_REAL_NODE", raising=False)
    monkeypatch.delenv("CLONE_OPERATOR_REAL_NODES", raising=False)
    assert realnode.wanted_specs() == (realnode.EAST, realnode.WEST)
    monkeypatch.setenv("CLONE_OPERATOR_REAL_NODES", "east")
    assert realnode.wanted_specs() == (realnode.EAST,)
    monkeypatch.setenv("CLONE_OPERATOR_REAL_NODES", "west,east")
    assert realnode.wanted_specs() == (realnode.EAST, realnode.WEST)
    monkeypatch.setenv("CLONE_OPERATOR_REAL_NODES", "west")
    assert realnode.wanted_specs() == (realnode.WEST,)
    monkeypatch.setenv("CLONE_OPERATOR_REAL_NODES", "north")
    with pytest.raises(realnode.NodeError, match="north"):
        realnode.wanted_specs()
    monkeypatch.setenv("CLONE_OPERATOR_REAL_NODE", "0")
    assert realnode.wanted_specs() == ()


def test_the_first_nodes_chain_is_what_it_always_was() -> None:
    # The rules the first node had before there was a second (realnode.py at aeaf790).
    expected = []
    for port in ("36443", "10250"):
        for iface in ("lo", "cloneop0"):
            expected.append(["-i", iface, "-p", "tcp", "--dport", port, "-j", "RETURN"])
        expected.append(["-p", "tcp", "--dport", port, "-j", "DROP"])
    expected.append(["-i", "cloneop0", "-o", "cloneop0", "-j", "ACCEPT"])
    expected.append(["-o", "cloneop0", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED",
                     "-j", "ACCEPT"])  # fmt: skip
    assert realnode.chain_rules(realnode.EAST, 36443) == expected
    # Beside the second node, its link may reach the API server and the kubelet too.
    both = realnode.chain_rules(realnode.EAST, 36443, ("cloneop0", "cloneop-w0"))
    assert ["-i", "cloneop-w0", "-p", "tcp", "--dport", "36443", "-j", "RETURN"] in both


def test_the_second_nodes_chain_forwards_to_the_first_only_and_guards_the_api_port() -> None:
    alone = realnode.chain_rules(realnode.WEST, 18446)
    assert alone == [
        ["-i", "lo", "-p", "tcp", "--dport", "18446", "-j", "RETURN"],
        ["-i", "cloneop-w0", "-p", "tcp", "--dport", "18446", "-j", "ACCEPT"],
        ["-p", "tcp", "--dport", "18446", "-j", "DROP"],
        ["-o", "cloneop-w0", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED",
         "-j", "ACCEPT"],
    ]  # fmt: skip
    both = realnode.chain_rules(realnode.WEST, 36443, ("cloneop0", "cloneop-w0"))
    assert ["-i", "cloneop-w0", "-o", "cloneop0", "-j", "ACCEPT"] in both
    assert ["-i", "cloneop0", "-o", "cloneop-w0", "-j", "ACCEPT"] in both
    assert not any("10250" in rule for rule in both)  # its kubelet is in its namespace


def test_only_the_nodes_own_chains_are_removed_at_teardown() -> None:
    # dockerd started after the node (make test starts it when no engine answers) adds
    # chains too: removing them broke every Docker network afterwards.
    added = {"KUBE-SERVICES", "KUBE-FIREWALL", "CNI-FORWARD", "CNI-HOSTPORT-DNAT",
             "CLONE-OPERATOR-WEST", "DOCKER", "DOCKER-USER", "DOCKER-ISOLATION-STAGE-1"}  # fmt: skip
    assert realnode.node_chains(added) == {
        "KUBE-SERVICES", "KUBE-FIREWALL", "CNI-FORWARD", "CNI-HOSTPORT-DNAT", "CLONE-OPERATOR-WEST",
    }  # fmt: skip
