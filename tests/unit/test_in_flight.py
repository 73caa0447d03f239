"""One in-flight record per object: made when its engine task starts, dropped when it
ends (engine.loop.drive), and watch events kept in it only meanwhile."""

from __future__ import annotations

import logging
from typing import Any

from clone_operator.engine.context import Context
from clone_operator.engine.loop import ObjectLog, drive
from clone_operator.k8s.api import Kube
from clone_operator.services.metrics import Metrics
from clone_operator.settings import Settings

UID = "0000-owner"
BODY: dict[str, Any] = {"metadata": {"uid": UID, "namespace": "ns", "name": "op"}, "status": {}}


def context() -> Context:
    kube = Kube(api=None)  # type: ignore[arg-type]  # the body is offered: no request
    return Context(kube=kube, settings=Settings(), emit=lambda *_: None, metrics=Metrics(dict))


def ready_target(version: str) -> dict[str, Any]:
    return {
        "metadata": {"uid": "t", "resourceVersion": version, "generation": 1},
        "spec": {"replicas": 1},
        "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": 1,
                   "updatedReplicas": 1, "availableReplicas": 1},
    }  # fmt: skip


async def test_the_record_lives_exactly_as_long_as_the_objects_engine() -> None:
    ctx = context()
    ctx.target_changed(UID, ready_target("1"))  # before its engine runs: nothing kept
    assert ctx.in_flight == {}
    seen: list[tuple[bool, bool, bool]] = []

    async def step(_body: dict[str, Any], _log: ObjectLog) -> float | None:
        record = ctx.in_flight[UID]
        ctx.target_changed(UID, ready_target("2"))
        record.keep_source({"kind": "StatefulSet"}, None)
        record.lock = "lease-uid"
        seen.append(
            (record.target is not None, record.ready_seen is not None, ctx.record(UID) is record)
        )
        return None  # done: the engine ends

    ctx.fresh.offer(UID, BODY)
    await drive(ctx, "cloning.dev/v1alpha1", "CloningOperation", "ns", "op", UID, step,
                logging.getLogger("test.in_flight"))  # fmt: skip
    assert seen == [(True, True, True)]
    assert ctx.in_flight == {}  # target, ready time, source and lock went with it
    ctx.target_changed(UID, ready_target("3"))
    assert ctx.in_flight == {}
    assert ctx.record(UID).lock is None  # a blank record outside the engine


def test_taking_empties_the_field() -> None:
    ctx = context()
    record = ctx.in_flight[UID] = ctx.record(UID)
    record.keep_source({"kind": "StatefulSet", "metadata": {"name": "s"}}, {"kind": "Service"})
    assert record.take_source() == (
        {"kind": "StatefulSet", "metadata": {"name": "s"}},
        {"kind": "Service"},
    )
    assert record.take_source() is None
    record.lock = "l"
    assert (record.take_lock(), record.take_lock()) == ("l", None)
