"""The CloningOperation state machine: next steps, transitions, timestamps and progress."""

from __future__ import annotations

from typing import Any

import pytest

from clone_operator.api.cloningoperations import CloningOperationStatus, Phase
from clone_operator.reconcile.clusters import Readiness
from clone_operator.reconcile.conditions import Reason
from clone_operator.reconcile.operations import (
    Resolution,
    Step,
    Transition,
    apply,
    next_step,
    progress,
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
    (Phase.SUCCEEDED, False): Step.FINISH,
    (Phase.SUCCEEDED, True): Step.FINISH,
    (Phase.FAILED, False): Step.FINISH,
    (Phase.FAILED, True): Step.FINISH,
    (Phase.CANCELED, False): Step.FINISH,
    (Phase.CANCELED, True): Step.FINISH,
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
    assert status.phase is terminal.to


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
    resolution = Resolution(
        target_cluster="search-clone-abcde",
        server_version="28.0",
        source_region="us-east-1",
        target_region="eu-west-1",
        replicas=3,
    )
    status = apply(CloningOperationStatus(), STARTED, T0, 2, resolution)
    assert status.target_cluster == "search-clone-abcde"
    assert status.server_version == "28.0"
    assert (status.source_region, status.target_region) == ("us-east-1", "eu-west-1")
    assert (status.ready_replicas, status.replicas, status.ready) == (0, 3, "0/3")
    assert status.observed_generation == 2
    assert Resolution.recorded(status) == resolution


def test_success_records_the_final_readiness() -> None:
    status = apply(walk((STARTED, T0)), SUCCEEDED, T1, 1, readiness=Readiness(3, 3, True))
    assert (status.ready_replicas, status.replicas, status.ready) == (3, 3, "3/3")


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
    updated = progress(status, Readiness(1, 3, False), T1)
    assert updated is not None
    assert (updated.ready_replicas, updated.replicas, updated.ready) == (1, 3, "1/3")
    assert updated.updated_at == T1
    assert updated.message == "target tgt: 1/3 replicas ready"
    assert updated.phase is Phase.IN_PROGRESS


def test_progress_returns_none_when_nothing_changed() -> None:
    status = walk((STARTED, T0))
    once = progress(status, Readiness(2, 3, False), T1)
    assert once is not None
    assert progress(once, Readiness(2, 3, False), T2) is None
    assert progress(once, Readiness(3, 3, True), T2) is not None
    assert progress(once, Readiness(2, 4, False), T2) is not None


def test_progress_says_what_the_target_waits_for_without_writing_back_and_forth() -> None:
    status = walk((STARTED, T0)).model_copy(update={"target_cluster": "tgt"})
    first = progress(status, Readiness(0, 1, False), T1)
    assert first is not None
    waiting = progress(first, Readiness(0, 1, False), T2, "waiting for volumes")
    assert waiting is not None
    assert waiting.message == "target tgt: 0/1 replicas ready; waiting for volumes"
    # Between pod checks (no note) the message stays; a look that finds nothing clears it.
    assert progress(waiting, Readiness(0, 1, False), T3) is None
    assert progress(waiting, Readiness(0, 1, False), T3, "waiting for volumes") is None
    cleared = progress(waiting, Readiness(0, 1, False), T3, "")
    assert cleared is not None
    assert cleared.message == "target tgt: 0/1 replicas ready"
    # New readiness: the old note no longer applies.
    moved_on = progress(waiting, Readiness(1, 2, False), T3)
    assert moved_on is not None
    assert moved_on.message == "target tgt: 1/2 replicas ready"


def test_progress_from_zero_is_a_change() -> None:
    assert progress(walk((STARTED, T0)), Readiness(0, 3, False), T1) is not None


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


# --- resolve -------------------------------------------------------------------------------------


def test_resolve_fills_the_defaults_from_the_source() -> None:
    from clone_operator.api.cloningoperations import CloningOperationSpec
    from clone_operator.reconcile.operations import resolve
    from clone_operator.reconcile.regions import RegionTable
    from tests.unit import factories

    regions = RegionTable(node_regions=frozenset({"us-east-1", "us-west-2"}), aliases={})
    spec = CloningOperationSpec(source_cluster="search")
    source, service = factories.source_statefulset(), factories.source_service()
    resolved = resolve(spec, factories.OWNER, source, service, "us-east-1", regions)
    assert resolved == Resolution(
        target_cluster="search-clone-0a1b2",
        server_version="27.1",
        source_region="us-east-1",
        target_region="us-east-1",
        replicas=3,
    )
    asked = spec.model_copy(update={"server_version": "28.0", "target_region": "us-west-2"})
    resolved = resolve(asked, factories.OWNER, source, service, "us-east-1", regions)
    assert (resolved.server_version, resolved.target_region) == ("28.0", "us-west-2")


def test_resolve_refuses_what_cannot_work() -> None:
    from clone_operator.api.cloningoperations import CloningOperationSpec
    from clone_operator.builders.clusters import BuildError
    from clone_operator.reconcile.operations import resolve
    from clone_operator.reconcile.regions import RegionTable, UnknownRegion
    from tests.unit import factories

    regions = RegionTable(node_regions=frozenset({"us-east-1"}), aliases={})
    source, service = factories.source_statefulset(), factories.source_service()
    with pytest.raises(UnknownRegion):
        resolve(
            CloningOperationSpec(source_cluster="search", target_region="mars-1"),
            factories.OWNER, source, service, None, regions,
        )  # fmt: skip
    with pytest.raises(BuildError, match="no container 'db'"):
        resolve(
            CloningOperationSpec(source_cluster="search", server_container="db"),
            factories.OWNER, source, service, None, regions,
        )  # fmt: skip
    loose = factories.source_statefulset()
    loose["spec"]["selector"] = {
        "matchExpressions": [{"key": "canary", "operator": "DoesNotExist"}]
    }
    with pytest.raises(BuildError, match="StatefulSet's selector would select"):
        resolve(
            CloningOperationSpec(source_cluster="search"),
            factories.OWNER, loose, service, None, regions,
        )  # fmt: skip


# --- the per-source lock's holder --------------------------------------------------------------


def holder(uid: str, phase: str | None) -> dict[str, Any]:
    return {"metadata": {"name": "first", "uid": uid}, "status": {"phase": phase} if phase else {}}


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        (holder("h", None), Phase.PENDING),  # not admitted yet: it holds the lock
        (holder("h", "Pending"), Phase.PENDING),
        (holder("h", "InProgress"), Phase.IN_PROGRESS),
        (holder("h", "Succeeded"), None),  # finished: the lock is stale
        (holder("h", "Failed"), None),
        (holder("h", "Canceled"), None),
        (holder("other", "InProgress"), None),  # the name made anew: not the holder
        (None, None),  # gone
    ],
)
def test_a_lock_is_held_only_by_that_very_operation_while_it_is_not_terminal(
    found: dict[str, Any] | None, expected: Phase | None
) -> None:
    from clone_operator.reconcile.operations import lock_holder_phase

    assert lock_holder_phase(found, "h") is expected


def test_another_active_operation_fails_the_newcomer_naming_the_holder() -> None:
    from clone_operator.reconcile.operations import another_active

    failed = another_active("first", Phase.IN_PROGRESS, "search")
    assert (failed.to, failed.reason, failed.warning) == (
        Phase.FAILED,
        Reason.ANOTHER_OPERATION_ACTIVE,
        True,
    )
    assert failed.message.startswith(
        "operation first is already InProgress for source cluster search; only one operation"
    )
