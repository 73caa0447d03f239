"""The second real node, real-west-c in us-west-2 (tests/cluster/realnode.py, WEST).

Its pods really run (in the node's own network namespace), reach the API server
through the `kubernetes` Service, find each other by cluster DNS, and — when the
first node is up in the same cluster — reach a pod on real-east-c across the
host. Skipped unless the west node is up (CLONE_OPERATOR_REAL_NODES=east,west or
west).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.app import images
from tests.cluster import localcluster, realnode
from tests.e2e.kube import Kubectl, wait_for
from tests.e2e.test_storage import pod_output

pytestmark = pytest.mark.e2e

PORT = 8080
# Serves its pod's name and node; answers the question "who are you" over plain HTTP.
SERVE = (
    "import http.server, os\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        body = (os.environ['POD'] + ' on ' + os.environ['NODE']).encode()\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(body)\n"
    f"http.server.HTTPServer(('', {PORT}), H).serve_forever()\n"
)
# Asks the API server (through the `kubernetes` Service, with the pod's token) and a peer.
ASK = (
    "import json, os, ssl, sys, urllib.request\n"
    "sa = '/var/run/secrets/kubernetes.io/serviceaccount'\n"
    "ctx = ssl.create_default_context(cafile=sa + '/ca.crt')\n"
    "req = urllib.request.Request('https://kubernetes.default.svc/version',\n"
    "    headers={'Authorization': 'Bearer ' + open(sa + '/token').read()})\n"
    "print('api', json.load(urllib.request.urlopen(req, context=ctx, timeout=10))['gitVersion'])\n"
    "for url in sys.argv[1:]:\n"
    "    print('peer', urllib.request.urlopen(url, timeout=10).read().decode())\n"
)


def on(node: realnode.NodeSpec) -> dict[str, Any]:
    return {
        "nodeSelector": {"kubernetes.io/hostname": node.name},
        "tolerations": [{"key": realnode.TAINT_KEY, "operator": "Exists"}],
        "terminationGracePeriodSeconds": 1,
    }


def server(name: str, image: str, node: realnode.NodeSpec) -> list[dict[str, Any]]:
    env = [
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    ]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            **on(node),
            "containers": [{"name": "http", "image": image, "imagePullPolicy": "Never",
                            "command": ["python3", "-c", SERVE], "env": env,
                            "ports": [{"containerPort": PORT}],
                            "readinessProbe": {"tcpSocket": {"port": PORT},
                                               "periodSeconds": 1}}],
        },
    }  # fmt: skip
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": PORT}]},
    }
    return [pod, service]


def client(name: str, image: str, node: realnode.NodeSpec, urls: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            **on(node),
            "restartPolicy": "Never",
            "containers": [{"name": "ask", "image": image, "imagePullPolicy": "Never",
                            "command": ["python3", "-c", ASK, *urls]}],
        },
    }  # fmt: skip


def ready(kubectl: Kubectl, name: str) -> None:
    wait_for(f"{name} to be Ready", lambda: kubectl("wait", "--for=condition=Ready", f"pod/{name}",
             "--timeout=5s", check=False).returncode == 0, timeout=120)  # fmt: skip


def up(cluster: localcluster.Paths, node: realnode.NodeSpec) -> bool:
    return realnode.running(localcluster.node_paths(cluster, node))


@pytest.fixture(scope="module")
def west_image(cluster: localcluster.Paths) -> str:
    """An image with python3 (peerapp's) on the west node, and on the east one when up."""
    if not up(cluster, realnode.WEST):
        reason = realnode.unavailable_reason(realnode.WEST) or (
            "it is not up (CLONE_OPERATOR_REAL_NODES=east,west make cluster)"
        )
        pytest.skip(f"needs the second real node: {reason}")
    [ref] = images.build_and_import(cluster.cache, cluster.cluster_dir, ["1.0"], realnode.WEST)
    if up(cluster, realnode.EAST):
        images.build_and_import(cluster.cache, cluster.cluster_dir, ["1.0"], realnode.EAST)
    return ref


def test_a_pod_runs_on_the_west_node_and_reaches_the_api_server_and_its_peers(
    kubectl: Kubectl, west_image: str
) -> None:
    kubectl.apply(server("west-http", west_image, realnode.WEST))
    ready(kubectl, "west-http")
    ns = kubectl.namespace
    url = f"http://west-http.{ns}.svc.cluster.local:{PORT}/"
    kubectl.apply(client("west-ask", west_image, realnode.WEST, [url]))
    logs = pod_output(kubectl, "west-ask")
    assert "api v1." in logs  # the API server, through the `kubernetes` Service
    assert "peer west-http on real-west-c" in logs  # a Service, by cluster DNS
    pod = kubectl.get("pod", "west-ask")
    assert pod["spec"]["nodeName"] == realnode.WEST.name
    # The pod's address is on the west node's bridge, and the host reaches it there.
    server_ip = kubectl.get("pod", "west-http")["status"]["podIP"]
    assert server_ip.startswith("10.214.0."), server_ip


def test_a_pod_on_the_west_node_reaches_a_pod_on_the_east_node(
    cluster: localcluster.Paths, kubectl: Kubectl, west_image: str
) -> None:
    if not up(cluster, realnode.EAST):
        pytest.skip("needs both real nodes in this cluster (CLONE_OPERATOR_REAL_NODES=east,west)")
    kubectl.apply(server("east-http", west_image, realnode.EAST))
    ready(kubectl, "east-http")
    east_ip = kubectl.get("pod", "east-http")["status"]["podIP"]
    assert east_ip.startswith("10.213.0."), east_ip
    urls = [f"http://{east_ip}:{PORT}/",
            f"http://east-http.{kubectl.namespace}.svc.cluster.local:{PORT}/"]  # fmt: skip
    kubectl.apply(client("west-to-east", west_image, realnode.WEST, urls))
    logs = pod_output(kubectl, "west-to-east")
    assert logs.count("peer east-http on real-east-c") == 2, logs
