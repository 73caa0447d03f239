"""Leader election on a coordination.k8s.io Lease: the decisions, no I/O.

The semantics are client-go's elector. A candidate never trusts the clocks of
others: it times a holder's lease from when *it* first saw the current record
(its own monotonic clock), so clock skew between machines cannot make two
leaders. A leader stops acting `renew_deadline` after the start of its last
successful renewal, which is shorter than the `lease_duration` any other
candidate must wait after seeing that renewal: the old leader has stopped
before a new one may start.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Timing:
    """How long a lease lasts, how soon a leader gives up, how often candidates try."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    jitter: float = 1.2

    def __post_init__(self) -> None:
        if not 0 < self.retry_period * self.jitter < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election needs retry_period * jitter < renew_deadline < lease_duration; "
                f"got {self.retry_period} * {self.jitter}, {self.renew_deadline}, "
                f"{self.lease_duration}"
            )

    def next_try(self, rng: random.Random) -> float:
        """Seconds to the next attempt: retry_period, spread by up to `jitter` of itself."""
        return self.retry_period * (1 + rng.random() * self.jitter)


@dataclass(frozen=True)
class Record:
    """The Lease's spec, as the elector reads and writes it."""

    holder: str | None = None
    duration_seconds: int = 15
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0

    @classmethod
    def of(cls, lease: dict[str, object] | None) -> Record | None:
        if lease is None:
            return None
        spec = lease.get("spec")
        spec = spec if isinstance(spec, dict) else {}
        return cls(
            holder=spec.get("holderIdentity") or None,
            duration_seconds=int(spec.get("leaseDurationSeconds") or 15),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def spec(self) -> dict[str, object]:
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.duration_seconds,
            "acquireTime": self.acquire_time,
            "renewTime": self.renew_time,
            "leaseTransitions": self.transitions,
        }


@dataclass(frozen=True)
class Seen:
    """A record as this candidate last saw it, and when (its own monotonic clock)."""

    record: Record
    at: float


@dataclass(frozen=True)
class Take:
    """Write `record` (create it, or replace the read one): acquire or renew."""

    record: Record
    renewing: bool


@dataclass(frozen=True)
class Wait:
    """Someone else holds a live lease."""

    holder: str


Decision = Take | Wait


def micro_time(wall: datetime) -> str:
    """A Lease's MicroTime: RFC 3339 in UTC with microseconds."""
    return wall.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def seen(current: Record | None, before: Seen | None, now: float) -> Seen | None:
    """What this candidate has seen: a changed record restarts its own clock."""
    if current is None:
        return None
    if before is not None and before.record == current:
        return before
    return Seen(current, now)


def decide(
    current: Record | None,
    observed: Seen | None,
    me: str,
    now: float,
    wall: datetime,
    timing: Timing,
) -> Decision:
    """Acquire, renew, or wait, given the Lease as read (None: there is none yet)."""
    stamp = micro_time(wall)
    duration = max(1, round(timing.lease_duration))
    if current is None:
        return Take(Record(me, duration, stamp, stamp, 0), renewing=False)
    mine = current.holder == me
    if not mine and current.holder is not None:
        expires = (observed.at if observed else now) + current.duration_seconds
        if now < expires:
            return Wait(current.holder)
    if mine:
        return Take(
            Record(me, duration, current.acquire_time or stamp, stamp, current.transitions),
            renewing=True,
        )
    return Take(Record(me, duration, stamp, stamp, current.transitions + 1), renewing=False)


def released(current: Record) -> Record:
    """What a leader writes when it steps down: nobody holds it, anyone may take it now."""
    return Record(None, 1, current.acquire_time, current.renew_time, current.transitions)


def may_act(leading: bool, renew_started: float | None, now: float, timing: Timing) -> bool:
    """Whether a leader may still write: it stops renew_deadline after its last renewal
    began, even when it could not notice (paused, partitioned) — checked before each write."""
    return leading and renew_started is not None and now - renew_started < timing.renew_deadline
