"""The loop every resource's engine runs in: read, decide one step, act, wait.

Shared by both front doors. A step returns how long to wait for a watch event
(0: go on at once; None: done). After a write of our own, the body it returned
is the next read; after a wait, the object is read anew.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from clone_operator.engine import metrics
from clone_operator.engine.context import Context
from clone_operator.k8s.api import JSON, Conflict, Invalid, NamespaceTerminating

AGAIN = 0.0  # loop at once: the state just changed
IDLE = 300.0  # nothing to do until a watch event wakes us

Step = Callable[[JSON, "ObjectLog"], Awaitable[float | None]]


class ObjectLog(logging.LoggerAdapter[logging.Logger]):
    """Every line names the object: `namespace/name: message` (and JSON fields)."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = dict(self.extra or {})
        # `name` is a LogRecord attribute already: the object's go under other keys.
        kwargs.setdefault("extra", {}).update(
            {"object_namespace": extra["namespace"], "object_name": extra["name"]}
        )
        return f"{extra['namespace']}/{extra['name']}: {msg}", kwargs


async def drive(
    ctx: Context,
    api_version: str,
    kind: str,
    namespace: str,
    name: str,
    uid: str,
    step: Step,
    logger: logging.Logger,
) -> None:
    """Run `step` until the object is finalized or gone."""
    log = ObjectLog(logger, {"namespace": namespace, "name": name})
    try:
        while True:
            body = ctx.fresh.pop(uid, None) or await ctx.kube.get(
                api_version, kind, namespace, name
            )
            if body is None or body["metadata"]["uid"] != uid:
                ctx.slots.release(uid)
                return  # deleted: the garbage collector removes what it owned
            if (body.get("status") or {}).get("finalized"):
                return
            metrics.track(kind, uid, body.get("status") or {})
            try:
                wait = await step(body, log)
            except NamespaceTerminating:
                log.info("its namespace is being deleted, and it with it: nothing more to do")
                return
            except Exception:
                metrics.reconcile_error(kind)  # the task is logged and started again
                raise
            if wait is None:
                return
            if wait > AGAIN:
                ctx.fresh.pop(uid, None)  # something else will change: read it anew
                await ctx.wakeups.wait(uid, wait)
    except asyncio.CancelledError:
        # Deleted, or the operator is stopping: this process no longer runs it.
        ctx.slots.release(uid)
        raise
    finally:
        metrics.forget(kind, uid)
        ctx.wakeups.forget(uid)
        ctx.fresh.pop(uid, None)
        ctx.targets.pop(uid, None)


REBASES = 3


async def write_status(ctx: Context, body: JSON, status: JSON) -> bool:
    """Guarded status write: False when spec or status changed since `body` was read.

    The guard is the resourceVersion the decision was made on. When only metadata
    moved meanwhile (kopf's finalizer, a label), the decision still holds: the write
    is retried on the fresh resourceVersion instead of redoing the whole step.
    """
    uid = body["metadata"]["uid"]
    current = body
    for _attempt in range(REBASES):
        patch = {
            "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
            "status": status,
        }
        try:
            ctx.fresh[uid] = await ctx.kube.merge_patch(body, patch, subresource="status")
            return True
        except Conflict:
            ctx.fresh.pop(uid, None)
            meta = body["metadata"]
            fresh = await ctx.kube.get(
                body["apiVersion"], body["kind"], meta["namespace"], meta["name"]
            )
            if fresh is None or not decided_on_same_state(body, fresh):
                return False
            current = fresh
        except Invalid as e:
            # The CRD's rules refused the move (e.g. a cancel landed first): read again.
            logging.getLogger(__name__).info("status write refused: %s", e.message)
            ctx.fresh.pop(uid, None)
            return False
    return False


def decided_on_same_state(read: JSON, fresh: JSON) -> bool:
    """Whether what a decision depends on (the object, its spec, its status) is unchanged."""
    return (
        read["metadata"]["uid"] == fresh["metadata"]["uid"]
        and read.get("spec") == fresh.get("spec")
        and read.get("status") == fresh.get("status")
        and not fresh["metadata"].get("deletionTimestamp")
    )
