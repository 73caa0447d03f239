"""Provenance marks (labels, annotations, owner references) and the per-source Lease lock."""

from __future__ import annotations

from clone_operator.api.common import API_VERSION
from clone_operator.builders import locks, provenance
from tests.unit.factories import NAMESPACE, OBJECT_OWNER, OWNER


def test_operation_owner_marks() -> None:
    assert OWNER.labels() == {
        "app.kubernetes.io/managed-by": "clone-operator",
        "cloning.dev/operation-uid": OWNER.uid,
    }
    assert OWNER.annotations() == {"cloning.dev/operation": f"{NAMESPACE}/{OWNER.name}"}


def test_clone_object_owner_marks_use_their_own_keys() -> None:
    assert OBJECT_OWNER.labels() == {
        "app.kubernetes.io/managed-by": "clone-operator",
        "cloning.dev/clone-object-uid": OBJECT_OWNER.uid,
    }
    assert OBJECT_OWNER.annotations() == {
        "cloning.dev/clone-object": f"{NAMESPACE}/{OBJECT_OWNER.name}"
    }


def test_every_mark_uses_the_cloning_dev_prefix() -> None:
    for key in (
        provenance.OPERATION_UID,
        provenance.OPERATION,
        provenance.CLONE_OBJECT_UID,
        provenance.CLONE_OBJECT,
        provenance.SOURCE_CLUSTER,
        provenance.SOURCE,
        provenance.SOURCE_UID,
        provenance.CLUSTER,
    ):
        assert key.startswith("cloning.dev/")


def test_owner_reference_never_blocks_or_controls() -> None:
    ref = OWNER.reference()
    assert ref == {
        "apiVersion": API_VERSION,
        "kind": "CloningOperation",
        "name": OWNER.name,
        "uid": OWNER.uid,
        "controller": False,
        "blockOwnerDeletion": False,
    }


def test_created_by_checks_the_owner_uid_label() -> None:
    mine = {"metadata": {"labels": OWNER.labels()}}
    assert provenance.created_by(mine, OWNER)
    assert not provenance.created_by(mine, OBJECT_OWNER)
    assert not provenance.created_by({"metadata": {"labels": None}}, OWNER)
    assert not provenance.created_by({}, OWNER)
    other = {"metadata": {"labels": {provenance.OPERATION_UID: "someone-else"}}}
    assert not provenance.created_by(other, OWNER)


def test_owner_references_without_removes_only_that_owner() -> None:
    keep = {"uid": "keep-me", "kind": "Thing"}
    obj = {"metadata": {"ownerReferences": [OWNER.reference(), keep]}}
    assert provenance.owner_references_without(obj, OWNER.uid) == [keep]
    assert provenance.owner_references_without({"metadata": {}}, OWNER.uid) == []


def test_lock_name_and_holder_round_trip() -> None:
    assert locks.lock_name("search") == "cloning-lock-search"
    identity = locks.holder_identity(OWNER)
    assert locks.parse_holder(identity) == (OWNER.name, OWNER.uid)
    assert locks.parse_holder("no-uid") == ("no-uid", "")


def test_build_lock_is_an_owned_lease_held_by_the_operation() -> None:
    lease = locks.build_lock(OWNER, "search")
    assert (lease["apiVersion"], lease["kind"]) == ("coordination.k8s.io/v1", "Lease")
    meta = lease["metadata"]
    assert meta["name"] == "cloning-lock-search"
    assert meta["namespace"] == OWNER.namespace
    assert meta["labels"][provenance.SOURCE_CLUSTER] == "search"
    assert meta["labels"][provenance.OPERATION_UID] == OWNER.uid
    assert meta["ownerReferences"] == [OWNER.reference()]
    assert locks.parse_holder(lease["spec"]["holderIdentity"]) == (OWNER.name, OWNER.uid)


def test_locks_of_different_sources_never_collide() -> None:
    assert locks.lock_name("a-b") != locks.lock_name("a")
    assert locks.build_lock(OWNER, "a") != locks.build_lock(OWNER, "b")


def test_the_hand_over_patch_drops_our_reference_only_while_the_references_are_unchanged() -> None:
    ours = {"apiVersion": "cloning.dev/v1alpha1", "kind": "CloningOperation", "uid": "u-1"}
    theirs = {"apiVersion": "apps/v1", "kind": "StatefulSet", "uid": "u-2"}
    created = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"namespace": "ns", "name": "data-x-0", "ownerReferences": [ours], "uid": "p"},
        "spec": {"resources": {}},
    }
    kept = provenance.part(created)
    assert kept == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"namespace": "ns", "name": "data-x-0", "ownerReferences": [ours]},
    }
    assert provenance.hand_over_patch(kept, "u-1") == [
        {"op": "test", "path": "/metadata/ownerReferences", "value": [ours]},
        {"op": "remove", "path": "/metadata/ownerReferences"},
    ]
    both = provenance.part(
        {**created, "metadata": {**created["metadata"], "ownerReferences": [theirs, ours]}}
    )
    assert provenance.hand_over_patch(both, "u-1") == [
        {"op": "test", "path": "/metadata/ownerReferences", "value": [theirs, ours]},
        {"op": "replace", "path": "/metadata/ownerReferences", "value": [theirs]},
    ]
    assert provenance.hand_over_patch(both, "u-3") is None  # not ours to drop
