"""Fair InProgress slots, end to end: every whole-cluster clone holds one whichever kind
asked for it, a namespace holds at most its share, and an operation asking a longer
timeout than the administrator allows fails at once."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.harness import DEFAULT_OPERATOR_ENV, OperatorProcess
from tests.e2e.kube import Kubectl, make_unplaceable, ready_replicas, wait_for
from tests.e2e.manifests import statefulset

pytestmark = pytest.mark.e2e

FAIR = {
    **DEFAULT_OPERATOR_ENV,
    "CLONE_OPERATOR_MAX_IN_PROGRESS": "2",
    "CLONE_OPERATOR_MAX_IN_PROGRESS_PER_NAMESPACE": "1",
    "CLONE_OPERATOR_MAX_TIMEOUT_SECONDS": "1800",  # the CRD's default timeoutSeconds
    # Clones whose pods cannot be scheduled hold their slots for the whole test.
    "CLONE_OPERATOR_UNSCHEDULABLE_GRACE_SECONDS": "600",
}


def stuck_source(kubectl: Kubectl, name: str) -> None:
    """A ready source cluster whose clones can never be scheduled."""
    kubectl.apply(statefulset(name, replicas=1))
    wait_for(f"source {name} ready", lambda: ready_replicas(kubectl, name) == 1, timeout=90)
    make_unplaceable(kubectl, name)


def operation(name: str, source: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "cloning.dev/v1alpha1",
        "kind": "CloningOperation",
        "metadata": {"name": name},
        "spec": {"sourceCluster": source, **spec},
    }


def cluster_clone(name: str, source: str) -> dict[str, Any]:
    return {
        "apiVersion": "cloning.dev/v1alpha1",
        "kind": "CloneObject",
        "metadata": {"name": name},
        "spec": {"source": {"kind": "StatefulSet", "name": source}},
    }


def phase(kubectl: Kubectl, name: str, wanted: str, reason: str | None = None) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        st = ((kubectl.get("cloningoperation", name) or {}).get("status")) or {}
        return st if st.get("phase") == wanted and reason in (None, st.get("reason")) else None

    return wait_for(f"{name} {wanted} {reason or ''}", reached, timeout=60)


def clone_state(kubectl: Kubectl, name: str, wanted: str, ready_reason: str | None = None) -> Any:
    def reached() -> dict[str, Any] | None:
        st = ((kubectl.get("cloneobject", name) or {}).get("status")) or {}
        ready = next((c for c in st.get("conditions", []) if c["type"] == "Ready"), {})
        if st.get("state") == wanted and ready_reason in (None, ready.get("reason")):
            return ready or st
        return None

    return wait_for(f"{name} {wanted} {ready_reason or ''}", reached, timeout=60)


def test_slots_are_shared_by_both_kinds_and_fairly_across_namespaces(
    admin: Kubectl, namespace: str, other_namespace: str, operator: OperatorProcess
) -> None:
    operator.ensure(FAIR)
    a, b = admin.in_namespace(namespace), admin.in_namespace(other_namespace)
    for kubectl, names in ((a, ("s1", "s2")), (b, ("t1", "t2", "t3"))):
        for name in names:
            stuck_source(kubectl, name)

    # Namespace a takes a slot; its second operation waits although one is free.
    a.apply(operation("a1", "s1"))
    phase(a, "a1", "InProgress")
    a.apply(operation("a2", "s2"))
    st = phase(a, "a2", "Pending", "WaitingForSlot")
    assert f"namespace {namespace} holds 1 of the 2 already, its share" in st["message"]

    # The free slot goes to namespace b, to a CloneObject of a StatefulSet...
    b.apply(cluster_clone("b1", "t1"))
    clone_state(b, "b1", "InProgress")
    # ...which holds it as an operation would: the next one waits for the global limit,
    b.apply(operation("b2", "t2"))
    st = phase(b, "b2", "Pending", "WaitingForSlot")
    assert "all 2 are taken by clones InProgress" in st["message"]
    # and so does the next cluster CloneObject (younger: creation times count in seconds).
    time.sleep(1.1)
    b.apply(cluster_clone("b3", "t3"))
    ready = clone_state(b, "b3", "Pending", "WaitingForSlot")
    assert ready["status"] == "False"
    assert "waiting for a slot" in ready["message"]
    b3_uid = b.get("cloneobject", "b3")["metadata"]["uid"]
    assert b.items("statefulsets", "-l", f"cloning.dev/clone-object-uid={b3_uid}") == []

    # b1 goes: its slot goes to b2 (a2 is older, but namespace a holds its share).
    b("delete", "cloneobject", "b1", "--wait=true", "--timeout=30s")
    phase(b, "b2", "InProgress")
    clone_state(b, "b3", "Pending", "WaitingForSlot")
    assert a.get("cloningoperation", "a2")["status"]["phase"] == "Pending"


def test_an_operation_asking_more_than_the_maximum_timeout_fails_at_once(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    operator.ensure(FAIR)
    stuck_source(kubectl, "slow")
    kubectl.apply(operation("patient", "slow", timeoutSeconds=3600))
    st = phase(kubectl, "patient", "Failed", "TimeoutTooLong")
    assert "spec.timeoutSeconds: 3600 is more" in st["message"]
    assert "at most 1800" in st["message"]
    assert "targetCluster" not in st
    assert kubectl.get("lease", "cloning-lock-slow") is None  # refused before the lock
