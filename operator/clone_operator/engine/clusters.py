"""The cluster engine: one path behind both front doors (CloningOperation, and
CloneObject of a StatefulSet).

`follow_target` is a clone's whole InProgress life, one look at a time: create
the target's objects (adopting only what this owner created before), follow
the StatefulSet until every replica is ready, then hand it over (drop the
owner references, so it outlives the request). It fails on the one timeout
rule (`reconcile.clusters.seconds_left`) or on pods that cannot start. `remove`
deletes what a failed clone left.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from clone_operator.api.cloningoperations import CopyMethod, VolumeStatus
from clone_operator.api.common import VOLUME_GROUP_SNAPSHOT, VOLUME_SNAPSHOT
from clone_operator.builders import clusters as cluster_builders
from clone_operator.builders import identity, provenance
from clone_operator.builders.provenance import Owner
from clone_operator.engine import snapshots, transfers
from clone_operator.engine.context import Context
from clone_operator.engine.loop import IDLE, guarded_patch
from clone_operator.engine.writes import Writes
from clone_operator.k8s.api import JSON, Conflict, Invalid, Kube, NotFound
from clone_operator.reconcile import clusters as cluster_rules
from clone_operator.reconcile import regions, writes
from clone_operator.reconcile import storage as storage_rules
from clone_operator.reconcile.clusters import Readiness
from clone_operator.reconcile.clusters import SourceNotFound as SourceNotFound
from clone_operator.reconcile.clusters import TargetExists as TargetExists
from clone_operator.reconcile.conditions import Reason

# The kinds a target cluster is made of, in deletion order.
CLUSTER_KINDS = [
    ("v1", "Pod"),  # a Transfer's movers (never the StatefulSet's pods: not admitted)
    ("apps/v1", "StatefulSet"),
    ("v1", "Service"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    VOLUME_GROUP_SNAPSHOT,
    VOLUME_SNAPSHOT,
]


@dataclass(frozen=True)
class Target:
    """A target cluster to create and follow until every replica is ready."""

    owner: Owner
    owner_body: JSON
    """The owner as read, for its Events."""
    source_name: str
    name: str
    started_at: str | None
    """When the owner went InProgress: the timeout counts from here."""
    timeout_seconds: float
    plan: Callable[[JSON, JSON | None], cluster_builders.ClusterPlan]
    """What to build, from the source StatefulSet and its Service (None when it has none)."""
    method: CopyMethod = CopyMethod.VOLUME_CLONE
    """The copy method, resolved (never Auto)."""
    snapshot_class: str | None = None
    keep_snapshots: bool = False
    source_region: str | None = None
    """Where the source runs (a Transfer's sending side runs there)."""
    volumes: tuple[VolumeStatus, ...] = ()
    """Per volume status as last written (a Transfer's progress, its stall clock)."""

    @property
    def namespace(self) -> str:
        return self.owner.namespace

    def writes(self, kube: Kube) -> Writes:
        """The funnel for this target: its own objects, named from its name (and the
        snapshots of its copy method)."""
        return Writes(kube, writes.cluster(self.namespace, self.name, self.method.value))


@dataclass(frozen=True)
class Waiting:
    """Not ready yet: look again after `wait` seconds (or at the next watch event)."""

    wait: float
    readiness: Readiness | None = None
    """None right after the target's objects were created."""
    note: str | None = None
    """What the target waits for, when the pods tell (its volumes being provisioned);
    "": the pods were looked at and nothing holds them; None: they were not looked at."""
    volumes: list[VolumeStatus] | None = None
    """Per volume progress of a snapshot copy's cut (None: not looked at)."""
    point_in_time: str | None = None
    bound: dict[str, tuple[str, bool]] | None = None
    """Target volume → (its source PVC, whether it is Bound) (None: not looked at)."""


@dataclass(frozen=True)
class Ready:
    """Every replica is ready and the target is handed over."""

    readiness: Readiness
    uid: str


@dataclass(frozen=True)
class Failed:
    reason: Reason
    message: str


async def follow_target(ctx: Context, target: Target) -> Waiting | Ready | Failed:
    """One look at a clone in progress; what to do next is the caller's to write."""
    owner, name, namespace = target.owner, target.name, target.namespace
    record = ctx.record(owner.uid)
    sts = record.target
    if sts is not None and not is_target(sts, target):
        sts = None  # labelled as this owner's, but not its target: never taken for it
    if sts is None and record.source is None:
        sts = await ctx.kube.get("apps/v1", "StatefulSet", namespace, name)
    # (With its source kept (`InFlight.keep_source`), the owner went InProgress in the
    # step before: nothing of its target exists yet, and a foreign object with its name
    # is found by the dry run.)
    if sts is not None and not provenance.created_by(sts, owner):
        return Failed(
            Reason.TARGET_EXISTS,
            f"StatefulSet {namespace}/{name} already exists and was not created by this "
            f"{owner.kind}; it is left untouched (choose another name)",
        )
    readiness = None
    if sts is not None:
        readiness = cluster_rules.readiness(sts)
        if readiness.done:
            funnel = target.writes(ctx.kube)
            if target.method.snapshots and not target.keep_snapshots:
                await snapshots.remove(funnel, owner, namespace)  # the restores are independent
            elif target.method.snapshots:
                for kind in (VOLUME_GROUP_SNAPSHOT, VOLUME_SNAPSHOT):
                    for kept in await snapshots.owned(funnel, owner, namespace, kind):
                        await release(funnel, kept, owner)  # they outlive the request
            await hand_over(funnel, owner, namespace, record.parts)
            ctx.metrics.stage_done("ready", target.method.value, target.started_at)
            return Ready(readiness, sts["metadata"]["uid"])
    left = cluster_rules.seconds_left(target.started_at, target.timeout_seconds, datetime.now(UTC))
    if left <= 0:
        waiting = cluster_rules.volumes_message(await pods_of(ctx.kube, owner, namespace))
        return Failed(
            Reason.TIMEOUT,
            f"target cluster {name} was not ready within {target.timeout_seconds:g} s "
            f"({readiness or 0} replicas ready{f'; {waiting}' if waiting else ''})",
        )
    waited = target.timeout_seconds - left
    grace = ctx.settings.unschedulable_grace_seconds
    if sts is None:
        restored: dict[str, str] = {}
        cut: snapshots.Cut | None = None
        if target.method.snapshots:
            looked = await cut_of(ctx, target)
            if isinstance(looked, snapshots.Refused):
                return Failed(Reason.STORAGE_REFUSED, looked.message)
            if isinstance(looked, snapshots.Cutting):
                wait = min(left, looked.wait)
                return Waiting(wait, None, None, looked.volumes, looked.point_in_time)
            cut, restored = looked, looked.snapshots
        volumes = cut.volumes if cut is not None else None
        if target.method.transfers:
            assert cut is not None
            try:
                moved = await transfer_of(ctx, target, cut)
            except cluster_rules.CREATION_ERRORS as e:  # a mover's name taken, an invalid pod
                return Failed(*cluster_rules.creation_failure(e))
            if isinstance(moved, transfers.Stalled):
                return Failed(Reason.TRANSFER_STALLED, moved.message)
            if isinstance(moved, transfers.Moving):
                return Waiting(min(left, moved.wait), None, None, moved.volumes, cut.point_in_time)
            volumes = moved.volumes
            if not record.transferred:
                record.transferred = True
                ctx.emit(target.owner_body, Reason.TRANSFERRED, transferred_message(moved), False)
                ctx.metrics.stage_done("transferred", target.method.value, target.started_at)
        if record.pods is None:
            record.pods = {}  # its pods' events are kept from now on
        try:
            async with ctx.building:  # the source and what is built from it: held in here
                source = record.take_source()
                made, rewritten = await create(
                    ctx.kube, target, ctx.settings.cluster_domain, source, restored
                )
        except cluster_rules.CREATION_ERRORS as e:
            return Failed(*cluster_rules.creation_failure(e))
        record.parts = [provenance.part(obj) for obj in made]
        ctx.target_changed(owner.uid, made[-1])  # unless its watch event brought a newer one
        ctx.emit(target.owner_body, Reason.PROVISIONING, f"created target cluster {name}", False)
        for message in identity.audit(rewritten, AUDIT_EVENT_LENGTH, MAX_AUDIT_EVENTS):
            ctx.emit(target.owner_body, Reason.IDENTITY_REWRITTEN, message, False)
        if cut is not None:
            ctx.emit(target.owner_body, Reason.SNAPSHOTS_TAKEN, cut_message(cut), False)
            ctx.metrics.stage_done("cut", target.method.value, target.started_at)
        # Its StatefulSet's watch events wake the engine (and bring it): no read until then.
        wait = max(min(left, cluster_rules.next_pod_check(waited, grace) or 1.0), 0.1)
        if cut is not None:
            return Waiting(wait, None, None, volumes, cut.point_in_time)
        return Waiting(wait)
    next_look, note = cluster_rules.next_pod_check(waited, grace), None
    bound = None
    if target.method.copies_data and not record.volumes_bound:
        refused, bound = await storage_refusal(ctx, target)
        if refused is not None:
            return Failed(Reason.STORAGE_REFUSED, refused)
        next_look = min(next_look or VOLUME_CHECK_SECONDS, VOLUME_CHECK_SECONDS)
    if next_look is None:
        now = datetime.now(UTC)
        pods = await scheduling_of(ctx, owner, namespace)
        if cluster_rules.unschedulable_message(pods, now, grace) is not None:
            # The watch may be behind (a pod deleted while it reconnected): fail on a read.
            pods = await scheduling_of(ctx, owner, namespace, read=True)
            stuck = cluster_rules.unschedulable_message(pods, now, grace)
            if stuck is not None:
                return Failed(Reason.PODS_CANNOT_START, stuck)
        note = cluster_rules.volumes_message(pods) or ""  # progress, bounded by the timeout
        # Pod events wake the engine whenever a pod's scheduling changes; a deadline only
        # for a refused pod's grace, and for the safety net.
        next_look = cluster_rules.stuck_check_in(pods, now, grace) or IDLE
    return Waiting(max(min(left, next_look), 0.1), readiness, note, bound=bound)


VOLUME_CHECK_SECONDS = 10.0
"""How often a target whose volumes are not all bound looks for the storage's refusal."""


async def storage_refusal(
    ctx: Context, target: Target
) -> tuple[str | None, dict[str, tuple[str, bool]]]:
    """The storage's own words if it refused one of the target's volumes (a
    ProvisioningFailed Event that retrying cannot fix), and each volume's source and
    whether it is Bound; remembers when all are bound."""
    owner = target.owner
    pvcs = await ctx.kube.list(
        "v1",
        "PersistentVolumeClaim",
        target.namespace,
        label_selector=f"{owner.uid_label}={owner.uid}",
    )
    bound = {
        p["metadata"]["name"]: (
            str((p["metadata"].get("annotations") or {}).get(provenance.SOURCE) or "").rpartition(
                "/"
            )[2],
            (p.get("status") or {}).get("phase") == "Bound",
        )
        for p in pvcs
    }
    pending = {
        p["metadata"]["name"]: (p.get("spec") or {}).get("storageClassName")
        for p in pvcs
        if not bound[p["metadata"]["name"]][1]
    }
    if pvcs and not pending:
        ctx.record(owner.uid).volumes_bound = True
        ctx.metrics.stage_done("volumes", target.method.value, target.started_at)
        return None, bound
    if not pending:
        return None, bound
    events = await ctx.kube.list(
        "v1",
        "Event",
        target.namespace,
        field_selector=f"involvedObject.kind=PersistentVolumeClaim,reason={storage_rules.PROVISIONING_FAILED}",
    )
    for name, storage_class in pending.items():
        refused = storage_rules.storage_refusal(events, name, storage_class)
        if refused is not None:
            return refused, bound
    return None, bound


def cut_message(cut: snapshots.Cut) -> str:
    names = ", ".join(sorted(cut.snapshots.values()))
    return f"{len(cut.snapshots)} snapshots cut at {cut.point_in_time} and ready: {names}"


async def cut_of(
    ctx: Context, target: Target
) -> snapshots.Cut | snapshots.Cutting | snapshots.Refused:
    """One look at a snapshot copy's cut (the source as kept at pickup, else read)."""
    record = ctx.record(target.owner.uid)
    source = record.take_source() or await load_source(
        ctx.kube, target.namespace, target.source_name
    )
    record.keep_source(*source)  # the target is built from it after the cut
    plan = target.plan(*source)
    return await snapshots.take(
        target.writes(ctx.kube),
        plan,
        target.snapshot_class,
        target.keep_snapshots,
        ctx.settings.snapshot_deadline_seconds,
    )


async def transfer_of(
    ctx: Context, target: Target, cut: snapshots.Cut
) -> transfers.Moving | transfers.Moved | transfers.Stalled:
    """One look at a Transfer's movers (the source as kept by the cut, else read)."""
    record = ctx.record(target.owner.uid)
    source = record.take_source() or await load_source(
        ctx.kube, target.namespace, target.source_name
    )
    record.keep_source(*source)  # the target is built from it once the data is there
    return await transfers.follow(
        ctx,
        target.owner_body,
        target.writes(ctx.kube),
        target.plan(*source),
        cut.snapshots,
        cut.volumes,
        list(target.volumes),
        target.source_region,
    )


def transferred_message(moved: transfers.Moved) -> str:
    total = sum(v.bytes_total or v.bytes_done or 0 for v in moved.volumes)
    matched = sum(v.matched_bytes or 0 for v in moved.volumes)
    attempts = max((v.transfer_attempts or 1 for v in moved.volumes), default=1)
    resumed = f"; {matched} bytes were on the target already (resumed)" if matched else ""
    return (
        f"{len(moved.volumes)} volumes transferred, {total} bytes, in at most {attempts} "
        f"attempts{resumed}; their movers, keys and temporary volumes are removed"
    )


async def scheduling_of(
    ctx: Context, owner: Owner, namespace: str, read: bool = False
) -> list[JSON]:
    """The target's pods as far as scheduling goes: what the pod watch kept since the
    target was created here, else (after a restart, or `read`) one LIST."""
    record = ctx.record(owner.uid)
    pods = record.pods
    if pods is None or read:
        listed = await pods_of(ctx.kube, owner, namespace)
        pods = {p["metadata"]["name"]: cluster_rules.scheduling(p) for p in listed}
        record.pods = pods
    return list(pods.values())


async def pods_of(kube: Kube, owner: Owner, namespace: str) -> list[JSON]:
    """The target's pods (they carry the owner's provenance label)."""
    return await kube.list("v1", "Pod", namespace, label_selector=f"{owner.uid_label}={owner.uid}")


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


async def complete(
    kube: Kube, plan: cluster_builders.ClusterPlan, cluster_domain: str
) -> cluster_builders.ClusterPlan:
    """The plan with what the target is built from besides its source: the source PVCs'
    sizes (and, for a VolumeClone, the zones of their volumes), the ConfigMaps and
    Secrets its template names (read), and the cluster's DNS domain (the operator
    setting `clusterDomain`). The one place a plan gets them."""
    sizes: dict[str, str] = {}
    places: list[storage_rules.Place] = []
    for name in cluster_builders.source_pvc_names(plan):
        pvc = await kube.get("v1", "PersistentVolumeClaim", plan.namespace, name)
        if pvc is None:
            continue
        capacity = (pvc.get("status") or {}).get("capacity") or {}
        request = ((pvc["spec"].get("resources") or {}).get("requests")) or {}
        size = capacity.get("storage") or request.get("storage")
        if size:
            sizes[name] = str(size)
        if plan.copy_method is CopyMethod.VOLUME_CLONE:
            places.append(await volume_place(kube, pvc))
    found: dict[tuple[str, str], JSON | None] = {}
    for ref in cluster_builders.config_references(plan.source):
        if (ref.kind, ref.name) not in found:
            found[(ref.kind, ref.name)] = await kube.get("v1", ref.kind, plan.namespace, ref.name)
    zones = frozenset().union(*(p.zones for p in places))
    if not places or not all(p.zones for p in places):
        zones = frozenset()  # a volume of no zone (regional, or untold): not pinned
    return dataclasses.replace(
        plan,
        source_pvc_sizes=sizes,
        source_configs=found,
        cluster_domain=cluster_domain,
        zones=zones,
    )


async def volume_place(kube: Kube, pvc: JSON) -> storage_rules.Place:
    """Where a bound PVC's volume lives: its PersistentVolume's node affinity."""
    volume = (pvc.get("spec") or {}).get("volumeName")
    pv = await kube.get("v1", "PersistentVolume", None, volume) if volume else None
    return storage_rules.pv_place(pv)


async def build(kube: Kube, plan: cluster_builders.ClusterPlan, cluster_domain: str) -> list[JSON]:
    """Every object of the target, from the plan `complete`d. Raises BuildError, or
    SourceReferenced when the guard finds the source still referred to."""
    return cluster_builders.build_cluster(await complete(kube, plan, cluster_domain))


MAX_AUDIT_EVENTS = 5
AUDIT_EVENT_LENGTH = 1024  # what services.events posts of a message


def is_target(sts: JSON, target: Target) -> bool:
    """Whether a StatefulSet labelled as the owner's is its target: by its name and
    namespace too, never by the label alone (anyone may write a label)."""
    meta = sts.get("metadata") or {}
    return (meta.get("name"), meta.get("namespace")) == (target.name, target.namespace)


async def create(
    kube: Kube,
    target: Target,
    cluster_domain: str,
    source: tuple[JSON, JSON | None] | None,
    restored: dict[str, str] | None = None,
) -> tuple[list[JSON], list[identity.Rewrite]]:
    """Build the target from its source (`source`: the StatefulSet and Service as read
    this attempt; None: read them now), and create it (config and volumes first);
    returns what was created or adopted, the StatefulSet last, and what the identity
    rewrite changed. Every object is checked against what admission allowed before any
    is sent; the StatefulSet is first sent as a dry run: if the API server refuses it
    (say, an override makes it invalid), or its name is taken by something else,
    nothing at all is created."""
    statefulset, service = source or await load_source(kube, target.namespace, target.source_name)
    planned = dataclasses.replace(target.plan(statefulset, service), snapshots=restored or {})
    plan = await complete(kube, planned, cluster_domain)
    objects = cluster_builders.build_cluster(plan)
    funnel = target.writes(kube)
    funnel.check(*objects)
    try:
        await funnel.create(objects[-1], dry_run=True)
    except Conflict:  # it exists: ours from before (adopted below), or someone else's
        meta = objects[-1]["metadata"]
        existing = await kube.get("apps/v1", "StatefulSet", meta["namespace"], meta["name"])
        if existing is None:
            raise  # deleted in between: the next round looks again
        if not provenance.created_by(existing, target.owner):
            raise TargetExists(
                f"StatefulSet {meta['namespace']}/{meta['name']} already exists and was not "
                f"created by this {target.owner.kind}; it is left untouched (choose another name)"
            ) from None
    return await ensure(funnel, objects, target.owner), cluster_builders.rewrites(plan, objects)


async def ensure(funnel: Writes, objects: list[JSON], owner: Owner) -> list[JSON]:
    """Create each object, or adopt it if we created it before; never touch others."""
    funnel.check(*objects)
    out = []
    for obj in objects:
        try:
            out.append(await funnel.create(obj))
        except Conflict:
            meta = obj["metadata"]
            existing = await funnel.get(
                obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"]
            )
            if existing is None:  # deleted in between: try once more next round
                raise
            if not provenance.created_by(existing, owner):
                raise TargetExists(
                    f"{obj['kind']} {meta.get('namespace')}/{meta['name']} already exists and was "
                    f"not created by this {owner.kind}; it is left untouched"
                ) from None
            out.append(existing)
    return out


async def owned(funnel: Writes, owner: Owner, namespace: str) -> list[JSON]:
    """Every object this owner created: its provenance label *and* a name and kind that
    admission allowed it (a label alone is anyone's to write)."""
    selector = f"{owner.uid_label}={owner.uid}"
    found: list[JSON] = []
    kinds = {(a.api_version, a.kind) for a in funnel.admitted if a.namespace == namespace}
    for api_version, kind in CLUSTER_KINDS:
        if (api_version, kind) not in kinds:
            continue
        try:
            items = await funnel.kube.list(api_version, kind, namespace, label_selector=selector)
        except NotFound:  # a snapshot API that is not served: nothing of it to find
            continue
        for item in items:
            obj = {"apiVersion": api_version, "kind": kind, **item}
            if writes.refusal(funnel.admitted, obj) is None:
                found.append(obj)
    return found


async def remove(funnel: Writes, owner: Owner, namespace: str) -> int:
    """Delete what this owner created (uid preconditions: only those very objects)."""
    count = 0
    for obj in await owned(funnel, owner, namespace):
        if provenance.created_by(obj, owner):
            count += await funnel.delete(obj, uid=obj["metadata"]["uid"])
    return count


async def hand_over(
    funnel: Writes, owner: Owner, namespace: str, parts: list[JSON] | None = None
) -> None:
    """Drop the owner's references so the finished clone outlives its request.

    `parts`: what this process created (`provenance.part`: kind, name, the owner
    references it was created with), handed over without a read: one RFC 6902 patch each
    that removes the references only if they are still exactly those. Anything else
    (after a restart, or references someone changed) is found by its provenance label
    and released with a guarded read-modify-write."""
    for created in parts or []:
        patch = provenance.hand_over_patch(created, owner.uid)
        if patch is None:
            continue
        try:
            await funnel.json_patch(created, patch)
        except NotFound:
            continue
        except (Invalid, Conflict):  # its references changed: read it, drop ours alone
            api_version, kind, meta = created["apiVersion"], created["kind"], created["metadata"]
            found = await funnel.get(api_version, kind, namespace, meta["name"])
            if found is not None:
                await release(funnel, {"apiVersion": api_version, "kind": kind, **found}, owner)
    if parts is None:
        for obj in await owned(funnel, owner, namespace):
            await release(funnel, obj, owner)


async def release(funnel: Writes, obj: JSON, owner: Owner) -> None:
    """Drop `owner`'s reference from one object (guarded; rebased on a conflict)."""

    def without_owner(current: JSON) -> JSON | None:
        refs = current["metadata"].get("ownerReferences") or []
        kept = provenance.owner_references_without(current, owner.uid)
        if len(kept) == len(refs):
            return None
        return {"metadata": {"ownerReferences": kept or None}}

    await guarded_patch(funnel, obj, without_owner, lambda _fresh: True, attempts=5)
