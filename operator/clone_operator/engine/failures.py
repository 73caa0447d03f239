"""What an engine step's error means: retry later, or fail the resource. Pure.

An error a step did not handle itself is either

* **transient**, a retry may succeed: the API server or the network is busy or
  down (5xx, 429, 408, connection errors, timeouts), a conflict with a concurrent
  write (409), or our credentials were refused (401: a token being rotated is no
  fault of the resource). Retried with exponential backoff and jitter (`Backoff`),
  counted in `clone_operator_retries_total{kind,reason}`;
* **permanent**, the same input gives the same error: the API server refused a
  request (any other 4xx, e.g. 403 exceeded quota, 404, a 400/422 a step did not
  expect), the operator was asked for a kind it does not write, or an internal
  error (KeyError, TypeError, ValueError ... from pure code: a bug, or an input
  nobody foresaw). The resource ends Failed with `ApiRefused` or `InternalError`.

Never a crash loop: a resource's engine retries at most every `Backoff.cap` seconds.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

import aiohttp

from clone_operator.k8s.api import ApiError, UnknownKind
from clone_operator.reconcile.conditions import Reason

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
MESSAGE_MAX = 1024
"""An API server's message quoted in a status at most this long."""


@dataclass(frozen=True)
class Transient:
    """Retry after a backoff; `reason` is one of RETRY_REASONS."""

    reason: str


@dataclass(frozen=True)
class Permanent:
    """Fail the resource with `reason` and `message` (for users: never an object's body);
    `internal` (a bug) is logged with its traceback."""

    reason: Reason
    message: str
    internal: bool = False


def classify(error: Exception, kind: str) -> Transient | Permanent:
    """Transient or permanent, and why (`kind`: the resource's, for the message)."""
    if isinstance(error, ApiError):
        status = error.status
        if status >= 500 or status == 0:
            return Transient("server_error")
        if status == 429:
            return Transient("throttled")
        if status == 409:
            return Transient("conflict")
        if status == 408:
            return Transient("timeout")
        if status == 401:
            return Transient("unauthorized")
        return Permanent(Reason.API_REFUSED, refused_message(error, kind))
    if isinstance(error, TimeoutError):
        return Transient("timeout")
    if isinstance(error, (OSError, aiohttp.ClientError)):
        return Transient("connection")
    if isinstance(error, UnknownKind):
        return Permanent(
            Reason.API_REFUSED, f"{error}; nothing was written. Create a new {kind} without it."
        )
    return Permanent(
        Reason.INTERNAL_ERROR,
        f"the operator met an internal error ({type(error).__name__}) on this {kind} and "
        "stopped working on it: please report it with the operator's log of this time. "
        f"Create a new {kind} to try again.",
        internal=True,
    )


def refused_message(error: ApiError, kind: str) -> str:
    """`the API server refused POST configmaps (403 Forbidden): <its message>`."""
    try:
        phrase = HTTPStatus(error.status).phrase
    except ValueError:
        phrase = error.reason
    what = f" {error.request}" if error.request else " a request"
    said = error.message
    if len(said) > MESSAGE_MAX:
        said = said[: MESSAGE_MAX - 3] + "..."
    return (
        f"the API server refused{what} ({error.status} {phrase}): {said}. Retrying cannot "
        f"help: fix the cause and create a new {kind}."
    )


def describe(error: Exception) -> str:
    """One line for the log: what failed and how (an API server's message shortened)."""
    if isinstance(error, ApiError):
        said = error.message if len(error.message) <= 300 else error.message[:297] + "..."
        return f"{error.request or 'a request'}: {error.status} {error.reason}: {said}"
    text = str(error)
    return f"{type(error).__name__}: {text if len(text) <= 300 else text[:297] + '...'}"


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
