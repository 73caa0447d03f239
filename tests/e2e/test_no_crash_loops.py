"""No input makes an engine loop: a refusal ends the resource Failed once, a transient
error is retried with a growing backoff until it passes. The real operator against the
real API server, which makes the errors itself (a quota, an admission webhook that
cannot be reached)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.harness import OperatorProcess
from tests.e2e.kube import Kubectl, wait_for

pytestmark = pytest.mark.e2e


def clone_object(name: str, source: str, /, **options: Any) -> dict[str, Any]:
    return {
        "apiVersion": "cloning.dev/v1alpha1",
        "kind": "CloneObject",
        "metadata": {"name": name},
        "spec": {"source": {"kind": "ConfigMap", "name": source}, "options": options},
    }


def seed(kubectl: Kubectl) -> None:
    kubectl.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "seed"}, "data": {"k": "v"}}
    )


def finished(kubectl: Kubectl, name: str, timeout: float = 60) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        st = ((kubectl.get("cloneobject", name) or {}).get("status")) or {}
        return st if st.get("state") in ("Created", "Failed") and st.get("finalized") else None

    return wait_for(f"CloneObject {name} to finish", done, timeout=timeout)


def lines_about(operator: OperatorProcess, namespace: str, name: str) -> list[str]:
    return [line for line in operator.log().splitlines() if f"{namespace}/{name}:" in line]


def failed_condition(st: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in st["conditions"] if c["type"] == "Failed")


def test_an_api_refusal_ends_the_clone_failed_once(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    """A 403 that is not a namespace being deleted (here: exceeded quota) is no reason to
    try again: Failed with the API server's words, one warning, no traceback, no loop."""
    seed(kubectl)
    used = len(kubectl.items("configmaps"))  # the seed and kube-root-ca.crt
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "no-more-configmaps"},
            "spec": {"hard": {"configmaps": str(used)}},
        }
    )
    kubectl.apply(clone_object("over-quota", "seed", name="copy"))
    st = finished(kubectl, "over-quota")
    assert st["state"] == "Failed", st
    failed = failed_condition(st)
    assert failed["reason"] == "ApiRefused"
    assert failed["message"].startswith("the API server refused POST configmaps (403 Forbidden)")
    assert "quota" in failed["message"]
    assert "create a new CloneObject" in failed["message"]
    assert st["errorMessages"] == [failed["message"]]
    assert kubectl.get("configmap", "copy") is None
    # Finished for good: nothing more about it in the log, however long one waits.
    before = lines_about(operator, kubectl.namespace or "", "over-quota")
    assert sum("cannot go on: POST configmaps: 403" in line for line in before) == 1, before
    assert not any("retry" in line for line in before), before
    time.sleep(5)
    assert lines_about(operator, kubectl.namespace or "", "over-quota") == before


def test_a_nonsense_kind_in_overrides_makes_nothing(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    """`overrides: {kind: Nope}`: refused at apply, or Failed without a request for it."""
    seed(kubectl)
    applied = kubectl.apply(
        clone_object("nope", "seed", name="nope", overrides={"kind": "Nope"}), check=False
    )
    if applied.returncode != 0:  # the CRD refuses identity in overrides
        assert "kind" in applied.stderr
        return
    st = finished(kubectl, "nope")
    assert st["state"] == "Failed", st
    failed = failed_condition(st)
    assert failed["reason"] == "ApiRefused"
    assert "kind Nope" in failed["message"]
    assert kubectl.get("configmap", "nope") is None
    lines = lines_about(operator, kubectl.namespace or "", "nope")
    assert not any("retry" in line for line in lines), lines


@contextlib.contextmanager
def unreachable_webhook(admin: Kubectl, namespace: str) -> Iterator[str]:
    """A validating webhook for ConfigMap creates in `namespace` that nothing serves: the
    API server answers every such create 500 (failurePolicy Fail) until it is deleted."""
    name = f"unreachable-{namespace}"
    config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "unreachable.e2e.cloning.dev",
                "clientConfig": {"url": "https://127.0.0.1:1/validate"},
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["configmaps"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 2,
            }
        ],
    }
    admin("apply", "-f", "-", stdin=json.dumps(config))
    try:
        yield name
    finally:
        admin("delete", "validatingwebhookconfiguration", name, "--ignore-not-found", check=False)


def test_a_transient_error_is_retried_with_backoff_until_it_passes(
    kubectl: Kubectl, admin: Kubectl, operator: OperatorProcess
) -> None:
    """A 500 (here: an admission webhook nobody serves) is retried after 1 s, then 2, 4, 8
    (jittered), and the clone goes on once the API server accepts the create."""
    seed(kubectl)
    namespace = kubectl.namespace or ""
    with unreachable_webhook(admin, namespace):
        kubectl.apply(clone_object("patient", "seed", name="later"))
        wait_for(
            "a first retry",
            lambda: any("; retry 1 in" in ln for ln in lines_about(operator, namespace, "patient")),
            timeout=30,
        )
        time.sleep(8)
        lines = lines_about(operator, namespace, "patient")
        retries = [line for line in lines if "; retry" in line]
        # 0.5-1 s, then 1-2, 2-4, 4-8: at most five tries in these ~9 s, not one a second.
        assert 2 <= len(retries) <= 5, retries
        assert all("POST configmaps: 500" in line for line in retries), retries
        st = kubectl.get("cloneobject", "patient")["status"]
        assert st["state"] == "InProgress", st  # transient: not a failure
    st = finished(kubectl, "patient", timeout=60)
    assert st["state"] == "Created", st
    assert kubectl.get("configmap", "later")["data"] == {"k": "v"}
