"""Engine steps against an in-memory API: the one timeout rule of every clone that
waits (a PVC to bind, a cluster to get ready), and a CloningOperation end to end."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from clone_operator.api.common import rfc3339
from clone_operator.engine import objects, operations
from clone_operator.engine.loop import ObjectLog
from tests.unit import factories
from tests.unit.fakes import FakeKube, context

NS = factories.NAMESPACE
LOG = ObjectLog(logging.getLogger("test"), {"namespace": NS, "name": "test"})


def ago(seconds: float) -> str:
    return rfc3339(datetime.now(UTC) - timedelta(seconds=seconds))


def clone_object(kube: FakeKube, kind: str, source: str, started_at: str) -> dict[str, Any]:
    """A CloneObject the engine has moved InProgress at `started_at`."""
    return kube.put(
        {
            "apiVersion": "cloning.dev/v1alpha1",
            "kind": "CloneObject",
            "metadata": {"name": "copy", "namespace": NS, "generation": 1},
            "spec": {"source": {"kind": kind, "name": source}, "options": {"name": "dst"}},
            "status": {"state": "InProgress", "startedAt": started_at, "updatedAt": started_at},
        }
    )


def source_pvc(kube: FakeKube) -> None:
    kube.put(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": NS},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
            "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}},
        }
    )


def stored(kube: FakeKube, api_version: str, kind: str, name: str) -> dict[str, Any]:
    return kube.objects[(api_version, kind, NS, name)]


async def clone_step(kube: FakeKube, body: dict[str, Any], **settings: Any) -> float | None:
    ctx, _ = context(kube, **settings)
    return await objects.clone(ctx, objects.CloneObject.parse(body), LOG)


async def test_a_pvc_clone_that_never_binds_fails_after_the_object_timeout() -> None:
    kube = FakeKube()
    source_pvc(kube)
    body = clone_object(kube, "PersistentVolumeClaim", "data", started_at=ago(31))
    await clone_step(kube, body, object_timeout_seconds=30)
    status = stored(kube, "cloning.dev/v1alpha1", "CloneObject", "copy")["status"]
    assert status["state"] == "Failed"
    assert status["conditions"][0]["reason"] == "Timeout"
    assert status["errorMessages"] == [f"PersistentVolumeClaim {NS}/dst was not bound within 30 s"]


async def test_a_pvc_clone_waits_for_binding_until_its_timeout() -> None:
    kube = FakeKube()
    source_pvc(kube)
    body = clone_object(kube, "PersistentVolumeClaim", "data", started_at=ago(28))
    wait = await clone_step(kube, body, object_timeout_seconds=30)
    assert wait is not None
    assert 0 < wait <= 2.5  # woken at the deadline at the latest
    assert stored(kube, "cloning.dev/v1alpha1", "CloneObject", "copy")["status"]["state"] == (
        "InProgress"
    )
    assert stored(kube, "v1", "PersistentVolumeClaim", "dst")["spec"]["dataSource"]["name"] == (
        "data"
    )


async def test_a_bound_pvc_clone_is_created_and_handed_over() -> None:
    kube = FakeKube()
    source_pvc(kube)
    body = clone_object(kube, "PersistentVolumeClaim", "data", started_at=ago(1))
    await clone_step(kube, body)
    pvc = stored(kube, "v1", "PersistentVolumeClaim", "dst")
    assert pvc["metadata"]["ownerReferences"]
    kube.put({**pvc, "status": {"phase": "Bound"}})
    await clone_step(kube, stored(kube, "cloning.dev/v1alpha1", "CloneObject", "copy"))
    assert stored(kube, "cloning.dev/v1alpha1", "CloneObject", "copy")["status"]["state"] == (
        "Created"
    )
    assert not stored(kube, "v1", "PersistentVolumeClaim", "dst")["metadata"].get("ownerReferences")


async def test_a_cluster_clone_times_out_from_its_start_whatever_progress_it_wrote() -> None:
    kube = FakeKube()
    kube.put(factories.source_statefulset(replicas=1, claims=()))
    kube.put(factories.source_service())
    body = clone_object(kube, "StatefulSet", "search", started_at=ago(10))
    await clone_step(kube, body, object_timeout_seconds=30)  # creates the target
    sts = stored(kube, "apps/v1", "StatefulSet", "dst")
    kube.put(
        {
            **sts,
            "status": {"observedGeneration": sts["metadata"].get("generation"), "readyReplicas": 0},
        }
    )
    await clone_step(kube, stored(kube, "cloning.dev/v1alpha1", "CloneObject", "copy"))
    status = stored(kube, "cloning.dev/v1alpha1", "CloneObject", "copy")["status"]
    assert status["conditions"][0]["message"] == "cluster dst: 0/1 replicas ready"
    late = {**status, "startedAt": ago(31), "updatedAt": ago(0)}  # progress moved updatedAt
    body = kube.put({**stored(kube, "cloning.dev/v1alpha1", "CloneObject", "copy"), "status": late})
    await clone_step(kube, body, object_timeout_seconds=30)
    status = stored(kube, "cloning.dev/v1alpha1", "CloneObject", "copy")["status"]
    assert (status["state"], status["conditions"][0]["reason"]) == ("Failed", "Timeout")


async def test_a_cloning_operation_resolves_builds_and_records_its_server_version() -> None:
    kube = FakeKube()
    kube.put(factories.source_statefulset(replicas=1, claims=()))
    kube.put(factories.source_service())
    kube.put(
        {
            "apiVersion": "cloning.dev/v1alpha1",
            "kind": "CloningOperation",
            "metadata": {"name": "op", "namespace": NS, "generation": 1},
            "spec": {"sourceCluster": "search", "serverVersion": "28.0", "targetName": "tgt"},
        }
    )
    ctx, events = context(kube)

    async def step() -> dict[str, Any]:
        body = stored(kube, "cloning.dev/v1alpha1", "CloningOperation", "op")
        op = operations.Operation.parse(body)
        step = operations.STEPS[operations.operation_rules.next_step(op.status.phase, False)]
        await step(ctx, op, LOG)
        return dict(stored(kube, "cloning.dev/v1alpha1", "CloningOperation", "op")["status"])

    status = await step()  # admit: lock, a free slot, start at once
    assert (status["phase"], status["serverVersion"], status["ready"]) == (
        "InProgress",
        "28.0",
        "0/1",
    )
    await step()  # provision: the target is created
    sts = stored(kube, "apps/v1", "StatefulSet", "tgt")
    assert sts["spec"]["template"]["spec"]["containers"][0]["image"] == "typesense/typesense:28.0"
    kube.put(
        {
            **sts,
            "status": {"observedGeneration": sts["metadata"].get("generation"), "readyReplicas": 1},
        }
    )
    status = await step()
    assert (status["phase"], status["ready"]) == ("Succeeded", "1/1")
    assert [reason for reason, _, _ in events.posted] == ["Started", "Provisioning", "TargetReady"]
    assert ctx.slots.taken == set()
