"""What every engine step needs: one operator instance's clients and run-time
state, kept in kopf's memo (never in globals; tests can make two)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from clone_operator.engine.events import Poster
from clone_operator.engine.leadership import Elector
from clone_operator.engine.metrics import Metrics
from clone_operator.engine.runtime import Fresh, Runners, Slots, Wakeups, newer
from clone_operator.engine.storage import Lists
from clone_operator.k8s.api import Kube
from clone_operator.reconcile import clusters as cluster_rules
from clone_operator.reconcile.regions import RegionTable
from clone_operator.settings import Settings

# (object body, reason, message, warning?) → posts a Kubernetes Event.
EventSink = Callable[[dict[str, Any], str, str, bool], None]

BUILDS_AT_ONCE = 16
"""Clones that build and create their target at once (`Context.building`): each holds
its parsed source and what is built from it (about 15 KB a StatefulSet) over several
requests, so a burst of 1,000 builds them 16 at a time while the rest wait holding
only their compact source. 16 keeps the engine's connections busy (engine.clusters.
create sends its requests one after the other)."""


@dataclass
class Context:
    kube: Kube
    settings: Settings
    emit: EventSink
    metrics: Metrics
    wakeups: Wakeups = field(default_factory=Wakeups)
    slots: Slots = field(init=False)
    """The InProgress limits; taken and released only by the front doors' engines (every
    whole-cluster clone holds one) and counted anew by engine.lifecycle."""
    runners: Runners = field(default_factory=Runners)
    """The engine task of each unfinished resource."""
    fresh: Fresh = field(default_factory=Fresh)
    """Bodies that spare the next GET of a resource."""
    node_regions: dict[str, str] = field(default_factory=dict)
    """Node name → `topology.kubernetes.io/region`, kept current by a node watch."""
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Owner uid → the newest version of its target StatefulSet, as far as following it
    goes (`reconcile.clusters.followed`), from its watch events and the engine's create
    (kept only while the owner's engine runs; it reads the API server otherwise)."""
    pods: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """Owner uid → its target's pods as far as scheduling goes (pod name →
    `reconcile.clusters.scheduling`), kept by a pod watch from when its engine creates
    the target until the engine ends (absent: a LIST fills it when it is needed)."""
    parts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Owner uid → what its engine created here (`builders.provenance.part`): handed over
    without listing them (engine.clusters.hand_over)."""
    sources: dict[str, bytes] = field(default_factory=dict)
    """Owner uid → the source StatefulSet and Service its move to InProgress was decided on,
    until its target is built from them (one read of the source per attempt); kept as
    compact JSON, a sixth of the parsed size (`keep_source`, `take_source`)."""
    building: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(BUILDS_AT_ONCE))
    """Held while a clone builds and creates its target (BUILDS_AT_ONCE)."""
    locks: dict[str, str] = field(default_factory=dict)
    """Operation uid → the uid of the lock Lease it created here: released without a GET."""
    ready_seen: dict[str, float] = field(default_factory=dict)
    volumes_bound: set[str] = field(default_factory=set)
    storage_lists: Lists = field(init=False)
    """StorageClasses and snapshot classes read lately (engine.storage)."""
    """Owners whose target volumes were all seen Bound: no more looks for a refusal."""
    """Owner uid → when (monotonic) a watch event first showed its target ready: the
    start of the ready → done delay (`clone_operator_ready_to_done_seconds`)."""
    deliveries: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    """Operation uid → its running notification delivery worker (engine.notifications)."""
    monitoring: web.AppRunner | None = None
    """The `/metrics` and `/readyz` endpoint, when it is served."""
    ready: bool = False
    """What `/readyz` answers: startup is done and the watches may start."""
    leading: bool = True
    """Whether this replica acts: always without leader election; with it, only while
    it holds the Lease (engine.lifecycle). A replica that does not lead ignores events."""
    events: Poster | None = None
    """Posts what `emit` queues (engine.events)."""
    elector: Elector | None = None
    """The leader election this replica takes part in (None: it acts alone)."""
    election: asyncio.Task[None] | None = None
    trimming: asyncio.Task[None] | None = None
    """Hands freed heap pages back to the OS now and then (engine.memory)."""
    takeover: asyncio.Task[None] | None = None
    """A new leader's rescan of every unfinished resource (engine.lifecycle)."""

    def __post_init__(self) -> None:
        self.reset_slots()
        self.storage_lists = Lists(self.kube)

    def reset_slots(self) -> None:
        """No slot taken: before they are counted from the resources (engine.lifecycle)."""
        self.slots = Slots(
            limit=self.settings.max_in_progress,
            per_namespace=self.settings.namespace_share,
            on_free=self.wakeups.poke,
        )

    def keep_source(
        self, owner_uid: str, source: dict[str, Any], service: dict[str, Any] | None
    ) -> None:
        self.sources[owner_uid] = json.dumps([source, service], separators=(",", ":")).encode()

    def take_source(self, owner_uid: str) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
        kept = self.sources.pop(owner_uid, None)
        if kept is None:
            return None
        source, service = json.loads(kept)
        return source, service

    def regions(self) -> RegionTable:
        """The regions a target may be placed in: the nodes' and the settings' names."""
        return RegionTable(
            node_regions=frozenset(self.node_regions.values()),
            aliases=self.settings.region_aliases,
            allowed=frozenset(self.settings.allowed_regions),
        )

    def follow(
        self,
        event_type: str | None,
        body: dict[str, Any],
        uid: str,
        run: Callable[[], Coroutine[Any, Any, None]],
        log: logging.Logger,
    ) -> None:
        """A watch event of a resource: make sure its engine runs, and wake it.

        A task being started reads the object from the event instead of a GET; a running
        one, after its wake-up, the latest event's (engine.runtime.Fresh).
        """
        if not self.leading:
            return  # the leader acts on it; a new leader rescans every unfinished one
        finalized = bool((body.get("status") or {}).get("finalized"))
        if event_type != "DELETED" and not finalized:
            if not self.runners.running(uid):
                self.fresh.offer(uid, body)
            elif self.wakeups.registered(uid):
                self.fresh.known(uid, body)  # the engine's next read after a wake-up
            self.runners.ensure(uid, run, log)
        else:
            self.fresh.distrust(uid)  # its engine reads what is left (or that it is gone)
        self.wakeups.poke(uid)

    def target_changed(self, owner_uid: str, body: dict[str, Any] | None) -> None:
        """A watch event of a clone's StatefulSet, or the engine's create of it (None:
        deleted): keep the newest for the owner's running engine, and wake it. (Handed-over targets keep their labels: their
        events are dropped, so nothing is kept per finished clone.)"""
        if not self.wakeups.registered(owner_uid):
            return
        known = self.targets.get(owner_uid)
        if body is None:
            self.targets.pop(owner_uid, None)
        elif known is None or newer(body, known) is not False:
            # (An event that arrives after a newer version, e.g. after the create's own
            # response, is older and dropped; versions that cannot be compared: the newest
            # to arrive.)
            self.targets[owner_uid] = cluster_rules.followed(body)
            if cluster_rules.readiness(body).done:
                self.ready_seen.setdefault(owner_uid, time.monotonic())
        self.wakeups.poke(owner_uid)

    def pod_changed(self, owner_uid: str, name: str, body: dict[str, Any] | None) -> None:
        """A watch event of a clone's pod (None: deleted): keep what scheduling says of it
        for the owner's running engine, and wake the engine when that changed."""
        pods = self.pods.get(owner_uid)
        if pods is None:
            return
        slim = None if body is None else cluster_rules.scheduling(body)
        if pods.get(name) == slim:
            return
        if slim is None:
            del pods[name]
        else:
            pods[name] = slim
        self.wakeups.poke(owner_uid)

    def node_changed(self, name: str, region: str | None) -> None:
        """A watch event of a node: its region (None: deleted, or no region label)."""
        if region is None:
            self.node_regions.pop(name, None)
        else:
            self.node_regions[name] = region
