"""The rules of following a target cluster, shared by both kinds: readiness, the one
timeout rule, pods that cannot start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from clone_operator.api.common import parse_rfc3339
from clone_operator.reconcile.clusters import (
    Readiness,
    next_pod_check,
    readiness,
    scheduling,
    seconds_left,
    stuck_check_in,
    target_summary,
    unschedulable_message,
    volumes_message,
)


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
def test_readiness(sts: dict[str, Any], expected: tuple[int, int, bool]) -> None:
    assert readiness(sts) == Readiness(*expected)


def test_readiness_without_status() -> None:
    assert readiness({"metadata": {"generation": 1}, "spec": {"replicas": 2}}) == Readiness(
        0, 2, False
    )
    assert str(Readiness(1, 3, False)) == "1/3"


# --- time ----------------------------------------------------------------------------------------

START = "2024-01-01T00:00:00Z"
START_DT = datetime(2024, 1, 1, tzinfo=UTC)


def test_kubernetes_timestamps_are_read() -> None:
    assert parse_rfc3339(START) == START_DT
    assert parse_rfc3339("2024-01-01T00:00:00+00:00") == START_DT


@pytest.mark.parametrize(
    ("elapsed", "expired", "left"),
    [(0, False, 600.0), (599, False, 1.0), (600, True, 0.0), (10_000, True, 0.0)],
)
def test_timeout(elapsed: int, expired: bool, left: float) -> None:
    now = START_DT + timedelta(seconds=elapsed)
    assert (seconds_left(START, 600, now) <= 0) is expired
    assert seconds_left(START, 600, now) == left


def test_a_clone_that_never_started_never_times_out() -> None:
    late = START_DT + timedelta(days=30)
    assert seconds_left(None, 600, late) == 600.0


@pytest.mark.parametrize(
    ("waited", "grace", "expected"), [(0, 60, 60.5), (59.5, 60, 1.0), (60, 60, None), (5, 0, None)]
)
def test_pods_are_looked_at_only_once_they_can_have_been_stuck_that_long(
    waited: float, grace: int, expected: float | None
) -> None:
    assert next_pod_check(waited, grace) == expected


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


# The scheduler's words for a pod whose immediate-binding claims are not bound yet.
UNBOUND = (
    "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: "
    "0/3 nodes are available: 3 Preemption is not helpful for scheduling."
)


def test_a_pod_waiting_for_its_volumes_is_not_stuck_however_long_it_waits() -> None:
    pods = [pod("tgt-0", unschedulable(START, message=UNBOUND))]
    assert unschedulable_message(pods, START_DT + timedelta(hours=1), 60) is None
    assert volumes_message(pods) == (
        "waiting for volumes to be provisioned: pod tgt-0 has PersistentVolumeClaims not bound yet"
    )


def test_waiting_for_volumes_does_not_hide_another_pod_that_no_node_takes() -> None:
    pods = [
        pod("tgt-0", unschedulable(START, message=UNBOUND)),
        pod("tgt-1", unschedulable(START, message="0/3 nodes are available: 3 Insufficient cpu")),
    ]
    message = unschedulable_message(pods, START_DT + timedelta(seconds=60), 60)
    assert message == "pod tgt-1 cannot be scheduled: 0/3 nodes are available: 3 Insufficient cpu"


@pytest.mark.parametrize(
    "pods",
    [
        [],
        [pod("tgt-0", {"type": "PodScheduled", "status": "True", "lastTransitionTime": START})],
        [pod("tgt-0", unschedulable(START))],  # refused by the nodes, not waiting for volumes
        [{"metadata": {"name": "tgt-0"}}],
    ],
    ids=["none", "scheduled", "other-reason", "no-status"],
)
def test_only_pods_held_for_their_volumes_are_said_to_wait_for_them(
    pods: list[dict[str, Any]],
) -> None:
    assert volumes_message(pods) is None


def test_volumes_message_names_every_waiting_pod_in_order() -> None:
    pods = [pod(n, unschedulable(START, message=UNBOUND)) for n in ("tgt-1", "tgt-0")]
    assert volumes_message(pods) == (
        "waiting for volumes to be provisioned: pods tgt-0, tgt-1 have PersistentVolumeClaims "
        "not bound yet"
    )


def test_what_is_kept_of_a_pod_decides_as_the_whole_pod_does() -> None:
    ready = pod("tgt-0", {"type": "Ready", "status": "True", "lastTransitionTime": START})
    ready["spec"] = {"containers": [{"name": "db", "image": "db:1"}]}
    refused = pod("tgt-1", unschedulable(START))
    waiting = pod("tgt-2", unschedulable(START, message=UNBOUND))
    pods = [ready, refused, waiting]
    kept = [scheduling(p) for p in pods]
    assert kept[0] == {"metadata": {"name": "tgt-0"}}  # nothing the rules read
    later = START_DT + timedelta(hours=1)
    assert unschedulable_message(kept, later, 60) == unschedulable_message(pods, later, 60)
    assert volumes_message(kept) == volumes_message(pods)
    assert unschedulable_message(kept, later, 60) is not None


def test_a_refused_pod_is_due_a_look_when_its_grace_ends() -> None:
    pods = [pod("tgt-0", unschedulable(START)), pod("tgt-1", unschedulable(START, UNBOUND))]
    assert stuck_check_in(pods, START_DT + timedelta(seconds=20), 60) == 40.5
    assert stuck_check_in(pods, START_DT + timedelta(seconds=90), 60) == 0.5
    assert stuck_check_in(pods[1:], START_DT, 60) is None  # waits for volumes: events tell
    assert stuck_check_in([{"metadata": {"name": "tgt-0"}}], START_DT, 60) is None


def test_what_is_kept_of_a_target_decides_as_the_whole_statefulset_does() -> None:
    sts = statefulset(3, 2, 4, 4)
    sts["metadata"].update(
        {"name": "t", "namespace": "ns", "uid": "s", "resourceVersion": "7", "labels": {"a": "b"}}
    )
    sts["spec"]["template"] = {"spec": {"containers": [{"name": "db", "image": "db:1"}]}}
    kept = target_summary(sts)
    assert "template" not in kept["spec"]
    assert readiness(kept) == readiness(sts) == Readiness(2, 3, False)
    assert kept["metadata"] == {k: v for k, v in sts["metadata"].items()}
    assert readiness(target_summary(statefulset(None, 1, 1, 1))) == Readiness(1, 1, True)


def test_every_creation_error_fails_the_clone_with_a_reason_a_user_can_act_on() -> None:
    from clone_operator.builders.clusters import BuildError, SourceReferenced
    from clone_operator.kube.errors import Invalid
    from clone_operator.reconcile.clusters import (
        CREATION_ERRORS,
        SourceNotFound,
        TargetExists,
        creation_failure,
    )
    from clone_operator.reconcile.conditions import Reason
    from clone_operator.reconcile.writes import OutsideAdmitted

    referenced = SourceReferenced([])  # a BuildError, named for what the guard found
    cases = [
        (SourceNotFound("gone"), Reason.SOURCE_NOT_FOUND, "gone"),
        (referenced, Reason.SOURCE_REFERENCED, str(referenced)),
        (BuildError("no container db"), Reason.INVALID_SOURCE, "no container db"),
        (TargetExists("taken"), Reason.TARGET_EXISTS, "taken"),
        (OutsideAdmitted("elsewhere"), Reason.OUTSIDE_ADMITTED, "elsewhere"),
        (
            Invalid(422, "Invalid", "spec.replicas: bad"),
            Reason.INVALID_TARGET,
            "the API server refused the target: spec.replicas: bad",
        ),
    ]
    for error, reason, message in cases:
        assert isinstance(error, CREATION_ERRORS)
        assert creation_failure(error) == (reason, message)
