"""The loop every resource's engine runs in: read, decide one step, act, wait.

Shared by both front doors, with the one way they record a transition (`moved`)
and the one `fail`. A step returns how long to wait for a watch event
(0: go on at once; None: done). After a write of our own, the body it returned
is the next read; after a wait, the newest body known (services.runtime.Fresh: the
watch's, or our last write's), else a GET; after a deadline of the safety net
(every `SAFETY_NET` seconds at most), a GET.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from clone_operator.api.common import now_rfc3339
from clone_operator.builders.provenance import Owner
from clone_operator.engine import failures
from clone_operator.engine.context import Context, InFlight
from clone_operator.k8s.api import (
    JSON,
    Conflict,
    Invalid,
    NamespaceTerminating,
    NotFound,
    NotLeading,
)
from clone_operator.reconcile.conditions import Reason, To, Transition
from clone_operator.services.retries import Backoff

AGAIN = 0.0  # loop at once: the state just changed
IDLE = 300.0  # nothing to do until a watch event wakes us
SAFETY_NET = 120.0
"""A deadline reads everything anew (the watches may have missed something) when the
last such read is at least this old; the planned looks in between (at pods) do not."""

Spec = TypeVar("Spec", bound=BaseModel)
Status = TypeVar("Status", bound=BaseModel)


class Wire(Protocol):
    def wire(self) -> JSON: ...


@dataclass(frozen=True)
class Resource(Generic[Spec, Status, To]):
    """One read of a custom resource, its spec and status parsed; each front door says
    where it stands (`stage`), what failing moves it to (`failed`) and the status a
    plain transition writes (`after`)."""

    body: JSON
    spec: Spec
    status: Status

    @property
    def stage(self) -> To | None:
        """Its phase (CloningOperation) or state (CloneObject); None: new."""
        raise NotImplementedError

    @property
    def failed(self) -> To:
        raise NotImplementedError

    def after(self, transition: Transition[To], now: str) -> Wire:
        """The status `transition` writes, nothing else recorded with it."""
        raise NotImplementedError

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"]["namespace"])

    @property
    def owner(self) -> Owner:
        """The resource as the owner of what the engine creates for it."""
        m = self.body["metadata"]
        return Owner(kind=self.body["kind"], name=m["name"], namespace=m["namespace"], uid=m["uid"])

    @property
    def generation(self) -> int | None:
        generation = self.body["metadata"].get("generation")
        return int(generation) if generation is not None else None

    @property
    def created(self) -> str | None:
        created = self.body["metadata"].get("creationTimestamp")
        return str(created) if created else None


def parsed(body: JSON, spec: type[Spec], status: type[Status]) -> tuple[JSON, Spec, Status]:
    """The fields of a Resource: the body, its spec and its status as models."""
    return (
        body,
        spec.model_validate(body.get("spec") or {}),
        status.model_validate(body.get("status") or {}),
    )


class ObjectLog(logging.LoggerAdapter[logging.Logger]):
    """Every line names the object: `namespace/name: message` (and JSON fields)."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = dict(self.extra or {})
        # `name` is a LogRecord attribute already: the object's go under other keys.
        kwargs.setdefault("extra", {}).update(
            {"object_namespace": extra["namespace"], "object_name": extra["name"]}
        )
        return f"{extra['namespace']}/{extra['name']}: {msg}", kwargs


StepFunction = Callable[[JSON, ObjectLog], Awaitable[float | None]]
GiveUp = Callable[[JSON, Reason, str, ObjectLog], Awaitable[bool]]
"""Fail the resource (as read) for good with a reason and a message; False when it
cannot be (it is terminal already, or the write was refused): then it is retried."""


