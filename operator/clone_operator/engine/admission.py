"""Gather the facts the admission rules judge (reads, and dry runs: nothing is stored)."""

from __future__ import annotations

import dataclasses
from typing import Any

from clone_operator.api.cloningoperations import KIND, CloningOperationSpec, Phase
from clone_operator.api.common import API_VERSION
from clone_operator.builders import clusters as cluster_builders
from clone_operator.builders.provenance import Owner
from clone_operator.engine import clusters, operations
from clone_operator.engine.context import Context
from clone_operator.k8s.api import JSON, Invalid
from clone_operator.reconcile import admission
from clone_operator.reconcile import operations as operation_rules
from clone_operator.reconcile import storage as storage_rules
from clone_operator.reconcile.regions import UnknownRegion

# Before the API server assigns one (or when it is not shown), the target's default
# name is built from this stand-in: only messages show it.
UNKNOWN_UID = "00000000-0000-0000-0000-000000000000"


async def source_service(ctx: Context, namespace: str, source: JSON) -> JSON | None:
    """The source's governing Service, when it names one and it exists."""
    name = source["spec"].get("serviceName")
    return await ctx.kube.get("v1", "Service", namespace, name) if name else None


async def target_problems(
    ctx: Context, owner: Owner, spec: CloningOperationSpec, source: JSON, service: JSON | None
) -> list[str]:
    """Build the target as the operator would (the identity rewrite and its guard
    included) and, with overrides, ask the API server about the StatefulSet (a dry
    run): what either refuses, naming the field to change. A snapshot copy's
    snapshots are not taken yet: each PVC is built as restored from one named as the
    target PVC, as pickup names them."""
    resolution = operation_rules.Resolution(
        target_cluster=cluster_builders.target_name(
            spec.target_name, spec.source_cluster, owner.uid
        ),
        server_version=spec.server_version or "",
        source_region=None,
        target_region=None,
        replicas=int(source["spec"].get("replicas", 1)),
    )
    plan = operation_rules.cluster_plan(spec, owner, resolution, source, service)
    if plan.copy_method.snapshots:
        plan = dataclasses.replace(plan, snapshots=dict(cluster_builders.volume_pairs(plan)))
    domain = ctx.settings.cluster_domain
    try:
        await clusters.build(
            ctx.kube, dataclasses.replace(plan, statefulset_overrides=None), domain
        )
    except cluster_builders.BuildError as e:
        return [f"spec.sourceCluster: {e}"]
    if not spec.target_overrides:
        return []
    try:
        objects = await clusters.build(ctx.kube, plan, domain)
        await ctx.kube.create(objects[-1], dry_run=True)
    except cluster_builders.BuildError as e:
        return [f"spec.targetOverrides: {e}"]
    except Invalid as e:
        return [f"spec.targetOverrides: the API server refuses the target StatefulSet: {e.message}"]
    return []


async def storage_refusal(
    ctx: Context,
    owner: Owner,
    spec: CloningOperationSpec,
    source: JSON,
    service: JSON | None,
    body: JSON,
) -> str | None:
    """Pickup's own decision of the copy method (`engine.operations.resolve`), asked
    before the operation exists: its refusal, word for word, else None. What pickup
    would refuse for another reason (an unknown region, an invalid source) is told by
    the other checks."""
    try:
        await operations.resolve(ctx, body, spec, owner, source, service)
    except storage_rules.Refused as e:
        return str(e)
    except (UnknownRegion, cluster_builders.BuildError):
        pass
    return None


async def check_operation(
    ctx: Context,
    namespace: str,
    name: str,
    uid: str | None,
    body_spec: dict[str, Any],
    body: JSON | None = None,
) -> list[str]:
    spec = CloningOperationSpec.model_validate(body_spec)
    source = await ctx.kube.get("apps/v1", "StatefulSet", namespace, spec.source_cluster)
    containers: tuple[str, ...] = ()
    if source is not None:
        containers = tuple(c["name"] for c in source["spec"]["template"]["spec"]["containers"])
    others = await ctx.kube.list(
        API_VERSION, KIND, namespace, field_selector=f"spec.sourceCluster={spec.source_cluster}"
    )
    active = tuple(
        (o["metadata"]["name"], phase)
        for o in others
        if o["metadata"]["name"] != name
        for phase in [((o.get("status") or {}).get("phase")) or Phase.PENDING.value]
        if not Phase(phase).terminal
    )
    taken = False
    if spec.target_name:
        existing = await ctx.kube.get("apps/v1", "StatefulSet", namespace, spec.target_name)
        taken = existing is not None
    problems = []
    refusal = None
    if source is not None and not taken:
        owner = Owner(KIND, name, namespace, uid or UNKNOWN_UID)
        service = await source_service(ctx, namespace, source)
        problems = await target_problems(ctx, owner, spec, source, service)
        if not problems:
            whole = body or {"metadata": {"name": name, "namespace": namespace}}
            refusal = await storage_refusal(ctx, owner, spec, source, service, whole)
    facts = admission.OperationFacts(
        namespace=namespace,
        source_exists=source is not None,
        source_containers=containers,
        active=active,
        regions=ctx.regions(),
        target_taken_by_other=taken,
        target_problems=tuple(problems),
        max_timeout_seconds=ctx.settings.max_timeout_seconds,
        storage_refusal=refusal,
    )
    return admission.operation_problems(spec, facts)
