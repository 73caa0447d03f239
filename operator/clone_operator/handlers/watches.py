"""Watches of the objects the engine waits on: they only wake the owner's engine.

All handlers are async: kopf runs sync handlers in a thread pool, and an
operator that needs no threads should not pay for them (memory arenas, switches).
"""

from __future__ import annotations

from typing import Any

import kopf

from clone_operator.builders.provenance import (
    CLONE_OBJECT_UID,
    CLUSTER,
    MANAGED_BY,
    OPERATION_UID,
    OPERATOR_NAME,
)
from clone_operator.settings import REGION_LABEL

OWNER_LABELS = (OPERATION_UID, CLONE_OBJECT_UID)
OURS = f"{MANAGED_BY}={OPERATOR_NAME}"
"""What everything the operator creates is labelled with (builders.provenance)."""


@kopf.on.startup()
async def watch_only_ours(settings: kopf.OperatorSettings, **_: Any) -> None:
    """StatefulSets, PVCs and pods are watched with a server-side label selector: the
    API server sends only what the operator created, not every source cluster in the
    namespaces (kopf would otherwise take in and drop each of them; at 1,000 sources that
    is a burst of 2,000 objects and about 25 MiB of peak RSS). `_ours` still picks the
    owner."""
    settings.watching.label_selectors["apps", "statefulsets"] = OURS
    settings.watching.label_selectors["", "persistentvolumeclaims"] = OURS
    # A clone's pods keep the source's labels (`managed-by` among them), plus the name
    # of the clone they belong to: selected by that key.
    settings.watching.label_selectors["", "pods"] = CLUSTER


def _owner_uid(labels: kopf.Labels) -> str | None:
    for key in OWNER_LABELS:
        if key in labels:
            return str(labels[key])
    return None


def _ours(labels: kopf.Labels, **_: Any) -> bool:
    return _owner_uid(labels) is not None


@kopf.on.event("apps", "v1", "statefulsets", when=_ours)
async def statefulset_changed(
    event: kopf.RawEvent, labels: kopf.Labels, memo: kopf.Memo, **_: Any
) -> None:
    """Keep the latest body of each clone's StatefulSet, so the engine needs no GET."""
    uid = _owner_uid(labels)
    if uid:
        deleted = event["type"] == "DELETED"
        memo.ctx.target_changed(uid, None if deleted else dict(event["object"]))


@kopf.on.event("", "v1", "persistentvolumeclaims", when=_ours)
async def pvc_changed(labels: kopf.Labels, memo: kopf.Memo, **_: Any) -> None:
    """A cloned volume got bound (or not): the owner's engine looks again."""
    uid = _owner_uid(labels)
    if uid:
        memo.ctx.wakeups.poke(uid)


@kopf.on.event("", "v1", "pods", when=_ours)
async def pod_changed(
    event: kopf.RawEvent, name: str, labels: kopf.Labels, memo: kopf.Memo, **_: Any
) -> None:
    """A clone's pod was scheduled, refused or deleted: the owner's engine knows without
    listing them (a refused pod fails the clone after the grace period)."""
    uid = _owner_uid(labels)
    if uid:
        deleted = event["type"] == "DELETED"
        memo.ctx.pod_changed(uid, name, None if deleted else event["object"])


@kopf.on.event("", "v1", "nodes")
async def node_changed(
    event: kopf.RawEvent, name: str, labels: kopf.Labels, memo: kopf.Memo, **_: Any
) -> None:
    """Keep the node → region table the region checks use."""
    gone = event["type"] == "DELETED" or REGION_LABEL not in labels
    memo.ctx.node_changed(name, None if gone else str(labels[REGION_LABEL]))
