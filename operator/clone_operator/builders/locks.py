"""The per-source lock: a coordination.k8s.io Lease whose creation is atomic.

Creating `cloning-lock-<source>` succeeds for exactly one operation; the
others get 409 AlreadyExists and read the holder. The Lease is owned by the
holding operation, so the garbage collector frees it if the operation is
deleted while the operator is down.
"""

from __future__ import annotations

from typing import Any

from clone_operator.builders import provenance
from clone_operator.builders.provenance import Owner


def lock_name(source_cluster: str) -> str:
    return f"cloning-lock-{source_cluster}"


def holder_identity(owner: Owner) -> str:
    return f"{owner.name}/{owner.uid}"


def parse_holder(identity: str) -> tuple[str, str]:
    """(operation name, operation uid) of a Lease holder."""
    name, _, uid = identity.partition("/")
    return name, uid


def build_lock(owner: Owner, source_cluster: str) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": lock_name(source_cluster),
            "namespace": owner.namespace,
            "labels": {**owner.labels(), provenance.SOURCE_CLUSTER: source_cluster},
            "annotations": owner.annotations(),
            "ownerReferences": [owner.reference()],
        },
        "spec": {"holderIdentity": holder_identity(owner)},
    }
