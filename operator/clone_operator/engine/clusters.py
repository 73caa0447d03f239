"""The cluster provisioning engine: one engine behind both front doors
(CloningOperation, and CloneObject of a StatefulSet).

Gathers what the builders need from the API, creates the target's objects
idempotently, and either hands the finished target over (drops the owner
references, so it outlives the request) or removes what it created.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from clone_operator.builders import clusters as cluster_builders
from clone_operator.builders import provenance
from clone_operator.builders.provenance import Owner
from clone_operator.k8s.api import JSON, Conflict, Kube, NotFound
from clone_operator.reconcile import operations as cluster_decide
from clone_operator.reconcile import regions

# The kinds a target cluster is made of, in deletion order.
CLUSTER_KINDS = [("apps/v1", "StatefulSet"), ("v1", "Service"), ("v1", "PersistentVolumeClaim")]


class SourceNotFound(Exception):
    pass


class TargetExists(Exception):
    """An object with the target's name exists and is not ours: never overwritten."""


async def load_source(kube: Kube, namespace: str, name: str) -> tuple[JSON, JSON | None]:
    """The source StatefulSet and its governing Service (None when it has none)."""
    source = await kube.get("apps/v1", "StatefulSet", namespace, name)
    if source is None:
        raise SourceNotFound(f"source cluster {namespace}/{name} (a StatefulSet) does not exist")
    service_name = source["spec"].get("serviceName")
    service = await kube.get("v1", "Service", namespace, service_name) if service_name else None
    return source, service


async def source_region(kube: Kube, source: JSON, node_regions: Mapping[str, str]) -> str | None:
    """The region most of the source's pods run in, from their nodes' labels."""
    labels = (source["spec"].get("selector") or {}).get("matchLabels") or {}
    if not labels:
        return None
    selector = ",".join(f"{k}={v}" for k, v in labels.items())
    pods = await kube.list("v1", "Pod", source["metadata"]["namespace"], label_selector=selector)
    return regions.majority_region(
        node_regions.get((p.get("spec") or {}).get("nodeName") or "") for p in pods
    )


async def source_pvc_sizes(kube: Kube, plan: cluster_builders.ClusterPlan) -> dict[str, str]:
    """Capacity (or request) of each source PVC the target clones, by name."""
    sizes: dict[str, str] = {}
    for name in cluster_builders.source_pvc_names(plan):
        pvc = await kube.get("v1", "PersistentVolumeClaim", plan.namespace, name)
        if pvc is None:
            continue
        capacity = (pvc.get("status") or {}).get("capacity") or {}
        request = ((pvc["spec"].get("resources") or {}).get("requests")) or {}
        size = capacity.get("storage") or request.get("storage")
        if size:
            sizes[name] = str(size)
    return sizes


async def stuck_pods(
    kube: Kube, owner: Owner, namespace: str, waited: float, grace: int
) -> tuple[str | None, float]:
    """Why the clone's pods cannot start, once it waited past the grace period; and
    how long until the next look. Before the grace period no pod can have been stuck
    that long, so a clone that gets ready promptly costs no request here."""
    if waited < grace:
        return None, grace - waited + 0.5
    pods = await kube.list("v1", "Pod", namespace, label_selector=f"{owner.uid_label}={owner.uid}")
    message = cluster_decide.unschedulable_message(pods, datetime.now(UTC), grace)
    return message, max(1.0, grace / 4)


async def ensure(kube: Kube, objects: list[JSON], owner: Owner) -> list[JSON]:
    """Create each object, or adopt it if we created it before; never touch others."""
    out = []
    for obj in objects:
        try:
            out.append(await kube.create(obj))
        except Conflict:
            meta = obj["metadata"]
            existing = await kube.get(
                obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"]
            )
            if existing is None:  # deleted in between: try once more next round
                raise
            if not provenance.created_by(existing, owner):
                raise TargetExists(
                    f"{obj['kind']} {meta.get('namespace')}/{meta['name']} already exists and was "
                    "not created by this operation; it is left untouched"
                ) from None
            out.append(existing)
    return out


async def owned(kube: Kube, owner: Owner, namespace: str) -> list[JSON]:
    """Every cluster object this owner created, found by its provenance label."""
    selector = f"{owner.uid_label}={owner.uid}"
    found: list[JSON] = []
    for api_version, kind in CLUSTER_KINDS:
        for item in await kube.list(api_version, kind, namespace, label_selector=selector):
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
            found.append(item)
    return found


async def remove(kube: Kube, owner: Owner, namespace: str) -> int:
    """Delete what this owner created (uid preconditions: only those very objects)."""
    count = 0
    for obj in await owned(kube, owner, namespace):
        if provenance.created_by(obj, owner):
            count += await kube.delete(obj, uid=obj["metadata"]["uid"])
    return count


async def hand_over(kube: Kube, owner: Owner, namespace: str) -> None:
    """Drop the owner's references so the finished clone outlives its request."""
    for obj in await owned(kube, owner, namespace):
        for _attempt in range(5):
            refs = obj["metadata"].get("ownerReferences") or []
            kept = provenance.owner_references_without(obj, owner.uid)
            if len(kept) == len(refs):
                break
            patch: dict[str, Any] = {
                "metadata": {
                    "resourceVersion": obj["metadata"]["resourceVersion"],
                    "ownerReferences": kept or None,
                }
            }
            try:
                await kube.merge_patch(obj, patch)
                break
            except Conflict:
                fresh = await kube.get(
                    obj["apiVersion"], obj["kind"], namespace, obj["metadata"]["name"]
                )
                if fresh is None:
                    break
                fresh.setdefault("apiVersion", obj["apiVersion"])
                fresh.setdefault("kind", obj["kind"])
                obj = fresh
            except NotFound:
                break
            await asyncio.sleep(0)
