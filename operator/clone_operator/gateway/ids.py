"""The Bridge's integer ids: one counter per namespace, handed out atomically.

Choice: a ConfigMap per client namespace, `clone-object-ids.<namespace>`, in the
gateway's own namespace, with `data.next` the next free id. A block of ids is
taken by a replace under the read `resourceVersion` precondition: of two
concurrent writers (two requests, two replicas) the API server accepts one and
answers the other 409, which reads again and retries. Within one process an
asyncio lock per namespace queues the writers, so they do not collide at all;
only replicas can. The counters live where the gateway's own ServiceAccount
may write (a Role on ConfigMaps in its namespace), not in the users' namespaces,
and the gateway holds no rights on the custom resources themselves. A counter
that is missing (first use, or deleted) starts after the highest id recorded on
the namespace's CloneObjects, so ids are never reused while their objects exist.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from clone_operator.kube.client import Client
from clone_operator.kube.errors import ApiError

COUNTER_PREFIX = "clone-object-ids."
MAX_ATTEMPTS = 50


@dataclass
class Allocator:
    """Hands out ids; `client` is the gateway's own identity, `namespace` where counters live."""

    client: Callable[[], Client]
    namespace: str
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def take(
        self, namespace: str, count: int, highest: Callable[[], Awaitable[int]]
    ) -> list[int]:
        """`count` fresh ids for `namespace`; `highest` gives the largest id in use there."""
        lock = self.locks.setdefault(namespace, asyncio.Lock())
        async with lock:
            for _ in range(MAX_ATTEMPTS):
                first = await self._try_take(namespace, count, highest)
                if first is not None:
                    return list(range(first, first + count))
        raise ApiError(409, "Conflict", "could not allocate ids: too much contention; retry")

    async def _try_take(
        self, namespace: str, count: int, highest: Callable[[], Awaitable[int]]
    ) -> int | None:
        client, name = self.client(), COUNTER_PREFIX + namespace
        counter = await client.get("ConfigMap", self.namespace, name)
        try:
            if counter is None:
                first = await highest() + 1
                await client.create(
                    "ConfigMap",
                    self.namespace,
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {
                            "name": name,
                            "labels": {"app.kubernetes.io/component": "api-ids"},
                        },
                        "data": {"namespace": namespace, "next": str(first + count)},
                    },
                )
                return first
            data = counter.get("data") or {}
            first = int(data.get("next", "1"))
            counter["data"] = {**data, "next": str(first + count)}
            await client.replace("ConfigMap", self.namespace, counter)  # rv precondition
            return first
        except ApiError as e:
            if e.status == 409:  # AlreadyExists, or resourceVersion moved on: read again
                return None
            raise
