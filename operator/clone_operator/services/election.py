"""Leader election: of all replicas, exactly one runs engines and notification workers.

Every replica serves the admission webhook and its probes; only the holder of
the Lease acts. The decisions (reconcile/leadership.py) are client-go's; this
module only reads and writes the Lease and calls back when leadership starts or
ends. Writes of the engine are fenced by `may_act`, asked by the API client
before every write, so a leader that was paused or cut off past its renew
deadline never writes again, even before it has noticed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from clone_operator.k8s.api import JSON, ApiError, Conflict, Kube, NotFound, path
from clone_operator.reconcile import leadership
from clone_operator.reconcile.leadership import Record, Seen, Take, Timing, Wait

LEASE_API = "coordination.k8s.io/v1"

Callback = Callable[[JSON], Awaitable[None]]
"""Called with the Lease body when this replica starts or stops leading."""


def identity() -> str:
    """Unique per process, readable per pod: `<hostname>_<random>` as client-go does."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


@dataclass
class Elector:
    kube: Kube
    namespace: str
    name: str
    on_lead: Callback
    on_lose: Callback
    log: logging.Logger
    me: str = field(default_factory=identity)
    timing: Timing = field(default_factory=Timing)
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], float] = time.monotonic
    leading: bool = False
    holder: str | None = None
    """Who leads, as last seen (this replica's identity when it leads)."""
    renew_started: float | None = None
    observed: Seen | None = None
    lease: JSON | None = None

    def may_act(self) -> bool:
        return leadership.may_act(self.leading, self.renew_started, self.clock(), self.timing)

    async def run(self) -> None:
        """Try to acquire, then renew, forever; step down at the renew deadline."""
        while True:
            started = self.clock()
            if await self.try_acquire_or_renew():
                self.renew_started = started
                if not self.leading:
                    self.leading = True
                    self.log.info(
                        "leading: %s holds Lease %s/%s", self.me, self.namespace, self.name
                    )
                    await self.call(self.on_lead)
            if self.leading and not self.may_act():
                self.leading = False
                self.log.warning(
                    "stopped leading: the Lease %s/%s was not renewed within %.0f s",
                    self.namespace,
                    self.name,
                    self.timing.renew_deadline,
                )
                await self.call(self.on_lose)
            delay = self.timing.retry_period if self.leading else self.timing.next_try(self.rng)
            await asyncio.sleep(delay)

    async def call(self, callback: Callback) -> None:
        """A callback's failure is logged; the election itself must go on."""
        try:
            await callback(self.lease or {})
        except Exception:
            self.log.exception("leader election callback %s failed", callback)

    async def try_acquire_or_renew(self) -> bool:
        try:
            lease = await self.read()
            now = self.clock()
            current = Record.of(lease)
            self.observed = leadership.seen(current, self.observed, now)
            decision = leadership.decide(
                current, self.observed, self.me, now, datetime.now(UTC), self.timing
            )
            if isinstance(decision, Wait):
                if decision.holder != self.holder:
                    self.log.info("%s leads; this replica (%s) stands by", decision.holder, self.me)
                self.holder = decision.holder
                return False
            self.lease = await self.write(lease, decision)
        except Conflict:
            return False  # another candidate wrote first: read again next time
        except (TimeoutError, ApiError, OSError) as e:
            self.log.warning("leader election: %s", e)
            return False
        self.holder = self.me
        self.observed = Seen(decision.record, self.clock())
        return True

    async def read(self) -> JSON | None:
        url = path(LEASE_API, "Lease", self.namespace, self.name)
        try:
            return await self.kube.call("GET", url, fenced=False)
        except NotFound:
            return None

    async def write(self, lease: JSON | None, decision: Take) -> JSON:
        body: JSON = {
            "apiVersion": LEASE_API,
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": decision.record.spec(),
        }
        if lease is None:
            url = path(LEASE_API, "Lease", self.namespace)
            return await self.kube.call("POST", url, body=body, fenced=False)
        # A replace on the read resourceVersion: a concurrent writer makes it a Conflict.
        body["metadata"]["resourceVersion"] = lease["metadata"]["resourceVersion"]
        url = path(LEASE_API, "Lease", self.namespace, self.name)
        return await self.kube.call("PUT", url, body=body, fenced=False)

    async def release(self) -> None:
        """On shutdown: hand the Lease back so that another replica leads at once."""
        if not self.leading or self.lease is None:
            return
        self.leading = False
        current = Record.of(self.lease)
        if current is None or current.holder != self.me:
            return
        body = dict(self.lease, spec=leadership.released(current).spec())
        url = path(LEASE_API, "Lease", self.namespace, self.name)
        try:
            await self.kube.call("PUT", url, body=body, fenced=False)
            self.log.info("released Lease %s/%s", self.namespace, self.name)
        except ApiError as e:  # it expires by itself
            self.log.warning("could not release Lease %s/%s: %s", self.namespace, self.name, e)
