"""What an engine step's error means (retry or fail), and the backoff between retries.
Pure decisions: engine.failures."""

from __future__ import annotations

import aiohttp
import pytest

from clone_operator.engine.failures import (
    RETRY_REASONS,
    Backoff,
    Permanent,
    Transient,
    classify,
    describe,
)
from clone_operator.k8s.api import (
    ApiError,
    Conflict,
    Invalid,
    NotFound,
    UnknownKind,
    path,
    what_is_asked,
)
from clone_operator.reconcile.conditions import Reason


def api_error(status: int, message: str = "no", cls: type[ApiError] = ApiError) -> ApiError:
    return cls(status, "Some", message, "POST configmaps")


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (api_error(500), "server_error"),
        (api_error(503), "server_error"),
        (api_error(504), "server_error"),
        (api_error(429), "throttled"),
        (api_error(409, cls=Conflict), "conflict"),
        (api_error(408), "timeout"),
        (api_error(401), "unauthorized"),
        (TimeoutError(), "timeout"),
        (ConnectionResetError(), "connection"),
        (aiohttp.ServerDisconnectedError(), "connection"),
    ],
)
def test_transient_errors_are_retried(error: Exception, reason: str) -> None:
    assert classify(error, "CloneObject") == Transient(reason)
    assert reason in RETRY_REASONS


@pytest.mark.parametrize(
    "error",
    [
        api_error(403, 'configmaps "x" is forbidden: exceeded quota: q'),
        api_error(404, cls=NotFound),
        api_error(400, cls=Invalid),
        api_error(422, cls=Invalid),
        api_error(413),
    ],
)
def test_api_refusals_fail_the_resource_with_what_the_server_said(error: ApiError) -> None:
    verdict = classify(error, "CloneObject")
    assert isinstance(verdict, Permanent)
    assert verdict.reason is Reason.API_REFUSED
    assert not verdict.internal
    assert verdict.message.startswith(f"the API server refused POST configmaps ({error.status} ")
    assert error.message in verdict.message
    assert verdict.message.endswith("fix the cause and create a new CloneObject.")


def test_a_long_refusal_is_quoted_short() -> None:
    verdict = classify(api_error(403, "x" * 50_000), "CloningOperation")
    assert isinstance(verdict, Permanent)
    assert len(verdict.message) < 1300


def test_an_unknown_kind_is_refused_before_any_request() -> None:
    with pytest.raises(UnknownKind) as raised:
        path("v1", "Nope", "ns")
    verdict = classify(raised.value, "CloneObject")
    assert isinstance(verdict, Permanent)
    assert (verdict.reason, verdict.internal) == (Reason.API_REFUSED, False)
    assert "kind Nope (v1)" in verdict.message


@pytest.mark.parametrize("error", [KeyError("status"), TypeError("x"), ValueError("secret-ish")])
def test_an_internal_error_fails_the_resource_without_its_message(error: Exception) -> None:
    verdict = classify(error, "CloningOperation")
    assert isinstance(verdict, Permanent)
    assert (verdict.reason, verdict.internal) == (Reason.INTERNAL_ERROR, True)
    assert f"({type(error).__name__})" in verdict.message
    # What an exception says may be data (a value that did not parse): only its type.
    assert "secret-ish" not in verdict.message
    assert "status" not in verdict.message


def test_the_log_line_names_the_request_and_is_short() -> None:
    assert describe(api_error(503, "busy")) == "POST configmaps: 503 Some: busy"
    assert len(describe(api_error(500, "y" * 10_000))) < 400
    assert describe(KeyError("k")) == "KeyError: 'k'"


def test_requests_are_named_without_object_names() -> None:
    assert what_is_asked("POST", "/api/v1/namespaces/a/configmaps") == "POST configmaps"


def test_backoff_doubles_from_one_second_up_to_five_minutes_with_jitter() -> None:
    whole = Backoff(draw=lambda _low, high: high)
    assert [whole.next() for _ in range(12)] == [
        1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300
    ]  # fmt: skip
    half = Backoff(draw=lambda low, _high: low)
    assert [half.next() for _ in range(3)] == [0.5, 1, 2]


def test_backoff_starts_over_after_a_success() -> None:
    backoff = Backoff(draw=lambda _low, high: high)
    for _ in range(5):
        backoff.next()
    backoff.reset()
    assert backoff.next() == 1


def test_backoff_jitter_stays_in_its_step_and_spreads() -> None:
    drawn = [Backoff(attempts=3).next() for _ in range(200)]
    assert all(4 <= d <= 8 for d in drawn)
    assert len(set(drawn)) > 100


def test_backoff_never_overflows() -> None:
    assert Backoff(attempts=10_000, draw=lambda _low, high: high).next() == 300
