"""Leader election decisions (client-go's semantics), on plain data and a fake clock."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from clone_operator.reconcile import leadership
from clone_operator.reconcile.leadership import Record, Seen, Take, Timing, Wait

T = Timing(lease_duration=15, renew_deadline=10, retry_period=2)
WALL = datetime(2026, 11, 24, 12, 0, 0, 123456, tzinfo=UTC)


def held_by(holder: str | None, transitions: int = 0) -> Record:
    return Record(
        holder, 15, "2026-11-24T11:00:00.000000Z", "2026-11-24T11:59:00.000000Z", transitions
    )


def test_the_first_candidate_creates_the_lease() -> None:
    decision = leadership.decide(None, None, "a", now=100, wall=WALL, timing=T)
    assert decision == Take(
        Record("a", 15, "2026-11-24T12:00:00.123456Z", "2026-11-24T12:00:00.123456Z", 0),
        renewing=False,
    )


def test_a_live_lease_of_another_is_waited_for_on_this_candidates_own_clock() -> None:
    current = held_by("b")
    first = leadership.seen(current, None, now=100)
    assert leadership.decide(current, first, "a", now=114.9, wall=WALL, timing=T) == Wait("b")
    # The same record seen again does not restart the clock ...
    again = leadership.seen(current, first, now=110)
    assert again == first
    taken = leadership.decide(current, again, "a", now=115, wall=WALL, timing=T)
    assert isinstance(taken, Take)
    assert (taken.renewing, taken.record.holder, taken.record.transitions) == (False, "a", 1)
    # ... but a renewal by the holder (a new record) does.
    renewed = Record("b", 15, current.acquire_time, "2026-11-24T12:00:01.000000Z", 0)
    later = leadership.seen(renewed, first, now=114)
    assert later == Seen(renewed, 114)
    assert leadership.decide(renewed, later, "a", now=128, wall=WALL, timing=T) == Wait("b")


def test_the_holder_renews_keeping_its_acquire_time_and_transitions() -> None:
    current = held_by("a", transitions=3)
    decision = leadership.decide(current, Seen(current, 0), "a", now=500, wall=WALL, timing=T)
    assert decision == Take(
        Record("a", 15, current.acquire_time, "2026-11-24T12:00:00.123456Z", 3), renewing=True
    )


def test_a_released_lease_is_taken_at_once() -> None:
    released = leadership.released(held_by("b", transitions=2))
    assert (released.holder, released.duration_seconds) == (None, 1)
    decision = leadership.decide(released, Seen(released, 100), "a", now=100, wall=WALL, timing=T)
    assert isinstance(decision, Take)
    assert decision.record.transitions == 3


def test_a_leader_stops_acting_before_anyone_else_may_take_over() -> None:
    renew_started = 1000.0
    assert leadership.may_act(True, renew_started, 1009.99, T)
    assert not leadership.may_act(True, renew_started, 1010, T)  # renew deadline
    assert not leadership.may_act(False, renew_started, 1001, T)
    assert not leadership.may_act(True, None, 1001, T)
    # Another candidate saw the renewal no earlier than it began, and waits a whole lease.
    assert renew_started + T.renew_deadline < renew_started + T.lease_duration


def test_timings_that_could_make_two_leaders_are_refused() -> None:
    with pytest.raises(ValueError, match="renew_deadline < lease_duration"):
        Timing(lease_duration=10, renew_deadline=10)
    with pytest.raises(ValueError, match="retry_period"):
        Timing(retry_period=5, jitter=2.5, renew_deadline=10)


def test_retries_are_jittered_within_bounds() -> None:
    rng = random.Random(7)
    delays = [T.next_try(rng) for _ in range(200)]
    assert min(delays) >= T.retry_period
    assert max(delays) <= T.retry_period * (1 + T.jitter)
    assert len({round(d, 3) for d in delays}) > 100  # spread, not one value


def test_records_read_and_written_as_lease_specs() -> None:
    lease = {"spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "leaseTransitions": 2}}
    record = Record.of(lease)
    assert record == Record("a", 15, None, None, 2)
    assert Record.of(None) is None
    assert Record.of({"spec": {"holderIdentity": ""}}) == Record(None, 15, None, None, 0)
    assert held_by("a").spec()["holderIdentity"] == "a"
