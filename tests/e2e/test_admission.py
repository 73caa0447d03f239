"""The admission webhook, called by the real kube-apiserver: at 127.0.0.1 (process
mode) or through the chart's Service (the operator's pod on the real node)."""

from __future__ import annotations

import pytest

from tests.e2e.clones import source_cluster, wait_phase
from tests.e2e.harness import (
    DEFAULT_OPERATOR_ENV,
    WEBHOOK_CONFIGURATION,
    OperatorProcess,
)
from tests.e2e.kube import Kubectl, make_unplaceable
from tests.e2e.manifests import operation, statefulset

pytestmark = pytest.mark.e2e


def test_webhook_configuration_reviews_creates_only(
    webhook: OperatorProcess, admin: Kubectl
) -> None:
    config = admin.get("validatingwebhookconfiguration", WEBHOOK_CONFIGURATION)
    [hook] = config["webhooks"]
    assert hook["failurePolicy"] == "Ignore"
    assert hook["rules"][0]["operations"] == ["CREATE"]
    assert hook["rules"][0]["resources"] == ["cloningoperations"]  # never the status subresource
    if webhook.in_cluster:
        service = hook["clientConfig"]["service"]
        assert service["name"].endswith("-clone-operator-webhook")
        assert service["port"] == 9443
    else:
        assert hook["clientConfig"]["url"].startswith("https://127.0.0.1:")
    assert hook["clientConfig"]["caBundle"]


def test_bad_operations_are_refused_at_apply(webhook: OperatorProcess, kubectl: Kubectl) -> None:
    refused = kubectl.apply(operation("nowhere", "missing", targetRegion="mars-1"), check=False)
    assert refused.returncode != 0
    assert "denied the request" in refused.stderr
    assert (
        f"spec.sourceCluster: StatefulSet {kubectl.namespace}/missing does not exist"
        in refused.stderr
    )
    assert "spec.targetRegion: unknown target region 'mars-1'; valid regions:" in refused.stderr
    assert kubectl.get("cloningoperation", "nowhere") is None

    source_cluster(kubectl, "db", replicas=1)
    kubectl.apply(statefulset("taken", replicas=1))
    refused = kubectl.apply(
        operation("clash", "db", targetName="taken", serverContainer="nope"), check=False
    )
    assert "spec.targetName: StatefulSet" in refused.stderr
    assert "already exists" in refused.stderr
    assert (
        "spec.serverContainer: the source has no container 'nope' (it has: server)"
        in refused.stderr
    )


def test_second_active_operation_is_refused_at_apply(
    webhook: OperatorProcess, kubectl: Kubectl
) -> None:
    source_cluster(kubectl, "stuck", replicas=1)
    make_unplaceable(kubectl, "stuck")
    kubectl.apply(operation("first", "stuck"))
    wait_phase(
        kubectl, "first", {"InProgress"}
    )  # the webhook never blocked the operator's status writes
    refused = kubectl.apply(operation("second", "stuck"), check=False)
    assert refused.returncode != 0
    assert "operation first is already InProgress for cluster stuck" in refused.stderr
    assert kubectl.get("cloningoperation", "second") is None
    kubectl("delete", "cloningoperation", "first", "--wait=true", "--timeout=30s")
    kubectl.apply(operation("third", "stuck"))  # accepted once the first is gone
    assert kubectl.get("cloningoperation", "third") is not None


def test_operator_enforces_rules_when_webhook_is_down(
    webhook: OperatorProcess, kubectl: Kubectl
) -> None:
    webhook.stop()  # the configuration stays; its failurePolicy lets requests through
    source_cluster(kubectl, "src", replicas=1)
    kubectl.apply(operation("far", "src", targetRegion="mars-1"))
    webhook.ensure(DEFAULT_OPERATOR_ENV)
    st = wait_phase(kubectl, "far", {"Succeeded", "Failed", "Canceled"})
    assert (st["phase"], st["reason"]) == ("Failed", "UnknownRegion")
