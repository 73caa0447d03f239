"""In-process coordination of one operator instance: wake-ups from watch events,
the InProgress slots, the engine tasks, and the bodies that spare a GET.

Pure bookkeeping (no API calls); the Context owns one of each."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from clone_operator.k8s.api import NotLeading
from clone_operator.reconcile import slots
from clone_operator.services.retries import Backoff


@dataclass
class Wakeups:
    """One event per running engine: watch handlers poke, the object's engine waits.

    Waiting is how the engine follows progress: it never sleeps for a fixed time
    except as the deadline of the wait. Level-triggered, so no change is missed:
    the engine registers before its first read, and clears its event right before
    each read from the API server (what that read returns covers every poke so far);
    a poke that lands while it works leaves the event set, so its next wait returns
    at once. Pokes for objects no engine follows are dropped (nothing grows per
    finished object).
    """

    events: dict[str, asyncio.Event] = field(default_factory=dict)

    def register(self, uid: str) -> None:
        self.events.setdefault(uid, asyncio.Event())

    def registered(self, uid: str) -> bool:
        return uid in self.events

    def poke(self, uid: str) -> None:
        event = self.events.get(uid)
        if event is not None:
            event.set()

    def clear(self, uid: str) -> None:
        """About to read the object anew: every poke so far is covered by that read."""
        event = self.events.get(uid)
        if event is not None:
            event.clear()

    async def wait(self, uid: str, timeout: float) -> bool:  # noqa: ASYNC109 (a deadline, not an I/O timeout)
        """True when poked, False when the deadline passed first."""
        event = self.events.get(uid)
        if event is None:
            event = self.events[uid] = asyncio.Event()
        try:
            await asyncio.wait_for(event.wait(), timeout=max(timeout, 0.0))
        except TimeoutError:
            return False
        return True

    def forget(self, uid: str) -> None:
        self.events.pop(uid, None)


def newer(a: dict[str, Any], b: dict[str, Any]) -> bool | None:
    """Whether body `a` is a later version of the object than `b` (None: cannot tell).

    resourceVersions of one object are compared as KEP-5504 defines them (stable in
    Kubernetes 1.35; kube-apiserver has always made them so): decimal integers without
    leading zeros, the longer the newer, else the lexically greater. A version that is
    not one is never guessed at: the caller reads from the API server instead.
    """
    va = str((a.get("metadata") or {}).get("resourceVersion") or "")
    vb = str((b.get("metadata") or {}).get("resourceVersion") or "")
    if not (_comparable(va) and _comparable(vb)):
        return None
    return (len(va), va) > (len(vb), vb)


def _comparable(version: str) -> bool:
    return version.isdecimal() and version.isascii() and not version.startswith("0")


def lean(body: dict[str, Any]) -> dict[str, Any]:
    """The body without managedFields (never used by a decision): what is kept in memory."""
    meta = body.get("metadata") or {}
    if "managedFields" not in meta:
        return body
    return {**body, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


@dataclass
class Fresh:
    """Bodies that spare a GET of a resource an engine drives.

    * `bodies`: the next read, used at most once (`take`): what our own write (or the
      read after a refused write) returned, or what the watch brought to a task being
      started; dropped whenever the engine waits.
    * `newest`: the newest version of the object known here, whichever brought it: a
      watch event, our write's response, the notification worker's, a GET. Every change
      of the object comes as a watch event that pokes the engine, so after a wake-up
      it is as new as a GET. Versions are compared (`newer`), so an event that arrives
      late, or one that kopf folded into a later one, never makes it older.

    So after a wait the engine reads `latest()`, and a GET only when nothing is known
    (the first read of a task not started by an event, a deadline of the safety net,
    a write the API server refused). A body that is stale because a change's event is
    still on its way is harmless: that event pokes the engine again, and every write is
    guarded by the resourceVersion its decision was made on.
    """

    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    newest: dict[str, dict[str, Any]] = field(default_factory=dict)

    def written(self, uid: str, body: dict[str, Any]) -> None:
        """What our write returned (or what a read after a refused write found): the
        next read uses it."""
        self.bodies[uid] = lean(body)
        self.known(uid, body)

    def known(self, uid: str, body: dict[str, Any]) -> None:
        """A version of the object seen here (an event, a write's response, a read)."""
        current = self.newest.get(uid)
        if current is None:
            self.newest[uid] = lean(body)
            return
        later = newer(body, current)
        if later is None:
            self.newest.pop(uid, None)  # versions that cannot be compared: read instead
        elif later:
            self.newest[uid] = lean(body)

    def offer(self, uid: str, body: dict[str, Any]) -> None:
        """A watched body for a task being started, kept unless a newer one of ours is there."""
        self.bodies.setdefault(uid, lean(body))

    def take(self, uid: str) -> dict[str, Any] | None:
        return self.bodies.pop(uid, None)

    def latest(self, uid: str) -> dict[str, Any] | None:
        """The newest body known here; None: read from the API server."""
        return self.newest.get(uid)

    def drop(self, uid: str) -> None:
        """The engine waits: something else will change, so the one-shot body goes."""
        self.bodies.pop(uid, None)

    def distrust(self, uid: str) -> None:
        """Read from the API server next: a deadline of the safety net passed (against a
        watch that stopped telling), the object is gone, or a write was refused."""
        self.newest.pop(uid, None)

    def forget(self, uid: str) -> None:
        self.bodies.pop(uid, None)
        self.newest.pop(uid, None)


@dataclass
class Slots:
    """The limit of clones InProgress, cluster-wide and per namespace, handed out oldest
    first (the rules: reconcile.slots).

    A slot is held by every whole-cluster clone, whichever front door asked for it: a
    CloningOperation, or a CloneObject of a StatefulSet. The operator is the only writer
    of phases and only the leader acts (a new leader takes the slots of every clone
    already InProgress before anything new starts: engine.lifecycle), so an in-memory
    count seeded from the API is exact. No namespace holds more than `per_namespace`
    (`Settings.namespace_share`): a namespace whose clones never get ready leaves the
    other slots to the others.
    """

    limit: int
    per_namespace: int | None = None
    """At most this many slots per namespace; None: `limit`."""
    on_free: Callable[[str], None] = lambda uid: None
    taken: dict[str, str] = field(default_factory=dict)  # uid → namespace
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)
    """uid → (creationTimestamp, namespace)"""

    @property
    def share(self) -> int:
        return min(self.limit, self.per_namespace or self.limit)

    def occupy(self, uid: str, namespace: str) -> None:
        """Count a clone already InProgress (seen at startup or on resume), even beyond
        the limits: a slot is never taken back."""
        self.waiting.pop(uid, None)
        self.taken[uid] = namespace

    def try_take(self, uid: str, created: str, namespace: str) -> bool:
        if uid in self.taken:
            return True
        self.waiting[uid] = (created, namespace)
        if uid not in slots.admitted(self.waiting, self.taken, self.limit, self.share):
            return False
        self.occupy(uid, namespace)
        return True

    def why_waiting(self, namespace: str) -> str:
        """Why a waiter of `namespace` has no slot yet, for its status."""
        return slots.why_waiting(self.taken, namespace, self.limit, self.share)

    def release(self, uid: str) -> None:
        self.waiting.pop(uid, None)
        if self.taken.pop(uid, None) is not None:
            for waiter in list(self.waiting):
                self.on_free(waiter)


