"""The CloningOperation state machine: next steps, transitions, timestamps and progress."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from clone_operator.api.cloningoperations import CloningOperationStatus, Phase
from clone_operator.reconcile.operations import (
    Reason,
    Step,
    Transition,
    apply,
    next_step,
    parse_time,
    progress,
    seconds_left,
    target_ready,
    timed_out,
    unschedulable_message,
)

T0 = "2024-01-01T00:00:00Z"
T1 = "2024-01-01T00:01:00Z"
T2 = "2024-01-01T00:02:00Z"
T3 = "2024-01-01T00:03:00Z"

PENDING = Transition(Phase.PENDING, Reason.ACCEPTED, "waiting to start")
STARTED = Transition(Phase.IN_PROGRESS, Reason.STARTED, "provisioning the target")
SUCCEEDED = Transition(Phase.SUCCEEDED, Reason.TARGET_READY, "target ready")
FAILED = Transition(Phase.FAILED, Reason.TIMEOUT, "timed out")
CANCELED = Transition(Phase.CANCELED, Reason.CANCELED, "canceled")


# --- next_step ---------------------------------------------------------------------------------

EXPECTED_STEPS: dict[tuple[Phase | None, bool], Step] = {
    (None, False): Step.ADMIT,
    (None, True): Step.CANCEL,
    (Phase.PENDING, False): Step.START,
    (Phase.PENDING, True): Step.CANCEL,
    (Phase.IN_PROGRESS, False): Step.PROVISION,
    (Phase.IN_PROGRESS, True): Step.PROVISION,  # too late to cancel: the API server refuses it
    (Phase.SUCCEEDED, False): Step.FINISHED,
    (Phase.SUCCEEDED, True): Step.FINISHED,
    (Phase.FAILED, False): Step.FINISHED,
    (Phase.FAILED, True): Step.FINISHED,
    (Phase.CANCELED, False): Step.FINISHED,
    (Phase.CANCELED, True): Step.FINISHED,
}


def test_every_phase_and_cancel_combination_is_covered() -> None:
    phases: list[Phase | None] = [None, *Phase]
    assert set(EXPECTED_STEPS) == {(p, c) for p in phases for c in (False, True)}


@pytest.mark.parametrize(("phase", "cancel"), list(EXPECTED_STEPS))
def test_next_step(phase: Phase | None, cancel: bool) -> None:
    assert next_step(phase, cancel) is EXPECTED_STEPS[(phase, cancel)]


def test_terminal_phases() -> None:
    assert {p for p in Phase if p.terminal} == {Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELED}


# --- apply: phase, reason, timestamps ------------------------------------------------------------


def walk(*steps: tuple[Transition, str]) -> CloningOperationStatus:
    status = CloningOperationStatus()
    for transition, now in steps:
        status = apply(status, transition, now, 1)
    return status


def cond(status: CloningOperationStatus, type_: str) -> Any:
    return next(c for c in status.conditions if c.type == type_)


def test_first_transition_sets_created_at() -> None:
    status = walk((PENDING, T0))
    assert status.phase is Phase.PENDING
    assert status.reason == "Accepted"
    assert status.message == "waiting to start"
    assert status.created_at == T0
    assert status.updated_at == T0
    assert status.started_at is None
    assert status.completed_at is None
    assert status.observed_generation == 1


def test_created_at_is_kept_and_started_at_set_on_in_progress() -> None:
    status = walk((PENDING, T0), (STARTED, T1))
    assert status.created_at == T0
    assert status.started_at == T1
    assert status.updated_at == T1
    assert status.completed_at is None


def test_started_at_is_not_moved_by_a_repeated_in_progress() -> None:
    status = walk((PENDING, T0), (STARTED, T1), (STARTED, T2))
    assert status.started_at == T1
    assert status.updated_at == T2


@pytest.mark.parametrize("terminal", [SUCCEEDED, FAILED])
def test_terminal_after_in_progress_sets_completed_at(terminal: Transition) -> None:
    status = walk((PENDING, T0), (STARTED, T1), (terminal, T2))
    assert (status.created_at, status.started_at, status.completed_at) == (T0, T1, T2)
    assert status.phase is terminal.phase


def test_canceled_never_started() -> None:
    status = walk((PENDING, T0), (CANCELED, T1))
    assert status.started_at is None
    assert status.completed_at == T1
    assert status.phase is Phase.CANCELED


def test_failed_at_admission_completes_without_starting() -> None:
    status = walk((Transition(Phase.FAILED, Reason.SOURCE_NOT_FOUND, "no source"), T0))
    assert (status.created_at, status.started_at, status.completed_at) == (T0, None, T0)
    assert status.reason == "SourceNotFound"


def test_completed_at_is_not_moved_by_a_repeated_terminal_transition() -> None:
    status = walk((PENDING, T0), (STARTED, T1), (SUCCEEDED, T2), (SUCCEEDED, T3))
    assert status.completed_at == T2


def test_resolved_values_are_recorded() -> None:
    status = apply(
        CloningOperationStatus(),
        STARTED,
        T0,
        2,
        target_cluster="search-clone-abcde",
        server_version="28.0",
        target_region="eu-west-1",
    )
    assert status.target_cluster == "search-clone-abcde"
    assert status.server_version == "28.0"
    assert status.target_region == "eu-west-1"
    assert status.observed_generation == 2


def test_apply_does_not_mutate_the_input_status() -> None:
    before = walk((PENDING, T0))
    snapshot = before.model_copy(deep=True)
    apply(before, STARTED, T1, 1)
    assert before == snapshot


@pytest.mark.parametrize(
    ("transition", "progressing", "ready", "failed"),
    [
        (PENDING, "True", "False", None),
        (STARTED, "True", "False", None),
        (SUCCEEDED, "False", "True", None),
        (FAILED, "False", "False", "True"),
        (CANCELED, "False", "False", None),
    ],
)
def test_conditions_follow_the_phase(
    transition: Transition, progressing: str, ready: str, failed: str | None
) -> None:
    status = walk((transition, T0))
    assert cond(status, "Progressing").status == progressing
    assert cond(status, "Ready").status == ready
    types = [c.type for c in status.conditions]
    if failed is None:
        assert "Failed" not in types
    else:
        assert cond(status, "Failed").status == failed
    assert len(types) == len(set(types))
    for c in status.conditions:
        assert c.reason == transition.reason.value
        assert c.message == transition.message


def test_condition_transition_time_moves_only_when_status_changes() -> None:
    status = walk((PENDING, T0), (STARTED, T1))
    assert cond(status, "Progressing").last_transition_time == T0
    assert cond(status, "Ready").last_transition_time == T0
    assert cond(status, "Progressing").reason == "Started"
    status = apply(status, SUCCEEDED, T2, 1)
    assert cond(status, "Progressing").last_transition_time == T2
    assert cond(status, "Ready").last_transition_time == T2


def test_only_failures_are_warnings() -> None:
    assert FAILED.warning
    assert not any(t.warning for t in (PENDING, STARTED, SUCCEEDED, CANCELED))


def test_status_wire_form_round_trips() -> None:
    status = walk((PENDING, T0), (STARTED, T1))
    wire = status.wire()
    assert wire["phase"] == "InProgress"
    assert wire["startedAt"] == T1
    assert "completedAt" not in wire
    assert CloningOperationStatus.model_validate(wire) == status


# --- progress and readiness ----------------------------------------------------------------------


def test_progress_records_readiness() -> None:
    status = walk((STARTED, T0)).model_copy(update={"target_cluster": "tgt"})
    updated = progress(status, 1, 3, T1)
    assert updated is not None
    assert (updated.ready_replicas, updated.replicas, updated.ready) == (1, 3, "1/3")
    assert updated.updated_at == T1
    assert updated.message == "target tgt: 1/3 replicas ready"
    assert updated.phase is Phase.IN_PROGRESS


def test_progress_returns_none_when_nothing_changed() -> None:
    status = walk((STARTED, T0))
    once = progress(status, 2, 3, T1)
    assert once is not None
    assert progress(once, 2, 3, T2) is None
    assert progress(once, 3, 3, T2) is not None
    assert progress(once, 2, 4, T2) is not None


def test_progress_from_zero_is_a_change() -> None:
    assert progress(walk((STARTED, T0)), 0, 3, T1) is not None


def statefulset(
    replicas: int | None, ready: int | None, generation: int, observed: int | None
) -> dict[str, Any]:
    spec = {} if replicas is None else {"replicas": replicas}
    st: dict[str, Any] = {}
    if ready is not None:
        st["readyReplicas"] = ready
    if observed is not None:
        st["observedGeneration"] = observed
    return {"metadata": {"generation": generation}, "spec": spec, "status": st}


@pytest.mark.parametrize(
    ("sts", "expected"),
    [
        (statefulset(3, 3, 2, 2), (3, 3, True)),
        (statefulset(3, 2, 2, 2), (2, 3, False)),
        (statefulset(3, 3, 2, 1), (3, 3, False)),  # the controller has not seen the new spec
        (statefulset(3, None, 1, 1), (0, 3, False)),
        (statefulset(None, 1, 1, 1), (1, 1, True)),
        (statefulset(0, None, 1, 1), (0, 0, True)),
        (statefulset(3, 3, 2, None), (3, 3, False)),
    ],
)
def test_target_ready(sts: dict[str, Any], expected: tuple[int, int, bool]) -> None:
    assert target_ready(sts) == expected


def test_target_ready_without_status() -> None:
    assert target_ready({"metadata": {"generation": 1}, "spec": {"replicas": 2}}) == (0, 2, False)


# --- time ----------------------------------------------------------------------------------------

START = "2024-01-01T00:00:00Z"
START_DT = datetime(2024, 1, 1, tzinfo=UTC)


def test_parse_time_reads_kubernetes_timestamps() -> None:
    assert parse_time(START) == START_DT
    assert parse_time("2024-01-01T00:00:00+00:00") == START_DT


@pytest.mark.parametrize(
    ("elapsed", "expired", "left"),
    [(0, False, 600.0), (599, False, 1.0), (600, True, 0.0), (10_000, True, 0.0)],
)
def test_timeout(elapsed: int, expired: bool, left: float) -> None:
    now = START_DT + timedelta(seconds=elapsed)
    assert timed_out(START, 600, now) is expired
    assert seconds_left(START, 600, now) == left


def test_an_operation_that_never_started_never_times_out() -> None:
    late = START_DT + timedelta(days=30)
    assert timed_out(None, 600, late) is False
    assert seconds_left(None, 600, late) == 600.0


def pod(name: str, *conditions: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"conditions": list(conditions)}}


def unschedulable(since: str, message: str | None = "0/3 nodes available") -> dict[str, Any]:
    c = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "lastTransitionTime": since,
    }
    if message is not None:
        c["message"] = message
    return c


def test_unschedulable_within_the_grace_period_is_not_reported() -> None:
    pods = [pod("tgt-0", unschedulable(START))]
    assert unschedulable_message(pods, START_DT + timedelta(seconds=59), 60) is None


def test_unschedulable_past_the_grace_period_names_the_pod_and_the_reason() -> None:
    pods = [pod("tgt-0", {"type": "Ready", "status": "True"}), pod("tgt-1", unschedulable(START))]
    message = unschedulable_message(pods, START_DT + timedelta(seconds=60), 60)
    assert message == "pod tgt-1 cannot be scheduled: 0/3 nodes available"


def test_unschedulable_without_a_message_still_explains() -> None:
    pods = [pod("tgt-0", unschedulable(START, message=None))]
    message = unschedulable_message(pods, START_DT + timedelta(hours=1), 60)
    assert message == "pod tgt-0 cannot be scheduled: no reason given"


@pytest.mark.parametrize(
    "condition",
    [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": START},
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "SchedulerError",
            "lastTransitionTime": START,
        },
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"},
        {
            "type": "Ready",
            "status": "False",
            "reason": "Unschedulable",
            "lastTransitionTime": START,
        },
    ],
    ids=["scheduled", "other-reason", "no-time", "other-type"],
)
def test_only_unschedulable_pods_are_reported(condition: dict[str, Any]) -> None:
    pods = [pod("tgt-0", condition), {"metadata": {"name": "tgt-1"}}]
    assert unschedulable_message(pods, START_DT + timedelta(hours=1), 60) is None


def test_zero_grace_reports_at_once() -> None:
    assert unschedulable_message([pod("tgt-0", unschedulable(START))], START_DT, 0) is not None


def test_a_guarded_write_is_rebased_only_when_spec_and_status_are_unchanged() -> None:
    from clone_operator.engine.loop import decided_on_same_state

    read = {
        "metadata": {"uid": "u", "resourceVersion": "1"},
        "spec": {"cancel": False},
        "status": {},
    }
    finalizer_added = {
        **read,
        "metadata": {"uid": "u", "resourceVersion": "2", "finalizers": ["f"]},
    }
    canceled = {**read, "metadata": {"uid": "u", "resourceVersion": "3"}, "spec": {"cancel": True}}
    moved = {
        **read,
        "metadata": {"uid": "u", "resourceVersion": "4"},
        "status": {"phase": "Pending"},
    }
    deleting = {
        **read,
        "metadata": {"uid": "u", "resourceVersion": "5", "deletionTimestamp": "now"},
    }
    replaced = {**read, "metadata": {"uid": "v", "resourceVersion": "6"}}
    assert decided_on_same_state(read, finalizer_added)
    assert not decided_on_same_state(read, canceled)
    assert not decided_on_same_state(read, moved)
    assert not decided_on_same_state(read, deleting)
    assert not decided_on_same_state(read, replaced)
