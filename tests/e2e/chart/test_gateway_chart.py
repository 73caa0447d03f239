"""The chart's gateway (`api.enabled`): installed on the real cluster, its pods up, its rights.

kwok makes the gateway pods Running/Ready without pulling the image; the gateway
*process* runs with this ServiceAccount's token in tests/e2e/test_gateway.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.chart.helm import Helm, Release, can_i
from tests.e2e.kube import Kubectl, wait_for

pytestmark = pytest.mark.e2e


def named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def test_gateway_is_off_by_default(helm: Helm) -> None:
    assert not [d for d in helm.template() if "-api" in d["metadata"]["name"]]


def test_gateway_renders_replicas_service_pdb_and_a_restricted_pod(helm: Helm) -> None:
    docs = helm.template("--set", "api.enabled=true")
    deployment = named(docs, "Deployment", "clone-operator-api")
    operator = named(docs, "Deployment", "clone-operator")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    # Disjoint from the operator's pods: neither Deployment selects the other's pods.
    gateway_labels = spec["template"]["metadata"]["labels"]
    operator_selector = operator["spec"]["selector"]["matchLabels"]
    assert not operator_selector.items() <= gateway_labels.items()
    pod = spec["template"]["spec"]
    [container] = pod["containers"]
    assert container["args"] == ["api"]
    assert (
        container["securityContext"]
        == operator["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    )
    assert pod["securityContext"] == operator["spec"]["template"]["spec"]["securityContext"]
    assert {"name": "CLONE_OPERATOR_API_PORT", "value": "8000"} in container["env"]
    service = named(docs, "Service", "clone-operator-api")
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    pdb = named(docs, "PodDisruptionBudget", "clone-operator-api")
    assert pdb["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]
    assert named(docs, "NetworkPolicy", "clone-operator-api")["spec"]["podSelector"] == {
        "matchLabels": spec["selector"]["matchLabels"]
    }


def test_installed_gateway_runs_and_has_no_rights_on_clones(
    release: Release, admin: Kubectl, namespace: str
) -> None:
    release.install(**{"api.enabled": "true", "crds.enabled": "false"})
    deployment = f"{release.name}-clone-operator-api"
    wait_for(
        "the gateway's two replicas",
        lambda: (
            (admin.in_namespace(namespace).get("deployment", deployment) or {})
            .get("status", {})
            .get("readyReplicas")
            == 2
        ),
        timeout=90,
    )
    sa = f"system:serviceaccount:{namespace}:{deployment}"
    for verb in ("get", "list", "create", "patch"):
        for resource in ("cloningoperations.cloning.dev", "cloneobjects.cloning.dev"):
            assert not can_i(admin, sa, verb, resource, namespace)
            assert not can_i(admin, sa, verb, resource)
    for verb in ("get", "create", "update"):
        assert can_i(admin, sa, verb, "configmaps", namespace)
    assert not can_i(admin, sa, "get", "configmaps", "default")
    assert not can_i(admin, sa, "get", "secrets", namespace)