async def drive(
    ctx: Context,
    api_version: str,
    kind: str,
    namespace: str,
    name: str,
    uid: str,
    step: StepFunction,
    logger: logging.Logger,
    give_up: GiveUp | None = None,
) -> None:
    """Run `step` until the object is finalized or gone.

    An error the step did not handle (engine.failures) is retried with backoff when
    transient; when permanent, `give_up` fails the resource, once: never a crash loop.
    """
    log = ObjectLog(logger, {"namespace": namespace, "name": name})
    ctx.wakeups.register(uid)  # before the first read: no poke from now on is lost
    record = ctx.in_flight[uid] = InFlight()
    waited = False
    trusted_since = time.monotonic()
    backoff = Backoff()
    try:
        while True:
            body: JSON | None = None
            try:
                body = ctx.fresh.take(uid)
                if body is None:
                    ctx.wakeups.clear(uid)  # this read covers every change poked so far
                    # Only after a wait: a step that goes on at once always reads the API.
                    known = ctx.fresh.latest(uid) if waited else None
                    body = known or await ctx.kube.get(api_version, kind, namespace, name)
                    if known is None and body is not None:
                        ctx.fresh.known(uid, body)
                waited = False
                if body is None or body["metadata"]["uid"] != uid:
                    return  # deleted: the garbage collector removes what it owned
                if (body.get("status") or {}).get("finalized"):
                    return
                ctx.metrics.track(kind, uid, body.get("status") or {})
                wait = await step(body, log)
            except NamespaceTerminating:
                log.info("its namespace is being deleted, and it with it: nothing more to do")
                return
            except NotLeading:
                raise  # the runner stops: another replica leads
            except Exception as e:  # classified: retried, or the resource fails
                wait = await recover(ctx, kind, uid, body, e, backoff, log, give_up)
                waited = False
            else:
                backoff.reset()
            if wait is None:
                return
            if wait > AGAIN:
                ctx.fresh.drop(uid)  # something else will change: read it anew
                woken = await ctx.wakeups.wait(uid, wait)
                waited = True
                if not woken and time.monotonic() - trusted_since >= SAFETY_NET:
                    # A deadline, not an event: the safety net reads everything anew,
                    # the target too (a watch that restarted from a fresh list never
                    # reports what was deleted meanwhile).
                    record.target = None
                    ctx.fresh.distrust(uid)
                    trusted_since = time.monotonic()
    finally:
        ctx.metrics.forget(kind, uid)
        ctx.wakeups.forget(uid)
        ctx.fresh.forget(uid)
        if ctx.in_flight.get(uid) is record:
            del ctx.in_flight[uid]


async def moved(
    ctx: Context,
    resource: Resource[Any, Any, To],
    transition: Transition[To],
    status: Wire,
    log: ObjectLog,
) -> bool:
    """Write the status a transition decided (guarded: False when the resource changed
    since it was read), then tell it: the log, an Event (a Warning for a failure), and,
    when it is terminal, the slot it frees and the metrics. Both front doors move so."""
    if not await write_status(ctx, resource.body, status.wire()):
        return False
    to, reason, message = transition.to, transition.reason, transition.message
    log.info("%s → %s (%s): %s", resource.stage or "new", to, reason, message)
    ctx.emit(resource.body, reason, message, transition.warning)
    if to.terminal:
        ctx.slots.release(resource.owner.uid)
        ctx.metrics.finished(str(resource.body["kind"]), to.value, resource.created)
    return True


async def fail(
    ctx: Context, resource: Resource[Any, Any, To], log: ObjectLog, reason: Reason, message: str
) -> float:
    """Move the resource to Failed with the reason and message users read; then go on at
    once (its next step finishes it). The one `fail` of both front doors."""
    await give_up(ctx, resource, log, reason, message)
    return AGAIN


async def give_up(
    ctx: Context, resource: Resource[Any, Any, To], log: ObjectLog, reason: Reason, message: str
) -> bool:
    """Move the resource to Failed; False when it cannot be: it is terminal already, or
    the write was refused (then `recover` retries)."""
    stage = resource.stage
    if stage is not None and stage.terminal:
        return False
    transition = Transition(resource.failed, reason, message)
    return await moved(ctx, resource, transition, resource.after(transition, now_rfc3339()), log)


class Patcher(Protocol):
    """What a guarded patch needs: a Kube, or the write funnel (engine.writes)."""

    async def get(
        self, api_version: str, kind: str, namespace: str | None, name: str, /
    ) -> JSON | None: ...

    async def merge_patch(
        self, obj: JSON, patch: JSON, /, subresource: str | None = None
    ) -> JSON: ...


