"""What every engine step needs, kept in kopf's memo (never in globals)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from clone_operator.engine.runtime import Runners, Slots, Wakeups
from clone_operator.k8s.api import Kube
from clone_operator.settings import Settings

# (object body, reason, message, warning?) → posts a Kubernetes Event.
EventSink = Callable[[dict[str, Any], str, str, bool], None]


@dataclass
class Context:
    kube: Kube
    settings: Settings
    slots: Slots
    wakeups: Wakeups
    emit: EventSink
    node_regions: dict[str, str] = field(default_factory=dict)
    """Node name → `topology.kubernetes.io/region`, kept current by a node watch."""
    fresh: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Owner uid → the body our own last write returned: the next step needs no GET."""
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Owner uid → the latest watched body of its target StatefulSet."""
    deliveries: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    runners: Runners = field(default_factory=Runners)
    """The engine task of each unfinished resource."""
    """Operation uid → its running notification delivery worker (engine.notifications)."""

    def follow(
        self,
        event_type: str | None,
        body: dict[str, Any],
        uid: str,
        run: Callable[[], Coroutine[Any, Any, None]],
        log: logging.Logger,
    ) -> None:
        """A watch event of a resource: make sure its engine runs, and wake it.

        A task being started reads the object from the event instead of a GET; if
        it is stale, the guarded status write notices (and rebases or reads anew).
        """
        finalized = bool((body.get("status") or {}).get("finalized"))
        if event_type != "DELETED" and not finalized:
            if not self.runners.running(uid):
                self.fresh.setdefault(uid, body)
            self.runners.ensure(uid, run, log)
        self.wakeups.poke(uid)
