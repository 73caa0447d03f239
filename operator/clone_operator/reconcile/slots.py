"""The InProgress slots' rules: who may take a slot now, and why a waiter waits. Pure.

Every whole-cluster clone holds a slot while InProgress (`maxInProgress`), no namespace
more than its share (`maxInProgressPerNamespace`), handed out oldest first.
`services.runtime.Slots` keeps the count; the decisions are here; the waiter's status
(reason WaitingForSlot) is each state machine's `waiting`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping


def admitted(
    waiting: Mapping[str, tuple[str, str]], taken: Mapping[str, str], limit: int, share: int
) -> set[str]:
    """The waiters (uid → (creationTimestamp, namespace)) that may take a slot now: the
    oldest first, across namespaces, skipping those whose namespace holds its `share`,
    while any of the `limit` slots is free (`taken`: uid → namespace)."""
    free = limit - len(taken)
    if free <= 0:
        return set()
    held = Counter(taken.values())
    chosen: set[str] = set()
    for uid in sorted(waiting, key=lambda u: (waiting[u][0], u)):
        namespace = waiting[uid][1]
        if held[namespace] >= share:
            continue
        held[namespace] += 1
        chosen.add(uid)
        if len(chosen) == free:
            break
    return chosen


def why_waiting(taken: Mapping[str, str], namespace: str, limit: int, share: int) -> str:
    """Why a waiter of `namespace` has no slot yet: the message of its WaitingForSlot."""
    if len(taken) >= limit:
        return (
            f"waiting for a slot: all {limit} are taken by clones InProgress "
            "(operator setting maxInProgress)"
        )
    if sum(1 for ns in taken.values() if ns == namespace) >= share:
        return (
            f"waiting for a slot: namespace {namespace} holds {share} of the "
            f"{limit} already, its share (operator setting maxInProgressPerNamespace)"
        )
    return "waiting for a slot: older clones are waiting too"
