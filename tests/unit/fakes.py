"""An in-memory stand-in for the API server, enough for one engine step at a time.

It keeps objects by (apiVersion, kind, namespace, name), assigns uids and
resourceVersions, and answers as the real client does: AlreadyExists and stale
resourceVersions are `Conflict`, a missing object on PATCH or DELETE is `NotFound`.
No controller runs: nothing becomes Bound or ready unless a test says so.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from clone_operator.builders.objects import merge_patch
from clone_operator.engine.context import Context
from clone_operator.engine.metrics import Metrics
from clone_operator.k8s.api import JSON, Conflict, NotFound
from clone_operator.settings import Settings

Key = tuple[str, str, str | None, str]


@dataclass
class FakeKube:
    objects: dict[Key, JSON] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    versions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @staticmethod
    def key(obj: JSON) -> Key:
        meta = obj["metadata"]
        return (obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])

    def put(self, obj: JSON) -> JSON:
        """Store an object as a test arranges it (uid and resourceVersion filled in)."""
        stored = copy.deepcopy(obj)
        meta = stored["metadata"]
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", "2024-01-01T00:00:00Z")
        meta["resourceVersion"] = str(next(self.versions))
        self.objects[self.key(stored)] = stored
        return copy.deepcopy(stored)

    async def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> JSON | None:
        self.requests["GET"] += 1
        found = self.objects.get((api_version, kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[JSON]:
        self.requests["GET"] += 1
        wanted = dict(p.split("=", 1) for p in (label_selector or "").split(",") if p)
        return [
            copy.deepcopy(o)
            for (v, k, ns, _), o in self.objects.items()
            if (v, k) == (api_version, kind)
            and namespace in (None, ns)
            and all((o["metadata"].get("labels") or {}).get(a) == b for a, b in wanted.items())
        ]

    async def create(self, obj: JSON) -> JSON:
        self.requests["POST"] += 1
        if self.key(obj) in self.objects:
            raise Conflict(409, "AlreadyExists", f"{obj['metadata']['name']} already exists")
        return self.put(obj)

    async def merge_patch(self, obj: JSON, patch: JSON, subresource: str | None = None) -> JSON:
        self.requests["PATCH"] += 1
        stored = self.objects.get(self.key(obj))
        if stored is None:
            raise NotFound(404, "NotFound", "not found")
        expected = (patch.get("metadata") or {}).get("resourceVersion")
        if expected is not None and expected != stored["metadata"]["resourceVersion"]:
            raise Conflict(409, "Conflict", "the object has been modified")
        body = {k: v for k, v in patch.items() if k != "metadata"}
        meta = {k: v for k, v in (patch.get("metadata") or {}).items() if k != "resourceVersion"}
        updated = merge_patch(stored, {**body, "metadata": meta})
        return self.put(updated)

    async def delete(
        self, obj: JSON, *, uid: str | None = None, resource_version: str | None = None
    ) -> bool:
        self.requests["DELETE"] += 1
        return self.objects.pop(self.key(obj), None) is not None


@dataclass
class Events:
    """The Events the engine posted: (reason, message, warning)."""

    posted: list[tuple[str, str, bool]] = field(default_factory=list)

    def __call__(self, body: JSON, reason: str, message: str, warning: bool) -> None:
        self.posted.append((str(reason), message, warning))


def context(kube: FakeKube, **settings: Any) -> tuple[Context, Events]:
    events = Events()
    ctx = Context(
        kube=kube,  # type: ignore[arg-type]
        settings=Settings(**settings),
        emit=events,
        metrics=Metrics(lambda: kube.requests),
    )
    return ctx, events
