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


@dataclass
class Fresh:
    """Bodies the next read of an object may use instead of a GET: the one our own
    write returned, or the one a watch event brought to a task being started.

    Used at most once (`take`); dropped whenever the engine waits, since something
    else will have changed by then. A stale body is harmless: the guarded status
    write notices and reads anew.
    """

    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)

    def written(self, uid: str, body: dict[str, Any]) -> None:
        """The body our own write returned: the newest there is."""
        self.bodies[uid] = body

    def offer(self, uid: str, body: dict[str, Any]) -> None:
        """A watched body, kept unless a newer one of ours is there."""
        self.bodies.setdefault(uid, body)

    def take(self, uid: str) -> dict[str, Any] | None:
        return self.bodies.pop(uid, None)

    def drop(self, uid: str) -> None:
        self.bodies.pop(uid, None)


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
