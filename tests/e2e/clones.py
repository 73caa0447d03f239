"""Waiting on CloningOperations and CloneObjects and finding what they made: helpers of
the e2e modules."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.harness import OperatorProcess
from tests.e2e.kube import Kubectl, ready_replicas, wait_for
from tests.e2e.manifests import statefulset

TERMINAL = {"Succeeded", "Failed", "Canceled"}
OBJECT_TERMINAL = {"Created", "Failed"}
OWNED_KINDS = ("statefulsets", "services", "persistentvolumeclaims", "configmaps", "secrets")


def status_of(kubectl: Kubectl, name: str) -> dict[str, Any]:
    op = kubectl.get("cloningoperation", name)
    return dict((op or {}).get("status") or {})


def wait_phase(
    kubectl: Kubectl, name: str, phases: set[str], timeout: float = 90
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        st = status_of(kubectl, name)
        return st if st.get("phase") in phases else None

    return wait_for(f"{name} to reach {sorted(phases)}", reached, timeout=timeout)


def wait_finalized(kubectl: Kubectl, name: str, timeout: float = 90) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        st = status_of(kubectl, name)
        return st if st.get("finalized") else None

    return wait_for(f"{name} to be finalized", done, timeout=timeout)


def owned(kubectl: Kubectl, uid: str) -> dict[str, list[str]]:
    selector = f"cloning.dev/operation-uid={uid}"
    return {
        kind: sorted(o["metadata"]["name"] for o in kubectl.items(kind, "-l", selector))
        for kind in OWNED_KINDS
    }


def uid_of(kubectl: Kubectl, kind: str, name: str) -> str:
    return str(kubectl.get(kind, name)["metadata"]["uid"])


def source_cluster(kubectl: Kubectl, name: str, replicas: int = 3, **kw: Any) -> None:
    kubectl.apply(statefulset(name, replicas=replicas, **kw))
    wait_for(f"source {name} ready", lambda: ready_replicas(kubectl, name) == replicas, timeout=90)


SNAPSHOT_ONLY_CLASS = "clone-test-snapshot-only"
"""The local storage's class whose driver takes snapshots and cannot clone (tests/cluster/storage.py)."""


def snapshot_only_source(admin: Kubectl, kubectl: Kubectl, name: str) -> str:
    """A 2-replica source `name` in us-east-1 on the snapshot-only class, ready; skips the
    test when the local cluster has no CSI storage."""
    if admin("get", "storageclass", SNAPSHOT_ONLY_CLASS, check=False).returncode != 0:
        pytest.skip("the local cluster has no CSI storage (tests/cluster/storage.py)")
    manifests = statefulset(name, replicas=2, region="us-east-1")
    manifests[1]["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] = (
        SNAPSHOT_ONLY_CLASS
    )
    kubectl.apply(manifests)
    wait_for(f"source {name} ready", lambda: ready_replicas(kubectl, name) == 2, timeout=120)
    return name


def kill_repeatedly(operator: OperatorProcess, delays: tuple[float, ...]) -> None:
    """Kill the operator hard (SIGKILL) after each delay, and start it again."""
    for delay in delays:
        time.sleep(delay)
        operator.kill()
        operator.start()


def wait_state(kubectl: Kubectl, name: str, timeout: float = 90) -> dict[str, Any]:
    """A CloneObject's status once it is Created or Failed, and finalized."""

    def done() -> dict[str, Any] | None:
        obj = kubectl.get("cloneobject", name)
        st = (obj or {}).get("status") or {}
        return st if st.get("state") in OBJECT_TERMINAL and st.get("finalized") else None

    return wait_for(f"CloneObject {name} to finish", done, timeout=timeout)
