"""The real node's wiring, checked without starting it: the control plane's
configuration with and without it, and its kubelet/containerd settings."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cluster import localcluster, realnode


def args_of(config: dict[str, object], component: str) -> dict[str, str]:
    patches = config["componentsPatches"]
    assert isinstance(patches, list)
    [patch] = [p for p in patches if p["name"] == component]
    return {a["key"]: a["value"] for a in patch["extraArgs"]}


def test_without_the_real_node_everything_stays_on_loopback() -> None:
    p = localcluster.paths()
    config = json.loads(localcluster.kwokctl_config(p, real_node=False))
    assert args_of(config, "kube-apiserver") == {
        "advertise-address": "127.0.0.1",
        # Its client certificate towards webhooks: a file path, nothing that listens.
        "admission-control-config-file": str(localcluster.webhook_client(p).admission_config),
    }
    assert "kubeApiserverCertSANs" not in config["options"]


def test_with_the_real_node_pods_reach_the_api_server_through_its_service() -> None:
    p = localcluster.paths()
    config = json.loads(localcluster.kwokctl_config(p, real_node=True))
    args = args_of(config, "kube-apiserver")
    assert args["advertise-address"] == realnode.GATEWAY  # the `kubernetes` endpoint
    assert args["bind-address"] == "0.0.0.0"  # guarded by realnode.CHAIN
    assert args["kubelet-client-certificate"] == str(p.cluster_dir / "pki" / "admin.crt")
    assert args["kubelet-preferred-address-types"] == "InternalIP"  # `kubectl logs`
    # In-cluster clients dial the Service IP; the certificate must name it.
    assert realnode.SERVICE_IP in config["options"]["kubeApiserverCertSANs"]


def test_kwok_never_simulates_the_real_node() -> None:
    for real_node in (False, True):
        config = json.loads(localcluster.kwokctl_config(localcluster.paths(), real_node))
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
