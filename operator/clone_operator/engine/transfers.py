"""A `Transfer` copy: mover pods copy each volume's cut into the target's new volume.

One look at a time, after the cut is ready and before the target's StatefulSet is
made (`engine.clusters.follow_target`). Per source volume k: a temporary PVC
restored from its snapshot (`<target>-mv<k>-cut`, provisioned where the source side
runs: the source's region), the target's empty PVC (the name its StatefulSet will
use), a key Secret and the target side's Service (`<target>-mv<k>`), and the two
pods (`…-source`, pinned to the source's region; `…-target`, pinned to the
target's). Everything goes through the clone's funnel (the admitted-writes table's
Transfer rows) and carries the owner's provenance and owner reference: a deleted
operation takes it all with it.

The state is in the objects, so any leader resumes: the target PVC's annotation
`cloning.dev/transferred` marks a volume done, written before its movers go; a
volume without it has its missing parts made again (a deleted pod is recreated
and resumes: the target volume keeps what arrived). Progress comes from the source
pod's log (`reconcile.transfer`) and goes to status; no new byte for the
operator's `transferStallSeconds` fails the clone (TransferStalled) with the pods'
own state, instead of waiting out its timeout.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clone_operator.api.cloningoperations import VolumeStatus
from clone_operator.api.common import LABEL_PREFIX, now_rfc3339
from clone_operator.builders import clusters as cluster_builders
from clone_operator.builders import mover, provenance
from clone_operator.engine.context import Context
from clone_operator.engine.writes import Writes
from clone_operator.k8s.api import JSON, Conflict, NotFound
from clone_operator.reconcile import transfer as transfer_rules
from clone_operator.reconcile.conditions import Reason
from clone_operator.reconcile.storage import REGION_KEYS

TRANSFERRED = f"{LABEL_PREFIX}transferred"
"""On a target PVC: every byte of its volume arrived (its movers may go)."""

LOOK_SECONDS = 3.0
"""How often a transfer in progress is looked at (its pods, its source's log)."""


@dataclass(frozen=True)
class Moving:
    """Not every volume is on the target yet: look again after `wait`."""

    wait: float
    volumes: list[VolumeStatus]


@dataclass(frozen=True)
class Moved:
    """Every volume is on the target; the movers and temporaries are gone."""

    volumes: list[VolumeStatus]


@dataclass(frozen=True)
class Stalled:
    message: str


@dataclass(frozen=True)
class Volume:
    """One volume's transfer: its names, and what the cluster holds of it."""

    index: int
    source_pvc: str
    target_pvc: str

    def name(self, target: str) -> str:
        return mover.transfer_name(target, self.index)


def placement(region: str | None, source: Mapping[str, Any]) -> mover.Placement:
    """Where one side runs: where the source's pods may run (their node selector,
    required node affinity and tolerations: nodes reserved for the application take
    its movers too), in `region` (any region term of the source replaced, as for the
    target's own pods; None: as the source says)."""
    template = ((source.get("spec") or {}).get("template") or {}).get("spec") or {}
    scheduling = {k: template[k] for k in ("nodeSelector", "affinity") if template.get(k)}
    if region:
        scheduling = cluster_builders.with_region(scheduling, region)
    node_affinity = (scheduling.get("affinity") or {}).get("nodeAffinity") or {}
    return mover.Placement(
        dict(scheduling.get("nodeSelector") or {}),
        tuple(dict(t) for t in template.get("tolerations") or []),
        node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution"),
    )


def identity_of(source: Mapping[str, Any]) -> tuple[int, int, int | None]:
    """(uid, gid, fsGroup) the movers run as: the source pods' own, so that they read
    what the application wrote and the target's files belong to the same ids. A source
    running as root (or naming no user) gets the restricted default, 65532."""
    template = ((source.get("spec") or {}).get("template") or {}).get("spec") or {}
    pod = template.get("securityContext") or {}
    containers = template.get("containers") or [{}]
    container = containers[0].get("securityContext") or {}
    uid = container.get("runAsUser", pod.get("runAsUser"))
    gid = container.get("runAsGroup", pod.get("runAsGroup"))
    fs_group = pod.get("fsGroup")
    uid = int(uid) if uid else mover.DEFAULT_UID
    gid = int(gid) if gid else (int(fs_group) if fs_group else mover.DEFAULT_UID)
    return uid, gid, int(fs_group) if fs_group else None


def plan_of(
    ctx: Context,
    owner: provenance.Owner,
    target: str,
    volume: Volume,
    source: Mapping[str, Any],
    regions: tuple[str | None, str | None],
) -> mover.TransferPlan:
    uid, gid, fs_group = identity_of(source)
    name = volume.name(target)
    return mover.TransferPlan(
        owner=owner,
        name=name,
        namespace=owner.namespace,
        image=ctx.settings.mover_image,
        source_claim=mover.source_claim_name(name),
        target_claim=volume.target_pvc,
        source_place=placement(regions[0], source),
        target_place=placement(regions[1], source),
        run_as_user=uid,
        run_as_group=gid,
        fs_group=fs_group,
        bwlimit_kib=ctx.settings.mover_bandwidth_kib or None,
        cluster_domain=ctx.settings.cluster_domain,
    )


async def follow(
    ctx: Context,
    owner_body: JSON,
    funnel: Writes,
    plan: cluster_builders.ClusterPlan,
    snapshots: dict[str, str],
    cut_volumes: list[VolumeStatus],
    previous: list[VolumeStatus],
    source_region: str | None,
) -> Moving | Moved | Stalled:
    """One look at every volume's transfer: make what is missing, read the progress,
    mark what arrived and remove its movers. `snapshots`: source PVC → its cut."""
    owner, namespace = plan.owner, plan.namespace
    selector = f"{owner.uid_label}={owner.uid}"
    claims = {
        p["metadata"]["name"]: {"apiVersion": "v1", "kind": "PersistentVolumeClaim", **p}
        for p in await ctx.kube.list("v1", "PersistentVolumeClaim", namespace, selector)
    }
    pods = {
        p["metadata"]["name"]: {"apiVersion": "v1", "kind": "Pod", **p}
        for p in await ctx.kube.list(
            "v1", "Pod", namespace, label_selector=f"{selector},{mover.TRANSFER_LABEL}"
        )
        if provenance.created_by(p, owner)
    }
    known = {v.name: v for v in previous}
    cut = {v.name: v for v in cut_volumes}
    now, stamp = datetime.now(UTC), now_rfc3339()
    out: list[VolumeStatus] = []
    stalls: list[str] = []
    regions = (source_region, plan.region)
    for index, (source_pvc, target_pvc) in enumerate(cluster_builders.volume_pairs(plan)):
        volume = Volume(index, source_pvc, target_pvc)
        moving = plan_of(ctx, owner, plan.target_name, volume, plan.source, regions)
        base = cut.get(target_pvc) or VolumeStatus(name=target_pvc, source=source_pvc)
        before = known.get(target_pvc)
        claim = claims.get(target_pvc)
        if claim is not None and _transferred(claim, owner):
            await remove_movers(funnel, moving, pods, claims)
            out.append(transfer_rules.volume_status(base, before, None, 0, True, stamp))
            continue
        sender, receiver = pods.get(f"{moving.name}-source"), pods.get(f"{moving.name}-target")
        log = ""
        if transfer_rules.phase(sender) in ("Running", "Succeeded", "Failed"):
            log = await ctx.kube.log(namespace, f"{moving.name}-source")
        seen = transfer_rules.progress(log) if log else None
        attempts = transfer_rules.restarts(sender) + (seen.attempts if seen else 1)
        # The receiving side exits 0 only once the sender marked the copy complete.
        done = claim is not None and transfer_rules.phase(receiver) == "Succeeded"
        if done:
            assert claim is not None
            done = await mark_transferred(funnel, claim)
        if done:
            await remove_movers(funnel, moving, pods, claims)
        else:
            for pod in (sender, receiver):
                if pod is not None and transfer_rules.phase(pod) == "Failed":
                    await funnel.delete(pod, uid=pod["metadata"]["uid"])  # evicted: made again
                    pods.pop(pod["metadata"]["name"], None)
            sender, receiver = pods.get(f"{moving.name}-source"), pods.get(f"{moving.name}-target")
            send = transfer_rules.ready(receiver)  # sent to only once it listens
            if claim is None or receiver is None or (sender is None and send):
                await make(ctx, funnel, plan, moving, volume, snapshots, claims, pods, send)
                if sender is None and send:
                    ctx.emit(owner_body, Reason.TRANSFERRING, _started(moving, target_pvc), False)
        status = transfer_rules.volume_status(base, before, seen, attempts, done, stamp)
        _count(ctx, before, status)
        out.append(status)
        if transfer_rules.stalled(status, now, ctx.settings.transfer_stall_seconds):
            stalls.append(
                f"{moving.name} (volume {target_pvc}: source pod "
                f"{transfer_rules.pod_state(sender)}; target pod "
                f"{transfer_rules.pod_state(receiver)})"
            )
    if stalls:
        return Stalled(
            f"no new byte was transferred for {ctx.settings.transfer_stall_seconds} s (the "
            f"operator setting transferStallSeconds): {'; '.join(stalls)}"
        )
    if all(v.transferred for v in out):
        return Moved(out)
    return Moving(LOOK_SECONDS, out)


def _transferred(claim: JSON, owner: provenance.Owner) -> bool:
    annotations = claim["metadata"].get("annotations") or {}
    return provenance.created_by(claim, owner) and annotations.get(TRANSFERRED) == "true"


def _count(ctx: Context, before: VolumeStatus | None, after: VolumeStatus) -> None:
    """Bytes that newly arrived, for the operator's metrics (from the figures in status:
    a restarted operator does not count them twice)."""
    grown = (after.bytes_done or 0) - ((before.bytes_done or 0) if before else 0)
    if grown > 0:
        ctx.metrics.transferred(grown)


async def make(
    ctx: Context,
    funnel: Writes,
    plan: cluster_builders.ClusterPlan,
    moving: mover.TransferPlan,
    volume: Volume,
    snapshots: dict[str, str],
    claims: dict[str, JSON],
    pods: dict[str, JSON],
    send: bool,
) -> None:
    """Create what one volume's transfer lacks, in order (the key, the Service, both
    claims, the receiving pod, and, once that one is ready (`send`), the sending pod);
    adopt what this owner made before."""
    from clone_operator.engine import clusters  # the engine that uses this; no cycle at import

    wanted: list[JSON] = [
        mover.credentials(moving, secrets.token_hex(32)),
        mover.target_service(moving),
    ]
    if moving.source_claim not in claims:
        source_pvc = await ctx.kube.get(
            "v1", "PersistentVolumeClaim", plan.namespace, volume.source_pvc
        )
        if source_pvc is None:
            raise cluster_builders.BuildError(f"source PVC {volume.source_pvc} does not exist")
        spec = source_pvc.get("spec") or {}
        size = ((source_pvc.get("status") or {}).get("capacity") or {}).get("storage") or (
            (spec.get("resources") or {}).get("requests") or {}
        ).get("storage")
        snapshot = snapshots.get(volume.source_pvc)
        if snapshot is None:
            raise cluster_builders.BuildError(f"no snapshot of source PVC {volume.source_pvc}")
        wanted.append(
            mover.restored_claim(
                moving, snapshot, spec.get("storageClassName"), str(size), spec.get("accessModes")
            )
        )
    if volume.target_pvc not in claims:
        completed = await clusters.complete(ctx.kube, plan, ctx.settings.cluster_domain)
        wanted += [
            pvc
            for pvc in cluster_builders.build_pvcs(completed)
            if pvc["metadata"]["name"] == volume.target_pvc
        ]
    if f"{moving.name}-target" not in pods:
        wanted.append(mover.target_pod(moving))
    if send and f"{moving.name}-source" not in pods:
        wanted.append(mover.source_pod(moving))
    await clusters.ensure(funnel, wanted, plan.owner)


def _started(moving: mover.TransferPlan, target_pvc: str) -> str:
    def where(place: mover.Placement) -> str:
        region = place.node_selector.get(REGION_KEYS[0])
        return f" (region {region})" if region else ""

    return (
        f"volume {target_pvc}: {moving.name}-source{where(moving.source_place)} sends the cut "
        f"to {moving.name}-target{where(moving.target_place)}"
    )


async def mark_transferred(funnel: Writes, claim: JSON) -> bool:
    """Record on the target PVC that its volume arrived (before its movers go); False
    when the PVC is gone (its movers stay: the next look makes it again)."""
    try:
        await funnel.merge_patch(claim, {"metadata": {"annotations": {TRANSFERRED: "true"}}})
    except NotFound:
        return False
    return True


async def remove_movers(
    funnel: Writes, moving: mover.TransferPlan, pods: dict[str, JSON], claims: dict[str, JSON]
) -> None:
    """Delete one volume's key, Service, temporary PVC and pods (this owner's; what is
    gone already is skipped). The pods go last: while one is left, the rest is looked
    for again, so a leader killed midway leaves nothing behind."""
    names = (f"{moving.name}-source", f"{moving.name}-target")
    found = [pods[n] for n in names if n in pods]
    if not found and moving.source_claim not in claims:
        return
    if moving.source_claim in claims:
        found.insert(0, claims[moving.source_claim])
    for kind in ("Pod", "Service", "Secret")[1:]:
        obj = await funnel.get("v1", kind, moving.namespace, moving.name)
        if obj is not None:
            found.insert(0, {"apiVersion": "v1", "kind": kind, **obj})
    for obj in found:
        if provenance.created_by(obj, moving.owner):
            try:
                await funnel.delete(obj, uid=obj["metadata"]["uid"])
            except Conflict:
                continue  # replaced meanwhile: not ours to delete
