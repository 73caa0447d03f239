"""A live clustered app cloned on the real node: the clone never reaches back to its source.

peerapp (tests/app/peerapp.py) runs as a 3-replica StatefulSet whose pods
find each other through a Typesense-style nodes list, in an env var and in a
file from a ConfigMap, and call each other over HTTP through the cluster's
DNS. A CloningOperation with a new `serverVersion` clones it; then, from the
pods themselves:

- the clone has every document written before the clone, per ordinal;
- it runs and reports the requested version;
- each clone pod's configured peers are the clone's pods, and only the
  clone's pods ever answered it;
- no source pod was ever called by a clone pod, and the source's data,
  config and pods are unchanged.

Needs the real node (tests/cluster/realnode.py); skipped without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.app import images
from tests.cluster import localcluster, realnode
from tests.e2e import app_api
from tests.e2e.app_api import API_PORT, http
from tests.e2e.clones import wait_phase
from tests.e2e.harness import OperatorProcess
from tests.e2e.kube import Kubectl, wait_for
from tests.e2e.manifests import operation

pytestmark = pytest.mark.e2e

SOURCE, SERVICE, TARGET = "peers", "peers-hl", "peers-clone"
REPLICAS = 3
PEER_PORT = 8107


def pods_of(kubectl: Kubectl, statefulset: str) -> dict[str, str]:
    """{pod: IP} of this module's clusters once every replica is Ready."""
    return app_api.pods_of(kubectl, statefulset, REPLICAS)


@pytest.fixture(scope="module")
def peerapp(cluster: localcluster.Paths) -> Iterator[dict[str, str]]:
    """peerapp's images on the real node, by version."""
    if not realnode.running(localcluster.node_paths(cluster)):
        pytest.skip(f"needs the real node: {realnode.unavailable_reason() or 'it is not up'}")
    versions = ["1.0", "2.0"]
    return dict(zip(versions, images.build_and_import(cluster.cache, cluster.cluster_dir, versions),
                   strict=True))  # fmt: skip


def nodes_list(namespace: str, *forms: str) -> str:
    """`host:peer_port:api_port,...`, each pod named in one of the DNS name forms given."""
    hosts = []
    for ordinal in range(REPLICAS):
        suffix = forms[ordinal % len(forms)].format(ns=namespace)
        hosts.append(f"{SOURCE}-{ordinal}.{SERVICE}{suffix}:{PEER_PORT}:{API_PORT}")
    return ",".join(hosts)


def advertise(namespace: str, service: str, pod: str = "$(POD_NAME)") -> str:
    return f"{pod}.{service}.{namespace}.svc.cluster.local:{PEER_PORT}:{API_PORT}"


def source_manifests(namespace: str, image: str) -> list[dict[str, Any]]:
    labels = {"app": SOURCE}
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{SOURCE}-config"},
            # Every suffix a peer's name may carry, one per pod.
            "data": {"nodes": nodes_list(namespace, "", ".{ns}", ".{ns}.svc")},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVICE, "labels": labels},
            "spec": {
                "clusterIP": "None",
                # Peers find each other while they start, as clustered stores do.
                "publishNotReadyAddresses": True,
                "selector": labels,
                "ports": [{"name": "api", "port": API_PORT}, {"name": "peer", "port": PEER_PORT}],
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": SOURCE, "labels": labels},
            "spec": {
                "replicas": REPLICAS,
                "serviceName": SERVICE,
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "nodeSelector": {"cloning.dev/real-node": "true"},
                        "tolerations": [
                            {
                                "key": realnode.TAINT_KEY,
                                "operator": "Exists",
                                "effect": "NoSchedule",
                            }
                        ],
                        "terminationGracePeriodSeconds": 1,
                        "containers": [
                            {
                                "name": "peerapp",
                                "image": image,
                                "imagePullPolicy": "Never",
                                # Its own address, as Kafka advertises it: by argument and
                                # by environment, built from the pod's own name.
                                "args": [f"--advertise={advertise(namespace, SERVICE)}"],
                                "env": [
                                    {
                                        "name": "POD_NAME",
                                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                    },
                                    {
                                        "name": "PEERAPP_ADVERTISE",
                                        "value": advertise(namespace, SERVICE),
                                    },
                                    {
                                        "name": "PEERAPP_NODES",
                                        "value": nodes_list(namespace, ".{ns}.svc.cluster.local"),
                                    },
                                    {
                                        "name": "PEERAPP_NODES_FILE",
                                        "value": "/etc/peerapp-config/nodes",
                                    },
                                    {
                                        "name": "PEERAPP_NAMESPACE",
                                        "valueFrom": {
                                            "fieldRef": {"fieldPath": "metadata.namespace"}
                                        },
                                    },
                                ],
                                "ports": [{"name": "api", "containerPort": API_PORT}],
                                "readinessProbe": {
                                    "httpGet": {"path": "/healthz", "port": API_PORT},
                                    "periodSeconds": 1,
                                },
                                "resources": {
                                    "requests": {"cpu": "10m", "memory": "32Mi"},
                                    "limits": {"memory": "128Mi"},
                                },
                                "volumeMounts": [
                                    {"name": "data", "mountPath": "/data"},
                                    {"name": "config", "mountPath": "/etc/peerapp-config"},
                                ],
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": f"{SOURCE}-config"}}],
                    },
                },
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "1Gi"}},
                        },
                    }
                ],
            },
        },
    ]


