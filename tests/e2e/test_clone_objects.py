"""CloneObject end to end: the real operator against the real local cluster."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.clones import wait_state
from tests.e2e.harness import DEFAULT_OPERATOR_ENV, OperatorProcess
from tests.e2e.kube import Kubectl, ready_replicas, wait_for
from tests.e2e.manifests import clone_object

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "crds" / "examples"


def apply_sources(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(EXAMPLES / "source-objects.yaml"))
    wait_for(
        "the source PVC to bind",
        lambda: (kubectl.get("pvc", "app-data") or {}).get("status", {}).get("phase") == "Bound",
    )


def test_configmap_secret_service_examples(kubectl: Kubectl, operator: OperatorProcess) -> None:
    apply_sources(kubectl)
    for example in ("configmap", "secret", "service"):
        kubectl("apply", "-f", str(EXAMPLES / f"cloneobject-{example}.yaml"))

    st = wait_state(kubectl, "config-for-staging")
    assert st["state"] == "Created", st
    cm = kubectl.get("configmap", "app-config-staging")
    assert cm["data"] == {"LOG_LEVEL": "debug", "FEATURE_FLAGS": "search,checkout"}
    assert cm["metadata"]["labels"]["env"] == "staging"
    assert cm["metadata"]["labels"]["app"] == "shop"
    assert (
        cm["metadata"]["annotations"]["cloning.dev/source"]
        == f"{kubectl.namespace}/ConfigMap/app-config"
    )
    assert (
        cm["metadata"]["annotations"]["cloning.dev/clone-object"]
        == f"{kubectl.namespace}/config-for-staging"
    )
    assert st["destination"] == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "app-config-staging",
        "namespace": kubectl.namespace,
        "uid": cm["metadata"]["uid"],
    }
    assert st["parameters"]["overrides"] == {"data": {"LOG_LEVEL": "debug"}}
    assert st["errorMessages"] == []
    assert {c["type"]: c["status"] for c in st["conditions"]} == {"Ready": "True"}

    assert wait_state(kubectl, "credentials-for-staging")["state"] == "Created"
    secret = kubectl.get("secret", "app-credentials-staging")
    assert base64.b64decode(secret["data"]["password"]) == b"s3cr3t-example"
    assert secret["type"] == "Opaque"
    assert "s3cr3t-example" not in operator.log()
    assert base64.b64encode(b"s3cr3t-example").decode() not in operator.log()

    assert wait_state(kubectl, "service-for-staging")["state"] == "Created"
    source_svc, copy_svc = kubectl.get("service", "app"), kubectl.get("service", "app-staging")
    assert copy_svc["spec"]["clusterIP"] != source_svc["spec"]["clusterIP"]
    assert copy_svc["spec"]["ports"][0]["nodePort"] != source_svc["spec"]["ports"][0]["nodePort"]
    assert copy_svc["spec"]["selector"] == {"app": "shop", "env": "staging"}

    # Deleting a CloneObject leaves its destination: the clone is the product.
    kubectl("delete", "cloneobject", "config-for-staging", "--wait=true", "--timeout=30s")
    assert kubectl.get("configmap", "app-config-staging") is not None


def test_pvc_example_is_a_volume_clone(kubectl: Kubectl, operator: OperatorProcess) -> None:
    apply_sources(kubectl)
    kubectl("apply", "-f", str(EXAMPLES / "cloneobject-pvc.yaml"))
    st = wait_state(kubectl, "data-snapshot")
    assert st["state"] == "Created", st
    pvc = kubectl.get("pvc", "app-data-copy")
    assert pvc["status"]["phase"] == "Bound"
    assert pvc["spec"]["dataSource"]["name"] == "app-data"
    assert not pvc["metadata"].get("ownerReferences")
    pv = kubectl.get("pv", pvc["spec"]["volumeName"])
    source_pv = kubectl.get("pvc", "app-data")["spec"]["volumeName"]
    assert (
        pv["metadata"]["annotations"]["cloning.dev/cloned-from-pvc"]
        == f"{kubectl.namespace}/app-data"
    )
    assert pv["metadata"]["annotations"]["cloning.dev/cloned-from-pv"] == source_pv


def test_statefulset_example_clones_a_cluster(kubectl: Kubectl, operator: OperatorProcess) -> None:
    kubectl("apply", "-f", str(EXAMPLES / "source-cluster.yaml"))
    wait_for("the example source", lambda: ready_replicas(kubectl, "search") == 3, timeout=90)
    kubectl("apply", "-f", str(EXAMPLES / "cloneobject-statefulset.yaml"))
    st = wait_state(kubectl, "search-sandbox")
    assert st["state"] == "Created", st
    sts = kubectl.get("statefulset", "search-sandbox")
    assert sts["status"]["readyReplicas"] == 3
    assert sts["metadata"]["labels"]["env"] == "sandbox"
    assert sts["spec"]["template"]["metadata"]["annotations"]["cloning.dev/purpose"] == "sandbox"
    assert not sts["metadata"].get("ownerReferences")
    for i in range(3):
        pvc = kubectl.get("pvc", f"data-search-sandbox-{i}")
        pv = kubectl.get("pv", pvc["spec"]["volumeName"])
        assert (
            pv["metadata"]["annotations"]["cloning.dev/cloned-from-pvc"]
            == f"{kubectl.namespace}/data-search-{i}"
        )
    assert st["destination"]["uid"] == sts["metadata"]["uid"]
    copy = kubectl.get("configmap", "search-sandbox-search-nodes")
    assert copy["data"]["nodes"].startswith("search-sandbox-0.search-sandbox:8107:8108,")
    assert not copy["metadata"].get("ownerReferences")


def test_existing_destination_is_left_byte_for_byte(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    apply_sources(kubectl)
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "taken"},
            "data": {"mine": "yes"},
        }
    )
    before = kubectl("get", "configmap", "taken", "-o", "json").stdout
    kubectl.apply(clone_object("clash", "ConfigMap", "app-config", name="taken"))
    st = wait_state(kubectl, "clash")
    assert st["state"] == "Failed"
    assert any("already exists" in m and "taken" in m for m in st["errorMessages"]), st
    assert kubectl("get", "configmap", "taken", "-o", "json").stdout == before


def test_bad_requests(kubectl: Kubectl, admin: Kubectl, operator: OperatorProcess) -> None:
    refused = kubectl.apply(clone_object("nope", "Deployment", "web"), check=False)
    assert refused.returncode != 0
    assert "source.kind Deployment cannot be cloned" in refused.stderr
    assert "StatefulSet, PersistentVolumeClaim, ConfigMap, Secret, Service" in refused.stderr

    refused = kubectl.apply(
        clone_object("elsewhere", "PersistentVolumeClaim", "x", namespace="other"), check=False
    )
    assert refused.returncode != 0
    assert "options.namespace" in refused.stderr

    apply_sources(kubectl)
    kubectl.apply(clone_object("frozen", "ConfigMap", "app-config", name="frozen-copy"))
    wait_state(kubectl, "frozen")
    changed = kubectl(
        "patch",
        "cloneobject",
        "frozen",
        "--type=merge",
        "-p",
        '{"spec":{"options":{"name":"other"}}}',
        check=False,
    )
    assert changed.returncode != 0
    assert "spec is immutable" in changed.stderr

    kubectl.apply(clone_object("missing", "Secret", "no-such-secret"))
    st = wait_state(kubectl, "missing")
    assert st["state"] == "Failed"
    assert st["errorMessages"] == [
        f"source Secret {kubectl.namespace}/no-such-secret does not exist"
    ]

    kubectl.apply(
        clone_object("invalid", "Service", "app", overrides={"spec": {"ports": [{"port": 99999}]}})
    )
    st = wait_state(kubectl, "invalid")
    assert st["state"] == "Failed"
    assert "API server refused" in st["errorMessages"][0]
    assert "spec.ports[0].port" in st["errorMessages"][0]
    assert kubectl.get("service", st["parameters"]["name"]) is None

    kubectl.apply(clone_object("nowhere", "ConfigMap", "app-config", namespace="no-such-namespace"))
    st = wait_state(kubectl, "nowhere")
    assert st["state"] == "Failed"
    assert st["errorMessages"] == ["destination namespace no-such-namespace does not exist"]

    other = f"{kubectl.namespace}-b"
    admin("create", "namespace", other)
    try:
        kubectl.apply(clone_object("across", "ConfigMap", "app-config", namespace=other))
        assert wait_state(kubectl, "across")["state"] == "Created"
        assert admin.in_namespace(other).get(
            "configmap", kubectl.get("cloneobject", "across")["status"]["parameters"]["name"]
        )
    finally:
        admin("delete", "namespace", other, "--wait=false")


def batch(n: int) -> list[dict[str, Any]]:
    """n CloneObjects with known outcomes: copies, missing sources, taken names, bad overrides."""
    items = []
    for i in range(n):
        case = i % 4
        if case == 0:
            obj = clone_object(f"b{i}", "ConfigMap", "app-config", name=f"cm-{i}")
        elif case == 1:
            obj = clone_object(f"b{i}", "Secret", f"absent-{i}")
        elif case == 2:
            obj = clone_object(
                f"b{i}", "Service", "app", name="app"
            )  # the source's own name: taken
        else:
            obj = clone_object(
                f"b{i}",
                "ConfigMap",
                "app-config",
                name=f"bad-{i}",
                overrides={"data": {"not a key!": "x"}},
            )
        obj["metadata"]["labels"] = {"cloning.dev/batch": "b"}
        items.append(obj)
    return items


EXPECTED = {0: "Created", 1: "Failed", 2: "Failed", 3: "Failed"}


def test_batch_of_twenty_with_mixed_outcomes(kubectl: Kubectl, operator: OperatorProcess) -> None:
    apply_sources(kubectl)
    kubectl.apply(batch(20))
    for i in range(20):
        assert wait_state(kubectl, f"b{i}")["state"] == EXPECTED[i % 4], i
    listed = kubectl.items("cloneobjects", "-l", "cloning.dev/batch=b")
    assert len(listed) == 20
    by_state = {}
    for o in listed:
        by_state.setdefault(o["status"]["state"], []).append(o["metadata"]["name"])
    assert len(by_state["Created"]) == 5
    assert len(by_state["Failed"]) == 15


def test_operator_killed_mid_batch(kubectl: Kubectl, operator: OperatorProcess) -> None:
    apply_sources(kubectl)
    kubectl.apply(batch(20))
    for delay in (0.1, 0.3):
        time.sleep(delay)
        operator.kill()
        operator.start()
    for i in range(20):
        assert wait_state(kubectl, f"b{i}")["state"] == EXPECTED[i % 4], i
    copies = kubectl.items("configmaps", "-l", "cloning.dev/clone-object-uid")
    assert sorted(c["metadata"]["name"] for c in copies) == sorted(
        f"cm-{i}" for i in range(0, 20, 4)
    )
    assert kubectl.get("service", "app")["metadata"].get("labels") == {"app": "shop"}


def test_a_pvc_clone_that_never_binds_times_out(
    kubectl: Kubectl, operator_process: OperatorProcess
) -> None:
    """objectTimeoutSeconds applies to PVC clones too: one that cannot bind (its storage
    class does not exist) fails with reason Timeout, and its PVC is removed."""
    operator_process.ensure({**DEFAULT_OPERATOR_ENV, "CLONE_OPERATOR_OBJECT_TIMEOUT_SECONDS": "30"})
    apply_sources(kubectl)
    kubectl.apply(
        clone_object(
            "stuck",
            "PersistentVolumeClaim",
            "app-data",
            name="stuck-data",
            overrides={"spec": {"storageClassName": "no-such-class"}},
        )
    )
    st = wait_state(kubectl, "stuck", timeout=120)
    assert st["state"] == "Failed"
    assert {c["type"]: c["reason"] for c in st["conditions"]}["Failed"] == "Timeout"
    assert st["errorMessages"] == [
        f"PersistentVolumeClaim {kubectl.namespace}/stuck-data was not bound within 30 s"
    ]
    wait_for("the unbound PVC to be removed", lambda: kubectl.get("pvc", "stuck-data") is None)
