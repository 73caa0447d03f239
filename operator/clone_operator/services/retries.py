"""How retries are paced and counted: the backoff of a resource's engine task and the
bounded `reason` label of `clone_operator_retries_total`. Pure, no I/O.

Owns no decision about an error (that is `engine.failures`): only the timing.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

RETRY_REASONS = (
    "server_error",
    "throttled",
    "conflict",
    "unauthorized",
    "connection",
    "timeout",
    "permanent",
)
"""The `reason` label of `clone_operator_retries_total`, bounded: one per transient class,
and `permanent` for an error that cannot fail its resource (a finished one's cleanup)."""


@dataclass
class Backoff:
    """Exponential backoff with jitter: `first`, then twice as long each time up to `cap`;
    each delay is drawn in [half, whole] of its step (retries of many resources spread
    out instead of arriving together). `reset` after a success."""

    first: float = 1.0
    cap: float = 300.0
    attempts: int = 0
    draw: Callable[[float, float], float] = random.uniform

    def next(self) -> float:
        step = min(self.cap, self.first * 2 ** min(self.attempts, 32))
        self.attempts += 1
        return self.draw(step / 2, step)

    def reset(self) -> None:
        self.attempts = 0
