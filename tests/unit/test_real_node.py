"""The real node's wiring, checked without starting it: the control plane's
configuration with and without it, its kubelet/containerd settings, and how the
in-cluster e2e mode turns operator settings into chart values."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cluster import localcluster, realnode
from tests.e2e.incluster import OperatorPod
from tests.e2e.kube import Kubectl


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


def test_settings_become_chart_values_and_extra_env() -> None:
    pod = OperatorPod(
        Kubectl(Path("kubectl"), Path("kubeconfig")),
        Path("helm"),
        "e2e",
        "ns",
        "clone-operator:0123456789ab",
        Path("/tmp"),
    )
    args = pod.values(
        {
            "CLONE_OPERATOR_MAX_IN_PROGRESS": "50",
            "CLONE_OPERATOR_SMTP_HOST": "127.0.0.1",
            "CLONE_OPERATOR_SMTP_TIMEOUT_SECONDS": "20",
            "CLONE_OPERATOR_METRICS_HOST": "127.0.0.1",
            "CLONE_OPERATOR_WEBHOOK_MODE": "local",
            "CLONE_OPERATOR_WEBHOOK_CLIENT_CA": "/cache/webhook-client/ca.crt",
        }
    )
    pairs = list(zip(args[::2], args[1::2], strict=True))
    assert ("--set-json", "operator.maxInProgress=50") in pairs
    # The test SMTP server on this machine, as the pod reaches it.
    assert ("--set-string", f"notifications.smtp.host={realnode.GATEWAY}") in pairs
    assert ("--set", "webhook.enabled=true") in pairs
    assert ("--set", "image.pullPolicy=Never") in pairs
    # The API server's client CA: a file here, its PEM in the chart.
    assert ("--set-file", "webhook.clientCA=/cache/webhook-client/ca.crt") in pairs
    extra = json.loads(next(v for f, v in pairs if v.startswith("extraEnv="))[9:])
    # Where the process listens is the chart's business; the rest is extraEnv.
    assert extra == [{"name": "CLONE_OPERATOR_SMTP_TIMEOUT_SECONDS", "value": "20"}]
