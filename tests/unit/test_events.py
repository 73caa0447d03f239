"""The Events the operator posts about its resources (built as plain data)."""

from __future__ import annotations

import asyncio

from clone_operator.services import events

BODY = {
    "apiVersion": "cloning.dev/v1alpha1",
    "kind": "CloningOperation",
    "metadata": {"name": "op", "namespace": "team-a", "uid": "u-1"},
}


def test_an_event_names_its_object_and_says_who_reports_it() -> None:
    posted = events.event(BODY, "Started", "cloning search", warning=False, instance="pod-1_ab")
    assert posted["involvedObject"] == {
        "apiVersion": "cloning.dev/v1alpha1",
        "kind": "CloningOperation",
        "name": "op",
        "namespace": "team-a",
        "uid": "u-1",
    }
    assert (posted["reason"], posted["message"], posted["type"]) == (
        "Started",
        "cloning search",
        "Normal",
    )
    assert posted["metadata"] == {"generateName": "op-", "namespace": "team-a"}
    assert (posted["reportingComponent"], posted["reportingInstance"]) == (
        "clone-operator",
        "pod-1_ab",
    )


def test_warnings_and_long_messages() -> None:
    posted = events.event(BODY, "Failed", "x" * 5000, warning=True, instance="i")
    assert posted["type"] == "Warning"
    assert len(posted["message"]) == 1024  # the API server refuses longer ones


async def test_the_queue_is_bounded_and_counts_what_it_drops() -> None:
    """An API server that falls behind must not make the operator keep every Event."""
    poster = events.Poster(kube=None)  # type: ignore[arg-type]  # nothing is posted here
    busy = poster.task = asyncio.create_task(asyncio.sleep(3600))  # a poster busy posting
    try:
        for i in range(events.MAX_QUEUED + 5):
            poster.emit(BODY, "Started", f"event {i}", warning=False)
        assert poster.queue.qsize() == events.MAX_QUEUED
        assert poster.dropped == 5
        assert poster.queue.get_nowait()["message"] == "event 0"  # the oldest are kept
    finally:
        busy.cancel()
