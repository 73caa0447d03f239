"""Admission rules that the CRD's CEL cannot express: they need other objects.

Pure: the facts are gathered by the engine; this module only judges them.
The webhook refuses early what the operator would otherwise fail later; the
operator still enforces every rule itself (a webhook can be down, or two
creates can pass it at the same instant: the per-source Lease decides then).
"""

from __future__ import annotations

from dataclasses import dataclass

from clone_operator.api.cloningoperations import CloningOperationSpec
from clone_operator.reconcile import operations as operation_rules
from clone_operator.reconcile.regions import RegionTable, UnknownRegion


@dataclass(frozen=True)
class OperationFacts:
    """What the cluster looks like for a CloningOperation being created."""

    namespace: str
    source_exists: bool
    source_containers: tuple[str, ...]
    active: tuple[tuple[str, str], ...]
    """(name, phase) of other non-terminal operations for the same source."""
    regions: RegionTable
    target_taken_by_other: bool
    target_problems: tuple[str, ...] = ()
    """Why the target, built as the operator would build it, cannot be made (each
    naming its field): a reference to the source left (SourceReferenced), an invalid
    source, or the API server's refusal of the overridden StatefulSet."""
    max_timeout_seconds: int | None = None
    """The operator setting maxTimeoutSeconds (None: not checked)."""


def operation_problems(spec: CloningOperationSpec, facts: OperationFacts) -> list[str]:
    """Every reason to refuse the operation, each naming its field; empty when fine."""
    problems = []
    if not facts.source_exists:
        problems.append(
            f"spec.sourceCluster: StatefulSet {facts.namespace}/{spec.source_cluster} does not exist"
        )
    for name, phase in facts.active:
        problems.append(
            f"spec.sourceCluster: operation {name} is already {phase} for cluster "
            f"{spec.source_cluster}; only one operation per cluster may be active "
            "(wait for it to finish, or cancel it while Pending)"
        )
    if spec.target_region is not None:
        try:
            facts.regions.resolve(spec.target_region)
        except UnknownRegion as e:
            problems.append(f"spec.targetRegion: {e}")
    if (
        facts.source_exists
        and spec.server_container is not None
        and spec.server_container not in facts.source_containers
    ):
        problems.append(
            f"spec.serverContainer: the source has no container {spec.server_container!r} "
            f"(it has: {', '.join(facts.source_containers)})"
        )
    if facts.target_taken_by_other:
        problems.append(
            f"spec.targetName: StatefulSet {facts.namespace}/{spec.target_name} already exists; "
            "choose another name"
        )
    problems.extend(facts.target_problems)
    if facts.max_timeout_seconds is not None:
        too_long = operation_rules.timeout_refused(spec, facts.max_timeout_seconds)
        if too_long is not None:
            problems.append(too_long.message)
    return problems
