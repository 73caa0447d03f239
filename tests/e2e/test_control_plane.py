"""The local control plane is a real Kubernetes: the behaviours the product relies on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.cluster import localcluster
from tests.e2e.kube import Kubectl, ready_replicas, wait_for
from tests.e2e.manifests import statefulset

pytestmark = pytest.mark.e2e


def test_nodes_span_two_regions_and_server_is_1_34(admin: Kubectl) -> None:
    nodes = admin.items("nodes")
    ready = [
        n
        for n in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
    ]
    regions = {n["metadata"]["labels"].get("topology.kubernetes.io/region") for n in ready}
    assert len(ready) >= 3
    assert len(regions - {None}) >= 2
    version = json.loads(admin("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"].startswith("v1.34.")
    assert version["clientVersion"]["gitVersion"] == version["serverVersion"]["gitVersion"]


def test_kwokctl_plan_downloads_nothing() -> None:
    plan = localcluster.dry_run_plan()
    assert "kube-apiserver" in plan
    assert localcluster.downloads_in(plan) == []


def test_cel_transition_rule_rejects_forbidden_update(admin: Kubectl, kubectl: Kubectl) -> None:
    group = f"t{uuid.uuid4().hex[:6]}.cloning.dev"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer"}},
                                    "x-kubernetes-validations": [
                                        {
                                            "rule": "self.size == oldSelf.size",
                                            "message": "size is immutable",
                                        }
                                    ],
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    admin.apply(crd)
    try:
        admin("wait", "--for=condition=Established", f"crd/widgets.{group}", "--timeout=30s")
        widget = {
            "apiVersion": f"{group}/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"size": 1},
        }
        wait_for(
            "the Widget kind to be served",
            lambda: kubectl.apply(widget, check=False).returncode == 0,
        )
        result = kubectl(
            "patch",
            f"widgets.{group}",
            "w",
            "--type=merge",
            "-p",
            '{"spec":{"size":2}}',
            check=False,
        )
        assert result.returncode != 0
        assert "size is immutable" in result.stderr
        assert kubectl.get(f"widgets.{group}", "w")["spec"]["size"] == 1
    finally:
        admin("delete", "crd", f"widgets.{group}", "--wait=false", check=False)


def test_statefulset_with_claims_becomes_ready(kubectl: Kubectl) -> None:
    kubectl.apply(statefulset("db", replicas=3))
    wait_for("3 ready replicas", lambda: ready_replicas(kubectl, "db") == 3, timeout=90)
    pvcs = kubectl.items("pvc")
    assert sorted(p["metadata"]["name"] for p in pvcs) == ["data-db-0", "data-db-1", "data-db-2"]
    assert all(p["status"]["phase"] == "Bound" for p in pvcs)


def test_pvc_with_pvc_data_source_is_bound_with_lineage(
    kubectl: Kubectl, cluster: localcluster.Paths
) -> None:
    source = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "origin"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    kubectl.apply(source)
    bound = wait_for("the source PVC to bind", lambda: _bound(kubectl, "origin"))
    # Data written into the source volume must show up in the clone.
    # The CSI driver keeps a volume's files under volumes/<its handle> (tests/cluster/csidriver.py).
    volumes = cluster.workdir / "volumes"
    handle = kubectl.get("pv", bound["spec"]["volumeName"])["spec"]["csi"]["volumeHandle"]
    (volumes / handle / "hello.txt").write_text("from origin")
    clone = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "copy"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "dataSource": {"kind": "PersistentVolumeClaim", "name": "origin"},
        },
    }
    kubectl.apply(clone)
    copy = wait_for("the clone PVC to bind", lambda: _bound(kubectl, "copy"))
    pv = kubectl.get("pv", copy["spec"]["volumeName"])
    annotations = pv["metadata"]["annotations"]
    assert annotations["cloning.dev/cloned-from-pvc"] == f"{kubectl.namespace}/origin"
    assert annotations["cloning.dev/cloned-from-pv"] == bound["spec"]["volumeName"]
    assert annotations["cloning.dev/cloned-from-pvc-uid"] == bound["metadata"]["uid"]
    assert (volumes / pv["spec"]["csi"]["volumeHandle"] / "hello.txt").read_text() == "from origin"


def test_clone_smaller_than_source_is_not_provisioned(kubectl: Kubectl) -> None:
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "big"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "2Gi"}},
            },
        }
    )
    wait_for("the source PVC to bind", lambda: _bound(kubectl, "big"))
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "small"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
                "dataSource": {"kind": "PersistentVolumeClaim", "name": "big"},
            },
        }
    )
    event = wait_for(
        "a ProvisioningFailed event",
        lambda: [
            e
            for e in kubectl.items("events")
            if e["involvedObject"]["name"] == "small" and e["reason"] == "ProvisioningFailed"
        ],
    )
    # The external-provisioner's words (tests/cluster/provisioner.py).
    assert (
        "must be greater than or equal in size to the specified PVC data source"
        in (event[0]["message"])
    )
    assert kubectl.get("pvc", "small")["status"]["phase"] == "Pending"


def test_helm_installs_a_chart(
    kubectl: Kubectl, cluster: localcluster.Paths, tmp_path: Path
) -> None:
    helm = str(cluster.helm_bin / "helm")
    base = [helm, "--kubeconfig", str(cluster.kubeconfig), "--namespace", str(kubectl.namespace)]
    version = subprocess.run(
        [helm, "version", "--short"], capture_output=True, text=True, check=True
    )
    assert version.stdout.startswith("v3.21.")
    chart = tmp_path / "hello"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        "apiVersion: v2\nname: hello\nversion: 0.1.0\nkubeVersion: '>=1.30.0-0'\n"
    )
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-greeting\n"
        "data:\n  greeting: hello\n"
    )
    result = subprocess.run(
        [*base, "install", "hello", str(chart), "--wait"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert kubectl.get("configmap", "hello-greeting")["data"] == {"greeting": "hello"}
    status = subprocess.run(
        [*base, "status", "hello", "-o", "json"], capture_output=True, text=True, check=True
    )
    assert json.loads(status.stdout)["info"]["status"] == "deployed"


def _bound(kubectl: Kubectl, name: str) -> dict | None:
    pvc = kubectl.get("pvc", name)
    return pvc if pvc and pvc["status"].get("phase") == "Bound" else None


@pytest.mark.disruptive
def test_a_killed_control_plane_serves_pods_again_within_seconds(
    cluster: localcluster.Paths, kubectl: Kubectl
) -> None:
    """SIGKILL every component, as a crash or a killed session would; `make cluster`
    (localcluster.up) brings it back and new pods run within seconds: the new kwok
    controller takes the nodes' leases back, and the scheduler has no lease to wait out."""
    kubectl.apply(statefulset("steady", replicas=2))
    wait_for("steady ready", lambda: ready_replicas(kubectl, "steady") == 2, timeout=60)
    pids = [int(f.read_text()) for f in (cluster.cluster_dir / "pids").glob("*.pid")]
    assert len(pids) >= 5, pids  # etcd, apiserver, controller-manager, scheduler, kwok
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    started = time.monotonic()
    localcluster.up()
    kubectl("scale", "statefulset", "steady", "--replicas=4")
    wait_for("a new pod to run", lambda: ready_replicas(kubectl, "steady") == 4, timeout=60)
    elapsed = time.monotonic() - started
    print(f"\ncontrol plane killed → new pods ready: {elapsed:.1f} s")
    assert elapsed < 30, f"recovery took {elapsed:.1f} s"  # was minutes before the fix
    holders = {
        lease["spec"]["holderIdentity"]
        for lease in kubectl.in_namespace("kube-node-lease").items("lease")
        if lease["metadata"]["name"].startswith("kwok-")
    }
    assert len(holders) == 1, holders  # one live kwok controller serves every node
