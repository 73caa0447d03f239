"""The run-time bookkeeping of one operator instance: slots, wake-ups, engine tasks,
metrics. Pure ordering logic, checked without a cluster."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from clone_operator.engine.metrics import Metrics
from clone_operator.engine.runtime import Fresh, Runners, Slots, Wakeups, newer

LOG = logging.getLogger("test")


# --- Slots ---------------------------------------------------------------------------------------


NS = "ns"


def test_slots_go_to_the_oldest_waiters_first() -> None:
    slots = Slots(limit=1)
    assert slots.try_take("a", "2024-01-01T00:00:02Z", NS)
    assert not slots.try_take("c", "2024-01-01T00:00:03Z", NS)
    assert not slots.try_take("b", "2024-01-01T00:00:01Z", NS)
    slots.release("a")
    assert not slots.try_take("c", "2024-01-01T00:00:03Z", NS)  # b is older
    assert slots.try_take("b", "2024-01-01T00:00:01Z", NS)
    assert slots.taken == {"b": NS}
    assert slots.waiting == {"c": ("2024-01-01T00:00:03Z", NS)}


def test_equal_creation_times_are_ordered_by_uid() -> None:
    slots = Slots(limit=1)
    slots.occupy("x", NS)
    assert not slots.try_take("b", "T", NS)
    assert not slots.try_take("a", "T", NS)
    slots.release("x")
    assert not slots.try_take("b", "T", NS)  # the free slot goes to a
    assert slots.try_take("a", "T", NS)


def test_taking_a_slot_twice_counts_once() -> None:
    slots = Slots(limit=1)
    assert slots.try_take("a", "T1", NS)
    assert slots.try_take("a", "T1", NS)
    slots.occupy("a", NS)
    assert slots.taken == {"a": NS}


def test_a_release_wakes_every_waiter_and_only_a_real_release() -> None:
    woken: list[str] = []
    slots = Slots(limit=1, on_free=woken.append)
    slots.occupy("a", NS)
    slots.try_take("b", "T1", NS)
    slots.try_take("c", "T2", NS)
    slots.release("b")  # a waiter giving up frees nothing
    assert woken == []
    slots.release("a")
    assert woken == ["c"]
    slots.release("a")
    assert woken == ["c"]


def test_slots_seen_in_progress_at_startup_fill_the_limit() -> None:
    slots = Slots(limit=2)
    slots.occupy("old-1", NS)
    slots.occupy("old-2", NS)
    assert not slots.try_take("new", "T", NS)
    slots.release("old-1")
    assert slots.try_take("new", "T", NS)


# --- Wakeups -------------------------------------------------------------------------------------


async def test_a_poke_before_the_wait_is_not_lost() -> None:
    wakeups = Wakeups()
    wakeups.register("u")
    wakeups.poke("u")  # lands while the engine is busy with a step
    assert await wakeups.wait("u", 5.0) is True
    assert await wakeups.wait("u", 0.01) is True  # still set: only a fresh read clears it
    wakeups.clear("u")  # the engine reads the object anew
    assert await wakeups.wait("u", 0.01) is False


async def test_a_poke_between_registering_and_the_first_read_is_kept() -> None:
    wakeups = Wakeups()
    wakeups.register("u")  # the engine task starts
    wakeups.poke("u")  # an event arrives before it waits
    wakeups.register("u")  # registering again keeps it
    assert await wakeups.wait("u", 0.01) is True


def test_pokes_for_objects_no_engine_follows_keep_nothing() -> None:
    wakeups = Wakeups()
    for n in range(1000):
        wakeups.poke(f"finished-{n}")  # e.g. events of handed-over targets
    assert wakeups.events == {}
    wakeups.register("u")
    wakeups.forget("u")
    wakeups.poke("u")
    assert not wakeups.registered("u")


async def test_a_wait_ends_at_its_deadline_or_at_a_poke() -> None:
    wakeups = Wakeups()
    wakeups.register("other")
    assert await wakeups.wait("u", 0.01) is False
    waiter = asyncio.create_task(wakeups.wait("u", 5.0))
    await asyncio.sleep(0)
    wakeups.poke("other")
    await asyncio.sleep(0)
    assert not waiter.done()
    wakeups.poke("u")
    assert await waiter is True


async def test_a_negative_deadline_returns_at_once() -> None:
    assert await Wakeups().wait("u", -1.0) is False


# --- Runners -------------------------------------------------------------------------------------


async def test_one_task_per_uid_until_it_ends() -> None:
    runners = Runners()
    started: list[int] = []
    release = asyncio.Event()

    async def run() -> None:
        started.append(1)
        await release.wait()

    runners.ensure("u", run, LOG)
    runners.ensure("u", run, LOG)
    await asyncio.sleep(0)
    assert started == [1]
    assert runners.running("u")
    release.set()
    await asyncio.sleep(0.01)
    assert not runners.running("u")
    assert "u" not in runners.tasks
    runners.ensure("u", run, LOG)
    await asyncio.sleep(0.01)
    assert started == [1, 1]


async def test_a_crashed_task_is_started_again(caplog: pytest.LogCaptureFixture) -> None:
    runners = Runners()
    calls: list[int] = []
    done = asyncio.Event()

    async def run() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        done.set()

    with caplog.at_level(logging.ERROR):
        runners.ensure("u", run, LOG)
        await asyncio.wait_for(done.wait(), timeout=5)
    assert len(calls) == 2
    assert "engine for u failed; it starts again in" in caplog.text


async def test_stop_all_cancels_every_task() -> None:
    runners = Runners()
    forever = asyncio.Event()

    async def run() -> None:
        await forever.wait()

    for uid in ("a", "b"):
        runners.ensure(uid, run, LOG)
    await asyncio.sleep(0)
    await runners.stop_all()
    assert not runners.running("a")
    assert not runners.running("b")


# --- Fresh ---------------------------------------------------------------------------------------


def body(version: str, **status: str) -> dict[str, Any]:
    return {"metadata": {"uid": "u", "resourceVersion": version}, "status": status}


def test_our_own_write_wins_over_a_watched_body_and_is_used_once() -> None:
    fresh = Fresh()
    fresh.written("u", body("2", v="ours"))
    fresh.offer("u", body("1", v="watched"))
    assert fresh.take("u") == body("2", v="ours")
    assert fresh.take("u") is None
    fresh.offer("u", body("1", v="watched"))
    fresh.drop("u")
    assert fresh.take("u") is None


def test_the_newest_version_wins_whichever_brought_it() -> None:
    fresh = Fresh()
    fresh.known("u", body("1", phase="Pending"))
    assert fresh.latest("u") == body("1", phase="Pending")
    fresh.written("u", body("3", phase="InProgress"))
    assert fresh.latest("u") == body("3", phase="InProgress")  # ours: the watch is behind
    fresh.known("u", body("2", phase="Pending"))  # an older event arriving late
    assert fresh.latest("u") == body("3", phase="InProgress")
    fresh.known("u", body("12", phase="InProgress", cancel="someone else"))  # 12 > 3
    assert fresh.latest("u") == body("12", phase="InProgress", cancel="someone else")
    fresh.known("u", body("9", phase="Succeeded"))  # a shorter version is older
    assert fresh.latest("u") == body("12", phase="InProgress", cancel="someone else")


def test_versions_that_cannot_be_compared_mean_a_read() -> None:
    for odd in ("abc", "007", "", "\uff11\uff12"):
        fresh = Fresh()
        fresh.known("u", body("5"))
        fresh.known("u", body(odd))
        assert fresh.latest("u") is None, odd


def test_newer_compares_as_kep_5504_says() -> None:
    assert newer(body("10"), body("9")) is True
    assert newer(body("9"), body("10")) is False
    assert newer(body("10"), body("10")) is False
    assert newer(body("10"), body("x")) is None


def test_a_deadline_or_a_deletion_distrusts_the_watch_and_forget_leaves_nothing() -> None:
    fresh = Fresh()
    fresh.known("u", body("1"))
    fresh.distrust("u")
    assert fresh.latest("u") is None
    fresh.written("u", body("2"))
    fresh.known("u", body("2"))
    fresh.forget("u")
    assert (fresh.bodies, fresh.newest) == ({}, {})


def test_kept_bodies_leave_managed_fields_out() -> None:
    fresh = Fresh()
    watched = body("1")
    watched["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    fresh.known("u", watched)
    assert fresh.latest("u") == body("1")
    assert "managedFields" in watched["metadata"]  # the event's own body is not changed


# --- Metrics -------------------------------------------------------------------------------------


def test_two_instances_keep_their_own_metrics() -> None:
    one, two = Metrics(lambda: {"GET": 3}), Metrics(lambda: {})
    one.finished("CloningOperation", "Succeeded", "2024-01-01T00:00:00Z")
    one.track("CloneObject", "u", {"state": "Pending"})
    one.track("CloningOperation", "v", {"phase": "Succeeded"})
    first, second = one.exposition().decode(), two.exposition().decode()
    assert (
        'clone_operator_operations_total{kind="CloningOperation",outcome="Succeeded"} 1.0' in first
    )
    assert (
        'clone_operator_operations_total{kind="CloningOperation",outcome="Succeeded"} 0.0' in second
    )
    assert 'clone_operator_operations_in_flight{kind="CloneObject"} 1.0' in first
    assert 'clone_operator_operations_in_flight{kind="CloningOperation"} 0.0' in first
    assert 'clone_operator_api_requests_total{method="GET"} 3.0' in first
    assert "clone_operator_api_requests_total{" not in second
    assert "process_resident_memory_bytes" in first
    assert "_created" not in first


def test_the_ready_to_done_delay_counts_from_the_watch_event_only() -> None:
    metrics = Metrics(lambda: {})
    metrics.done_after_ready("CloningOperation", time.monotonic() - 3.0)
    metrics.done_after_ready("CloningOperation", None)  # read ready by the engine itself
    text = metrics.exposition().decode()
    kind = 'kind="CloningOperation"'
    assert f"clone_operator_ready_to_done_seconds_count{{{kind}}} 1.0" in text
    assert f'clone_operator_ready_to_done_seconds_bucket{{{kind},le="2.0"}} 0.0' in text
    assert f'clone_operator_ready_to_done_seconds_bucket{{{kind},le="5.0"}} 1.0' in text
    assert 'clone_operator_ready_to_done_seconds_count{kind="CloneObject"} 0.0' in text


def test_retries_are_counted_by_kind_and_a_bounded_reason() -> None:
    metrics = Metrics(lambda: {})
    metrics.retried("CloneObject", "server_error")
    metrics.retried("CloneObject", "server_error")
    metrics.retried("CloningOperation", "anything a caller makes up")  # never a new series
    text = metrics.exposition().decode()
    series = [
        line for line in text.splitlines() if line.startswith("clone_operator_retries_total{")
    ]
    assert len(series) == 2 * 7  # every kind and reason from the start, nothing more
    assert 'clone_operator_retries_total{kind="CloneObject",reason="server_error"} 2.0' in text
    assert 'clone_operator_retries_total{kind="CloningOperation",reason="permanent"} 1.0' in text


# --- Request counts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "expected"),
    [
        ("GET", "/apis/apps/v1/namespaces/x/statefulsets/a", "GET statefulsets"),
        ("GET", "/api/v1/namespaces/x/pods?labelSelector=a%3Db", "LIST pods"),
        (
            "PATCH",
            "/apis/cloning.dev/v1alpha1/namespaces/n/cloningoperations/op/status",
            "PATCH cloningoperations/status",
        ),
        ("POST", "/apis/coordination.k8s.io/v1/namespaces/n/leases", "POST leases"),
        ("GET", "/api/v1/nodes", "LIST nodes"),
        ("DELETE", "/api/v1/persistentvolumes/pv-1", "DELETE persistentvolumes"),
    ],
)
def test_requests_are_counted_by_method_and_resource_without_names(
    method: str, url: str, expected: str
) -> None:
    from clone_operator.k8s.api import what_is_asked

    assert what_is_asked(method, url) == expected