@dataclass
class Runners:
    """One engine task per resource, started from watch events.

    Not kopf daemons: those need a finalizer on every object (two more writes
    each, and conflicts with our guarded status writes) and block deletion while
    the operator is down. A task ends when its object is finalized or gone. A step's
    error is dealt with inside the loop (engine.loop.recover); one that escapes even
    that (its bookkeeping) starts the task again after a backoff (1 s, doubling up to
    5 min), never in a tight loop.
    """

    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def running(self, uid: str) -> bool:
        task = self.tasks.get(uid)
        return task is not None and not task.done()

    def ensure(
        self, uid: str, run: Callable[[], Coroutine[Any, Any, None]], log: logging.Logger
    ) -> None:
        task = self.tasks.get(uid)
        if task is not None and not task.done():
            return
        self.tasks[uid] = asyncio.get_running_loop().create_task(
            self._supervise(uid, run, log), name=uid
        )

    async def _supervise(
        self, uid: str, run: Callable[[], Coroutine[Any, Any, None]], log: logging.Logger
    ) -> None:
        backoff = Backoff()
        try:
            while True:
                started = time.monotonic()
                try:
                    await run()
                    return
                except asyncio.CancelledError:
                    raise
                except NotLeading:
                    log.info("engine for %s stops: this replica no longer leads", uid)
                    return
                except Exception:
                    if time.monotonic() - started > backoff.cap:
                        backoff.reset()  # it ran well for a while: a new failure
                    delay = backoff.next()
                    log.exception("engine for %s failed; it starts again in %.1f s", uid, delay)
                    await asyncio.sleep(delay)
        finally:
            if self.tasks.get(uid) is asyncio.current_task():
                del self.tasks[uid]

    async def stop_all(self) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
