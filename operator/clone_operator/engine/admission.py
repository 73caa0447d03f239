"""Gather the facts the admission rules judge (reads only; no writes)."""

from __future__ import annotations

from typing import Any

from clone_operator.api.cloningoperations import KIND, CloningOperationSpec, Phase
from clone_operator.api.common import API_VERSION
from clone_operator.engine.context import Context
from clone_operator.reconcile import admission


async def check_operation(
    ctx: Context, namespace: str, name: str, body_spec: dict[str, Any]
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
    facts = admission.OperationFacts(
        namespace=namespace,
        source_exists=source is not None,
        source_containers=containers,
        active=active,
        regions=ctx.regions(),
        target_taken_by_other=taken,
    )
    return admission.operation_problems(spec, facts)
