"""metav1.Condition bookkeeping: one entry per type, transition time moves with status only."""

from __future__ import annotations

import pytest

from clone_operator.api.common import Condition
from clone_operator.reconcile.conditions import set_condition

T0 = "2024-01-01T00:00:00Z"
T1 = "2024-01-01T00:05:00Z"


def test_a_new_condition_is_appended_with_the_transition_time() -> None:
    out = set_condition([], "Ready", False, "Accepted", "waiting", T0, 1)
    assert out == [
        Condition(
            type="Ready",
            status="False",
            reason="Accepted",
            message="waiting",
            last_transition_time=T0,
            observed_generation=1,
        )
    ]


@pytest.mark.parametrize(("value", "wire"), [(True, "True"), (False, "False"), (None, "Unknown")])
def test_status_values(value: bool | None, wire: str) -> None:
    assert set_condition([], "Ready", value, "R", "m", T0, None)[0].status == wire


def test_same_status_keeps_the_transition_time_but_updates_the_rest() -> None:
    first = set_condition([], "Progressing", True, "Accepted", "waiting", T0, 1)
    second = set_condition(first, "Progressing", True, "Started", "running", T1, 2)
    (c,) = second
    assert c.last_transition_time == T0
    assert (c.reason, c.message, c.observed_generation) == ("Started", "running", 2)


def test_changed_status_moves_the_transition_time() -> None:
    first = set_condition([], "Ready", False, "Started", "running", T0, 1)
    (c,) = set_condition(first, "Ready", True, "TargetReady", "ready", T1, 1)
    assert c.status == "True"
    assert c.last_transition_time == T1


def test_other_conditions_are_kept_in_place_and_untouched() -> None:
    conditions = set_condition([], "Progressing", True, "A", "a", T0, 1)
    conditions = set_condition(conditions, "Ready", False, "A", "a", T0, 1)
    before = [c.model_copy() for c in conditions]
    out = set_condition(conditions, "Progressing", False, "B", "b", T1, 2)
    assert [c.type for c in out] == ["Progressing", "Ready"]
    assert out[1] == before[1]
    assert conditions == before, "the input list must not change"


def test_one_entry_per_type() -> None:
    out: list[Condition] = []
    for i, status in enumerate([True, False, True, None]):
        out = set_condition(out, "Ready", status, "R", str(i), T0, i)
    assert [c.type for c in out] == ["Ready"]
    assert out[0].status == "Unknown"


def test_wire_form_is_camel_case() -> None:
    (c,) = set_condition([], "Ready", True, "R", "m", T0, 3)
    assert c.wire() == {
        "type": "Ready",
        "status": "True",
        "reason": "R",
        "message": "m",
        "lastTransitionTime": T0,
        "observedGeneration": 3,
    }
