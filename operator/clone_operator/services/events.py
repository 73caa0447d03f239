"""Kubernetes Events about our resources, posted by the operator's own client.

kopf's `kopf.event` only works inside kopf's handler tasks; engine tasks that a
new leader starts from its own rescan are not such tasks. So Events go through
the one API client like every other write: fenced (a replica that no longer
leads posts nothing), and in the background, in order, never delaying a step.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from clone_operator.k8s.api import JSON, ApiError, Kube

log = logging.getLogger("clone_operator.events")
COMPONENT = "clone-operator"
MAX_QUEUED = 1000
"""Events waiting to be posted, at most (as client-go's broadcaster): when the API server
falls behind, later Events are dropped, not kept in memory without bound."""


def event(body: JSON, reason: str, message: str, warning: bool, instance: str) -> JSON:
    """A core/v1 Event about `body` (what `kubectl describe` lists)."""
    meta = body["metadata"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}-", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": body["apiVersion"],
            "kind": body["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
        },
        "reason": str(reason),
        "message": message[:1024],
        "type": "Warning" if warning else "Normal",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": instance,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


@dataclass
class Poster:
    """A queue of Events and the task that posts them."""

    kube: Kube
    instance: str = COMPONENT
    queue: asyncio.Queue[JSON] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    posted: Counter[str] = field(default_factory=Counter)
    """Event requests, kept apart from the engine's own API requests."""
    dropped: int = 0
    """Events not queued because MAX_QUEUED were waiting."""

    def emit(self, body: dict[str, Any], reason: str, message: str, warning: bool) -> None:
        """Queue an Event (never blocks a step); posting starts with the first one."""
        if self.queue.qsize() >= MAX_QUEUED:
            self.dropped += 1
            if self.dropped % MAX_QUEUED == 1:
                log.warning("%d Events queued: %d dropped so far", MAX_QUEUED, self.dropped)
            return
        self.queue.put_nowait(event(body, reason, message, warning, self.instance))
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self.post_all(), name="events")

    async def post_all(self) -> None:
        while True:
            item = await self.queue.get()
            namespace = item["metadata"]["namespace"]
            try:
                await self.kube.call(
                    "POST", f"/api/v1/namespaces/{namespace}/events", body=item, tally=self.posted
                )
            except ApiError as e:
                # A namespace being deleted, or no longer leading: the Event is a courtesy.
                log.info("event %s not posted: %s", item["reason"], e.message)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