def peers_formed(ip: str, cluster: str) -> dict[str, Any] | None:
    """The pod's /peers once every configured peer answered, all of them members of `cluster`."""
    seen = http(ip, "/peers")
    configured = set(seen["configured"]["env"]) | set(seen["configured"]["file"])
    answers = seen["answers"]
    if not configured or not configured <= set(answers):
        return None
    members = {a.get("pod") for a in answers.values() if a.get("cluster") == cluster}
    return (
        dict(seen)
        if len(members) == REPLICAS
        and len(members) == len({a.get("pod") for a in answers.values()})
        else None
    )


def test_a_live_cluster_clone_has_its_data_its_version_and_only_its_own_peers(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess, peerapp: dict[str, str]
) -> None:
    kubectl.apply(source_manifests(namespace, peerapp["1.0"]))
    source = pods_of(kubectl, SOURCE)
    for ip in source.values():
        wait_for("the source's peers answering", lambda ip=ip: peers_formed(ip, SOURCE), timeout=60)

    # Documents, each on the volume of the pod it was written to.
    written: dict[str, dict[str, str]] = {}
    for pod, ip in sorted(source.items()):
        docs = {f"doc-{pod}-{i}": f"written to {pod} #{i}" for i in range(5)}
        for doc_id, text in docs.items():
            assert http(ip, f"/documents/{doc_id}", text.encode()) == {"id": doc_id}
        written[pod] = docs
    source_pods_before = {
        p["metadata"]["name"]: p["metadata"]["uid"]
        for p in kubectl.items("pods", "-l", f"app={SOURCE}")
    }
    config_before = kubectl.get("configmap", f"{SOURCE}-config")
    sts_before = kubectl.get("statefulset", SOURCE)

    kubectl.apply(operation("live", SOURCE, serverVersion="2.0", targetName=TARGET))
    status = wait_phase(kubectl, "live", {"Succeeded", "Failed"}, timeout=240)
    assert status["phase"] == "Succeeded", status

    clone = pods_of(kubectl, TARGET)
    assert sorted(clone) == [f"{TARGET}-{i}" for i in range(REPLICAS)]
    for pod, ip in sorted(clone.items()):
        ordinal = pod.rsplit("-", 1)[1]
        identity = http(ip, "/identity")
        assert identity["version"] == "2.0"
        # It advertises its own name, in the clone's zone (the kubelet expanded $(POD_NAME)).
        own = advertise(namespace, TARGET, pod)
        assert identity["advertised"] == {"arg": own, "env": own}, identity
        assert http(ip, "/documents") == written[f"{SOURCE}-{ordinal}"]
        formed = wait_for(
            f"{pod}'s peers answering as {TARGET}",
            lambda ip=ip: peers_formed(ip, TARGET),
            timeout=60,
        )
        # Configured peers, from the env var and from the copied ConfigMap: the clone's pods.
        for hosts in formed["configured"].values():
            names = [h.split(":")[0].split(".") for h in hosts]
            assert sorted(n[0] for n in names) == sorted(clone), formed
            assert all(n[1] != SERVICE for n in names), f"the source's Service is named: {formed}"
        # Only the clone's pods ever answered it.
        answered = {pod for pods in formed["ever_answered"].values() for pod in pods}
        assert answered == set(clone), formed

    # The source: never called by a clone pod, its data, config and pods as they were.
    clone_ips = set(clone.values())
    for pod, ip in sorted(source.items()):
        callers = http(ip, "/callers")
        assert callers, f"{pod} recorded no caller at all: the check below would prove nothing"
        strangers = [c for c in callers if c["cluster"] != SOURCE or c["address"] in clone_ips]
        assert not strangers, f"{pod} was called from outside its cluster: {strangers}"
        assert http(ip, "/documents") == written[pod]
        assert http(ip, "/identity")["version"] == "1.0"
    assert {
        p["metadata"]["name"]: p["metadata"]["uid"]
        for p in kubectl.items("pods", "-l", f"app={SOURCE}")
    } == source_pods_before
    config_after = kubectl.get("configmap", f"{SOURCE}-config")
    assert (
        config_after["metadata"]["resourceVersion"] == config_before["metadata"]["resourceVersion"]
    )
    sts_after = kubectl.get("statefulset", SOURCE)
    assert sts_after["metadata"]["generation"] == sts_before["metadata"]["generation"]
    assert sts_after["spec"]["template"] == sts_before["spec"]["template"]