async def recover(
    ctx: Context,
    kind: str,
    uid: str,
    body: JSON | None,
    error: Exception,
    backoff: Backoff,
    log: ObjectLog,
    give_up: GiveUp | None,
) -> float:
    """After an error a step did not handle: fail the resource when it is permanent (then
    go on at once: its next step finishes it), else sleep out a backoff and read anew."""
    verdict = failures.classify(error, kind)
    if isinstance(verdict, failures.Permanent):
        ctx.metrics.reconcile_error(kind)
        if verdict.internal and backoff.attempts == 0:
            # A bug: its traceback once (the e2e suite fails on it, as it should).
            log.error("internal error: %s", failures.describe(error), exc_info=error)
        else:  # the input's fault, not the operator's: no traceback but at debug level
            log.warning("cannot go on: %s", failures.describe(error))
            log.debug("the error", exc_info=error)
        if body is not None and give_up is not None:
            try:
                if await give_up(body, verdict.reason, verdict.message, log):
                    return AGAIN
            except NotLeading:
                raise
            except Exception as e:  # the write itself failed: back off below
                log.warning("could not record the failure: %s", failures.describe(e))
    delay = backoff.next()
    label = verdict.reason if isinstance(verdict, failures.Transient) else "permanent"
    ctx.metrics.retried(kind, label)
    log.warning("%s; retry %d in %.1f s", failures.describe(error), backoff.attempts, delay)
    ctx.fresh.drop(uid)
    ctx.fresh.distrust(uid)  # what was known may be what failed: read it anew
    await asyncio.sleep(delay)
    return AGAIN


async def guarded_patch(
    kube: Patcher,
    body: JSON,
    change: Callable[[JSON], JSON | None],
    still_holds: Callable[[JSON], bool],
    subresource: str | None = None,
    attempts: int = 3,
) -> JSON | None:
    """Merge-patch `change(current)` onto the resourceVersion `current` was read at.

    On a conflict the object is read again and, while `still_holds(fresh)`, the
    change is rebased onto it. Returns what the API server returned; None when
    the object is gone, the change no longer holds, or `change` has nothing to do.
    """
    current = body
    for _attempt in range(attempts):
        patch = change(current)
        if patch is None:
            return None
        meta = current["metadata"]
        patch = {
            **patch,
            "metadata": {**patch.get("metadata", {}), "resourceVersion": meta["resourceVersion"]},
        }
        try:
            return await kube.merge_patch(current, patch, subresource=subresource)
        except NotFound:
            return None
        except Conflict:
            fresh = await kube.get(
                body["apiVersion"], body["kind"], meta.get("namespace"), meta["name"]
            )
            if fresh is None or not still_holds(fresh):
                return None
            current = {"apiVersion": body["apiVersion"], "kind": body["kind"], **fresh}
    return None


async def write_status(ctx: Context, body: JSON, status: JSON) -> bool:
    """Guarded status write: False when spec or status changed since `body` was read."""
    return await written_status(ctx, body, status) is not None


async def written_status(ctx: Context, body: JSON, status: JSON) -> JSON | None:
    """`write_status`, returning the body written (None when refused): for a step that
    records its state before each of several actions (engine.hooks).

    The guard is the resourceVersion the decision was made on. When only metadata
    moved meanwhile (a label, an annotation), the decision still holds: the write
    is rebased on the fresh resourceVersion instead of redoing the whole step.
    """
    uid = body["metadata"]["uid"]
    ctx.fresh.drop(uid)
    read: list[JSON] = []

    def still_holds(fresh: JSON) -> bool:
        read.append(fresh)
        return decided_on_same_state(body, fresh)

    try:
        written = await guarded_patch(
            ctx.kube, body, lambda _current: {"status": status}, still_holds, subresource="status"
        )
    except Invalid as e:
        # The CRD's rules refused the move (e.g. a cancel landed first): read again.
        logging.getLogger(__name__).info("status write refused: %s", e.message)
        ctx.fresh.distrust(uid)
        return None
    if written is None:
        if read and read[-1]["metadata"]["uid"] == uid:
            ctx.fresh.written(uid, read[-1])  # the newest there is: the next loop's body
        return None
    ctx.fresh.written(uid, written)
    return {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"), **written}


def decided_on_same_state(read: JSON, fresh: JSON) -> bool:
    """Whether what a decision depends on (the object, its spec, its status) is unchanged."""
    return (
        read["metadata"]["uid"] == fresh["metadata"]["uid"]
        and read.get("spec") == fresh.get("spec")
        and read.get("status") == fresh.get("status")
        and not fresh["metadata"].get("deletionTimestamp")
    )
