"""In-process coordination of one operator instance: wake-ups from watch events,
the InProgress slots, the engine tasks, and the bodies that spare a GET.

Pure bookkeeping (no API calls); the Context owns one of each."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from clone_operator.k8s.api import NotLeading


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


def _version(body: dict[str, Any]) -> str | None:
    version = (body.get("metadata") or {}).get("resourceVersion")
    return str(version) if version is not None else None


def lean(body: dict[str, Any]) -> dict[str, Any]:
    """The body without managedFields (never used by a decision): what is kept in memory."""
    meta = body.get("metadata") or {}
    if "managedFields" not in meta:
        return body
    return {**body, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


@dataclass
class Fresh:
    """Bodies that spare a GET of a resource an engine follows.

    * `bodies`: the next read, used at most once (`take`): what our own write (or the
      read after a refused write) returned, or what the watch brought to a task being
      started; dropped whenever the engine waits.
    * `watched`: the latest body the watch brought of an object whose engine runs,
      used after a wake-up. Every change of the object comes as a watch event that
      pokes the engine, so it is as new as a GET — except right after our own writes:
      until the watch brings the version we wrote (`unseen`), it shows an older state
      and is not used (a GET is). Watch events arrive in order, so every event after
      that version is newer. (kopf may skip an event in a burst: then the engine reads
      with a GET until its next write is seen.)

    A stale body is harmless anyway: every write is guarded by the resourceVersion the
    decision was made on, and a refused write hands the engine what it read instead.
    """

    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    watched: dict[str, dict[str, Any]] = field(default_factory=dict)
    unseen: dict[str, str] = field(default_factory=dict)
    """uid → the resourceVersion of our newest write (or read) the watch has not brought."""

    def written(self, uid: str, body: dict[str, Any]) -> None:
        """A body newer than what the watch may have shown: what our write returned, or
        what a read after a refused write found. The next read uses it."""
        self.bodies[uid] = lean(body)
        self.expect(uid, body)

    def expect(self, uid: str, body: dict[str, Any]) -> None:
        """Someone here wrote (or read) `body`: the watched body is older until the watch
        brings that version."""
        version = _version(body)
        seen = self.watched.get(uid)
        if version is None or (seen is not None and _version(seen) == version):
            self.unseen.pop(uid, None)  # the watch brought it already
            return
        self.unseen[uid] = version
        self.watched.pop(uid, None)

    def offer(self, uid: str, body: dict[str, Any]) -> None:
        """A watched body for a task being started, kept unless a newer one of ours is there."""
        self.bodies.setdefault(uid, lean(body))

    def observed(self, uid: str, body: dict[str, Any]) -> None:
        """A watch event of an object whose engine runs."""
        version = _version(body)
        expected = self.unseen.get(uid)
        if expected is not None:
            if version != expected:
                return  # older than what we wrote
            del self.unseen[uid]
        self.watched[uid] = lean(body)

    def take(self, uid: str) -> dict[str, Any] | None:
        return self.bodies.pop(uid, None)

    def latest(self, uid: str) -> dict[str, Any] | None:
        """The newest watched body, when the watch has caught up with our writes."""
        return None if uid in self.unseen else self.watched.get(uid)

    def drop(self, uid: str) -> None:
        """The engine waits: something else will change, so the one-shot body goes."""
        self.bodies.pop(uid, None)

    def distrust(self, uid: str) -> None:
        """A deadline passed without an event: read from the API server (the safety net
        against a watch that stopped telling)."""
        self.watched.pop(uid, None)

    def forget(self, uid: str) -> None:
        self.bodies.pop(uid, None)
        self.watched.pop(uid, None)
        self.unseen.pop(uid, None)


@dataclass
class Slots:
    """The cluster-wide limit of InProgress operations, handed out oldest first.

    The operator is the only writer of phases and one instance runs (kopf in
    standalone mode; the chart's Deployment has one replica and the Recreate
    strategy), so an in-memory count seeded from the API at startup is exact.
    engine.operations is the only module that takes and releases slots.
    """

    limit: int
    on_free: Callable[[str], None] = lambda uid: None
    taken: set[str] = field(default_factory=set)
    waiting: dict[str, str] = field(default_factory=dict)  # uid → creationTimestamp

    def occupy(self, uid: str) -> None:
        """Count an operation already InProgress (seen at startup or on resume)."""
        self.waiting.pop(uid, None)
        self.taken.add(uid)

    def try_take(self, uid: str, created: str) -> bool:
        if uid in self.taken:
            return True
        self.waiting[uid] = created
        free = self.limit - len(self.taken)
        if free <= 0:
            return False
        first = sorted(self.waiting, key=lambda u: (self.waiting[u], u))[:free]
        if uid not in first:
            return False
        self.occupy(uid)
        return True

    def release(self, uid: str) -> None:
        self.waiting.pop(uid, None)
        if uid in self.taken:
            self.taken.discard(uid)
            for waiter in list(self.waiting):
                self.on_free(waiter)


@dataclass
class Runners:
    """One engine task per resource, started from watch events.

    Not kopf daemons: those need a finalizer on every object (two more writes
    each, and conflicts with our guarded status writes) and block deletion while
    the operator is down. A task ends when its object is finalized or gone; one
    that crashes is started again after a second, as kopf would.
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
        try:
            while True:
                try:
                    await run()
                    return
                except asyncio.CancelledError:
                    raise
                except NotLeading:
                    log.info("engine for %s stops: this replica no longer leads", uid)
                    return
                except Exception:
                    log.exception("engine for %s failed; it starts again in 1 s", uid)
                    await asyncio.sleep(1.0)
        finally:
            if self.tasks.get(uid) is asyncio.current_task():
                del self.tasks[uid]

    async def stop_all(self) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
