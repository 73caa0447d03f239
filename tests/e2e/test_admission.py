"""The admission webhook, called by the real kube-apiserver: at 127.0.0.1 (process
mode) or through the chart's Service (the operator's pod on the real node)."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.request
import uuid
from typing import Any

import pytest

from tests.cluster import localcluster
from tests.e2e.clones import source_cluster, wait_phase
from tests.e2e.harness import (
    DEFAULT_OPERATOR_ENV,
    WEBHOOK_CLIENT_CA,
    WEBHOOK_CONFIGURATION,
    WEBHOOK_ENV,
    OperatorProcess,
)
from tests.e2e.kube import Kubectl, make_unplaceable, wait_for
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
    refused = kubectl.apply(
        operation("nowhere", "missing", targetRegion="mars-1", timeoutSeconds=86400), check=False
    )
    assert refused.returncode != 0
    assert "denied the request" in refused.stderr
    assert (
        f"spec.sourceCluster: StatefulSet {kubectl.namespace}/missing does not exist"
        in refused.stderr
    )
    assert "spec.targetRegion: unknown target region 'mars-1'; valid regions:" in refused.stderr
    assert "spec.timeoutSeconds: 86400 is more than this operator allows" in refused.stderr
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


def review(namespace: str, source: str, operation_name: str = "CREATE") -> dict[str, Any]:
    """An AdmissionReview as anyone can write one: it names whatever namespace it likes."""
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "cloning.dev", "version": "v1alpha1", "kind": "CloningOperation"},
            "resource": {"group": "cloning.dev", "version": "v1alpha1",
                         "resource": "cloningoperations"},
            "namespace": namespace,
            "operation": operation_name,
            "userInfo": {"username": "system:serviceaccount:elsewhere:mallory"},
            "object": operation("probe", source, serverContainer="zz")
            | {"metadata": {"name": "probe", "namespace": namespace}},
        },
    }  # fmt: skip


def send_review(
    webhook: OperatorProcess, admin: Kubectl, body: dict[str, Any], client_cert: bool
) -> dict[str, Any]:
    """POST a review straight to the webhook's port (what the API server would call), with
    or without the API server's client certificate; the answer's `response`. In a pod:
    to a pod's address, as any other pod could (the certificate names the Service)."""
    # kopf creates the configuration empty, then fills in its webhooks once it serves.
    hook = wait_for(
        "the webhook to be published",
        lambda: (
            (c := admin.get("validatingwebhookconfiguration", WEBHOOK_CONFIGURATION))
            and c.get("webhooks")
            and c["webhooks"][0]
        ),
    )
    config = hook["clientConfig"]
    context = ssl.create_default_context(cadata=base64.b64decode(config["caBundle"]).decode())
    if client_cert:
        files = localcluster.webhook_client(localcluster.paths())
        context.load_cert_chain(files.client_cert, files.client_key)
    url = config.get("url")
    if url is None:
        service = config["service"]
        address = webhook.pod_ips()[0]  # type: ignore[attr-defined]  # an OperatorPod
        url = f"https://{address}:{service['port']}{service.get('path', '')}"
        context.check_hostname = False  # still verified against the caBundle
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, context=context, timeout=30) as answer:
        response: dict[str, Any] = json.loads(answer.read())["response"]
    assert response.pop("uid") == body["request"]["uid"]
    return response


def test_a_forged_review_learns_nothing_of_another_namespace(
    webhook: OperatorProcess, admin: Kubectl, kubectl: Kubectl
) -> None:
    """Whoever reaches the webhook's port may name any namespace in a review: without the
    API server's client certificate, the answer is the same whether the source exists
    or not, and names nothing read; the API server's own review gets the details."""
    kubectl.apply(statefulset("private-db", replicas=1))
    victim = kubectl.namespace
    existing, missing = review(victim, "private-db"), review(victim, "no-such-db")

    forged = [send_review(webhook, admin, r, client_cert=False) for r in (existing, missing)]
    assert forged[0] == forged[1], forged
    assert forged[0]["allowed"] is True
    assert "server" not in json.dumps(forged[0])  # nothing read: not even refused
    # Another operation (kopf never filters handlers by it) reads nothing either.
    assert send_review(webhook, admin, review(victim, "private-db", "UPDATE"), client_cert=True)[
        "allowed"
    ]

    known = send_review(webhook, admin, existing, client_cert=True)
    assert known["allowed"] is False
    assert "the source has no container 'zz' (it has: server)" in known["status"]["message"]
    unknown = send_review(webhook, admin, missing, client_cert=True)
    assert f"StatefulSet {victim}/no-such-db does not exist" in unknown["status"]["message"]


def test_without_a_client_ca_bad_operations_are_admitted_and_fail_in_status(
    operator: OperatorProcess, admin: Kubectl, kubectl: Kubectl
) -> None:
    """A managed cluster (no client certificate for the API server): even the API
    server's reviews are answered from the request alone; the operator puts the reason in
    the status, which only those who may read the resource see."""
    env = {k: v for k, v in WEBHOOK_ENV.items() if k not in WEBHOOK_CLIENT_CA}
    operator.ensure({**env, "CLONE_OPERATOR_UNSCHEDULABLE_GRACE_SECONDS": "600"})
    try:
        wait_for("the webhook configuration",
                 lambda: admin.get("validatingwebhookconfiguration", WEBHOOK_CONFIGURATION))  # fmt: skip
        kubectl.apply(operation("unjudged", "missing", targetRegion="mars-1"))
        st = wait_phase(kubectl, "unjudged", {"Succeeded", "Failed", "Canceled"})
        assert st["phase"] == "Failed", st
        assert "missing" in st["message"], st
    finally:
        operator.stop()
        admin(
            "delete", "validatingwebhookconfiguration", WEBHOOK_CONFIGURATION, "--ignore-not-found"
        )
        admin("delete", "mutatingwebhookconfiguration", WEBHOOK_CONFIGURATION, "--ignore-not-found")
