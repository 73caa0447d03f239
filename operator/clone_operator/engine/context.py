"""What every engine step needs: one operator instance's clients and run-time
state, kept in kopf's memo (never in globals; tests can make two).

It owns the `Context` and the one in-flight record per object (`InFlight`), which
only `engine.loop.drive` makes and drops; watch events (`target_changed`,
`pod_changed`) update a record only while it exists. It must not decide anything
(reconcile/) nor talk to the API server itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from clone_operator.engine.storage import Lists
from clone_operator.k8s.api import Kube
from clone_operator.reconcile import clusters as cluster_rules
from clone_operator.reconcile.regions import RegionTable
from clone_operator.services.election import Elector
from clone_operator.services.events import Poster
from clone_operator.services.metrics import Metrics
from clone_operator.services.runtime import Fresh, Runners, Slots, Wakeups, newer
from clone_operator.settings import Settings

# (object body, reason, message, warning?) → posts a Kubernetes Event.
EventSink = Callable[[dict[str, Any], str, str, bool], None]

BUILDS_AT_ONCE = 16
"""Clones that build and create their target at once (`Context.building`): each holds
its parsed source and what is built from it (about 15 KB a StatefulSet) over several
requests, so a burst of 1,000 builds them 16 at a time while the rest wait holding
only their compact source. 16 keeps the engine's connections busy (engine.clusters.
create sends its requests one after the other)."""


@dataclass(slots=True)
class InFlight:
    """What one object's engine keeps while it runs, to spare reads and writes: one
    record per object, made when its engine task starts and dropped when it ends
    (engine.loop.drive). Nothing in it outlives the task; a new task reads anew."""

    target: dict[str, Any] | None = None
    """The newest version of its target StatefulSet, as far as following it goes
    (`reconcile.clusters.target_summary`), from its watch events and the engine's create."""
    pods: dict[str, dict[str, Any]] | None = None
    """Its target's pods as far as scheduling goes (pod name →
    `reconcile.clusters.scheduling`), kept by a pod watch from when its engine creates
    the target (None: a LIST fills it when it is needed)."""
    parts: list[dict[str, Any]] | None = None
    """What its engine created here (`builders.provenance.part`): handed over without
    listing them (engine.clusters.hand_over)."""
    source: bytes | None = None
    """The source StatefulSet and Service its move to InProgress was decided on, until
    its target is built from them (one read of the source per attempt); kept as compact
    JSON, a sixth of the parsed size (`keep_source`, `take_source`)."""
    lock: str | None = None
    """The uid of the lock Lease it created here: released without a GET."""
    ready_seen: float | None = None
    """When (monotonic) a watch event first showed its target ready: the start of the
    ready → done delay (`clone_operator_ready_to_done_seconds`)."""
    volumes_bound: bool = False
    """Every target volume was seen Bound: no more looks for a storage refusal."""
    transferred: bool = False
    """A Transfer's volumes all arrived (its Event and stage told once per process)."""

    def keep_source(self, source: dict[str, Any], service: dict[str, Any] | None) -> None:
        self.source = json.dumps([source, service], separators=(",", ":")).encode()

    def take_source(self) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
        kept, self.source = self.source, None
        if kept is None:
            return None
        source, service = json.loads(kept)
        return source, service

    def take_lock(self) -> str | None:
        lock, self.lock = self.lock, None
        return lock

    def take_ready_seen(self) -> float | None:
        seen, self.ready_seen = self.ready_seen, None
        return seen


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
    in_flight: dict[str, InFlight] = field(default_factory=dict)
    """Object uid → what its engine keeps while it runs (`InFlight`): made when its
    engine task starts and dropped when it ends (engine.loop.drive), nowhere else."""
    building: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(BUILDS_AT_ONCE))
    """Held while a clone builds and creates its target (BUILDS_AT_ONCE)."""
    storage_lists: Lists = field(init=False)
    """StorageClasses and snapshot classes read lately (engine.storage)."""
    deliveries: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    """Operation uid → its running notification delivery worker (services.delivery)."""
    monitoring: web.AppRunner | None = None
    """The `/metrics` and `/readyz` endpoint, when it is served."""
    ready: bool = False
    """What `/readyz` answers: startup is done and the watches may start."""
    leading: bool = True
    """Whether this replica acts: always without leader election; with it, only while
    it holds the Lease (engine.lifecycle). A replica that does not lead ignores events."""
    events: Poster | None = None
    """Posts what `emit` queues (services.events)."""
    elector: Elector | None = None
    """The leader election this replica takes part in (None: it acts alone)."""
    election: asyncio.Task[None] | None = None
    trimming: asyncio.Task[None] | None = None
    """Hands freed heap pages back to the OS now and then (services.memory)."""
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

    def record(self, uid: str) -> InFlight:
        """What the object's running engine keeps; outside its engine task (never, in
        the engine's own steps) a blank record that nothing keeps."""
        return self.in_flight.get(uid) or InFlight()

    def regions(self) -> RegionTable:
        """The regions a target may be placed in: the nodes' and the settings' names."""
        return RegionTable(
            node_regions=frozenset(self.node_regions.values()),
            aliases=self.settings.region_aliases,
            allowed=frozenset(self.settings.allowed_regions),
        )

    def resource_changed(
        self,
        event_type: str | None,
        body: dict[str, Any],
        uid: str,
        run: Callable[[], Coroutine[Any, Any, None]],
        log: logging.Logger,
    ) -> None:
        """A watch event of a resource: make sure its engine runs, and wake it.

        A task being started reads the object from the event instead of a GET; a running
        one, after its wake-up, the latest event's (services.runtime.Fresh).
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
        record = self.in_flight.get(owner_uid)
        if record is None:
            return
        known = record.target
        if body is None:
            record.target = None
        elif known is None or newer(body, known) is not False:
            # (An event that arrives after a newer version, e.g. after the create's own
            # response, is older and dropped; versions that cannot be compared: the newest
            # to arrive.)
            record.target = cluster_rules.target_summary(body)
            if cluster_rules.readiness(body).done and record.ready_seen is None:
                record.ready_seen = time.monotonic()
        self.wakeups.poke(owner_uid)

    def pod_changed(self, owner_uid: str, name: str, body: dict[str, Any] | None) -> None:
        """A watch event of a clone's pod (None: deleted): keep what scheduling says of it
        for the owner's running engine, and wake the engine when that changed."""
        record = self.in_flight.get(owner_uid)
        pods = None if record is None else record.pods
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
