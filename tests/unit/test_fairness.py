"""Fair InProgress slots: one limit for every whole-cluster clone, a namespace's share of
it, oldest first across namespaces; and the administrator's maximum timeout."""

from __future__ import annotations

import pytest

from clone_operator.api.cloneobjects import CloneObjectStatus
from clone_operator.api.cloningoperations import (
    CloningOperationSpec,
    CloningOperationStatus,
    Phase,
)
from clone_operator.reconcile import objects as object_rules
from clone_operator.reconcile import operations as operation_rules
from clone_operator.reconcile.conditions import Reason
from clone_operator.reconcile.slots import admitted
from clone_operator.services.runtime import Slots
from clone_operator.settings import Settings

T0, T1, T2, T3 = (f"2024-01-01T00:00:0{i}Z" for i in range(4))


def test_a_namespace_at_its_share_waits_while_others_take_the_free_slots() -> None:
    slots = Slots(limit=3, per_namespace=2)
    assert slots.try_take("a1", T0, "a")
    assert slots.try_take("a2", T1, "a")
    assert not slots.try_take("a3", T2, "a")  # a slot is free, but not for namespace a
    assert "namespace a holds 2 of the 3 already, its share" in slots.why_waiting("a")
    assert slots.try_take("b1", T3, "b")  # younger than a3, yet first: a3 cannot have it
    assert not slots.try_take("b2", T3, "b")
    assert "all 3 are taken by clones InProgress" in slots.why_waiting("b")
    slots.release("b1")
    assert not slots.try_take("a3", T2, "a")  # the oldest waiter, still over its share
    assert slots.try_take("b2", T3, "b")
    slots.release("a1")
    assert slots.try_take("a3", T2, "a")
    assert slots.taken == {"a2": "a", "b2": "b", "a3": "a"}


def test_the_oldest_eligible_waiters_across_namespaces_get_the_free_slots() -> None:
    waiting = {
        "a1": (T0, "a"),
        "a2": (T1, "a"),
        "b1": (T2, "b"),
        "c1": (T3, "c"),
    }
    assert admitted(waiting, {}, limit=2, share=2) == {"a1", "a2"}
    assert admitted(waiting, {}, limit=2, share=1) == {"a1", "b1"}
    assert admitted(waiting, {"x": "b"}, limit=3, share=1) == {"a1", "c1"}
    assert admitted(waiting, {"x": "a", "y": "b"}, limit=2, share=2) == set()


def test_slots_held_beyond_a_share_are_never_taken_back() -> None:
    slots = Slots(limit=2, per_namespace=1)
    slots.occupy("old-1", "a")  # InProgress when the leader took over
    slots.occupy("old-2", "a")
    assert not slots.try_take("b1", T0, "b")
    slots.release("old-1")
    assert slots.try_take("b1", T0, "b")
    assert not slots.try_take("a1", T0, "a")  # a still holds old-2: its share


@pytest.mark.parametrize(
    ("limit", "per_namespace", "share"),
    [
        (10, None, 5),
        (9, None, 5),
        (1, None, 1),
        (2, None, 1),
        (10, 10, 10),
        (10, 30, 10),
        (10, 3, 3),
    ],
)
def test_a_namespace_share_defaults_to_half_the_slots_rounded_up(
    limit: int, per_namespace: int | None, share: int
) -> None:
    settings = Settings(max_in_progress=limit, max_in_progress_per_namespace=per_namespace)
    assert settings.namespace_share == share
    assert Slots(limit=limit, per_namespace=settings.namespace_share).share == share


def test_an_operation_asking_more_than_the_maximum_timeout_is_refused() -> None:
    assert Settings().max_timeout_seconds == 21600
    spec = CloningOperationSpec.model_validate({"sourceCluster": "db", "timeoutSeconds": 86400})
    refused = operation_rules.timeout_refused(spec, 21600)
    assert refused is not None
    assert (refused.to, refused.reason) == (Phase.FAILED, Reason.TIMEOUT_TOO_LONG)
    assert "spec.timeoutSeconds: 86400 is more" in refused.message
    assert "at most 21600" in refused.message
    assert operation_rules.timeout_refused(spec, 86400) is None
    default = CloningOperationSpec.model_validate({"sourceCluster": "db"})
    assert operation_rules.timeout_refused(default, 1800) is None


def test_waiting_for_a_slot_is_written_once_per_reason() -> None:
    pending = CloningOperationStatus(phase=Phase.PENDING, reason=Reason.ACCEPTED.value)
    waiting = operation_rules.waiting(pending, "waiting for a slot: x", T1)
    assert waiting is not None
    assert (waiting.reason, waiting.message, waiting.updated_at) == (
        "WaitingForSlot",
        "waiting for a slot: x",
        T1,
    )
    assert operation_rules.waiting(waiting, "waiting for a slot: x", T2) is None
    assert operation_rules.waiting(waiting, "waiting for a slot: y", T2) is not None


def test_a_cluster_clone_object_says_it_waits_for_a_slot_in_its_ready_condition() -> None:
    waiting = object_rules.waiting(CloneObjectStatus(), "waiting for a slot: x", T1, 1)
    assert waiting is not None
    [ready] = waiting.conditions
    assert (ready.type, ready.status, ready.reason, ready.message) == (
        "Ready",
        "False",
        "WaitingForSlot",
        "waiting for a slot: x",
    )
    assert object_rules.waiting(waiting, "waiting for a slot: x", T2, 1) is None


def test_a_waiter_is_told_which_limit_holds_it() -> None:
    from clone_operator.reconcile.slots import why_waiting

    assert why_waiting({"x": "a", "y": "b"}, "c", limit=2, share=2) == (
        "waiting for a slot: all 2 are taken by clones InProgress (operator setting maxInProgress)"
    )
    assert why_waiting({"x": "a"}, "a", limit=3, share=1) == (
        "waiting for a slot: namespace a holds 1 of the 3 already, its share "
        "(operator setting maxInProgressPerNamespace)"
    )
    assert why_waiting({"x": "a"}, "b", limit=3, share=1) == (
        "waiting for a slot: older clones are waiting too"
    )
