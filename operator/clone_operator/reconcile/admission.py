"""Admission rules that the CRD's CEL cannot express: they need other objects.

Pure: the facts are gathered by the engine; this module only judges them.
The webhook refuses early what the operator would otherwise fail later; the
operator still enforces every rule itself (a webhook can be down, or two
creates can pass it at the same instant: the per-source Lease decides then).

The webhook's port answers whoever connects, and a review's body is the
caller's to write: a forged one could name any namespace. So facts are gathered
(and answers name what was read) only for a review the API server sent, proven
by its client certificate (`Review.from_api_server`), and only in the reviewed
object's own namespace. Any other review is admitted without a read: a refusal,
however generic, would still answer "exists or not" for another namespace. The
operator then judges the resource itself and writes why in its status, which
RBAC guards.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clone_operator.api.cloningoperations import PLURAL, CloningOperationSpec
from clone_operator.reconcile import operations as operation_rules
from clone_operator.reconcile.regions import RegionTable, UnknownRegion


@dataclass(frozen=True)
class Review:
    """What the webhook knows of a review before it reads anything."""

    operation: str
    plural: str
    namespace: str | None
    """The reviewed object's namespace: the only one read in."""
    from_api_server: bool
    """Its client presented a certificate signed by the CA the operator trusts."""


def from_api_server(peer: Mapping[str, Any] | None, trusted_ca: bool) -> bool:
    """A TLS peer certificate proves the API server sent the review only when a CA is
    trusted (the server then verifies it; unverified certificates read as empty)."""
    return trusted_ca and peer is not None and bool(peer.get("subject"))


def may_read(review: Review) -> bool:
    """Gather facts (reads, dry runs) for this review: only the API server's, only a
    CREATE of a CloningOperation, only with a namespace to read in."""
    return (
        review.from_api_server
        and review.operation == "CREATE"
        and review.plural == PLURAL
        and bool(review.namespace)
    )


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
    storage_refusal: str | None = None
    """Why the storage cannot deliver the target's volumes by the requested copy method:
    the very refusal pickup would give (`reconcile.storage.choose`); None: it can, or
    it was not asked."""


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
    if facts.storage_refusal is not None:
        problems.append(f"spec.copyMethod: {facts.storage_refusal}")
    if facts.max_timeout_seconds is not None:
        too_long = operation_rules.timeout_refused(spec, facts.max_timeout_seconds)
        if too_long is not None:
            problems.append(too_long.message)
    return problems
