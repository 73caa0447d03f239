"""What an engine step's error means (retry or fail), and the backoff between retries.
Pure decisions: engine.failures."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from clone_operator.engine.context import Context
from clone_operator.engine.failures import Permanent, Transient, classify, describe
from clone_operator.engine.loop import ObjectLog, recover
from clone_operator.k8s.api import (
    JSON,
    ApiError,
    Conflict,
    Invalid,
    Kube,
    NotFound,
    UnknownKind,
    path,
    what_is_asked,
)
from clone_operator.reconcile.conditions import Reason
from clone_operator.services.metrics import Metrics
from clone_operator.services.retries import RETRY_REASONS, Backoff
from clone_operator.settings import Settings


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


# --- recover: what the engine loop does with an error ---------------------------------------------


def context() -> Context:
    kube = Kube(api=None)  # type: ignore[arg-type]  # recover sends no request itself
    return Context(kube=kube, settings=Settings(), emit=lambda *_: None, metrics=Metrics(dict))


class Recorded:
    """A GiveUp that records what it was asked to write."""

    def __init__(self, writes: bool) -> None:
        self.writes = writes
        self.calls: list[tuple[Reason, str]] = []

    async def __call__(self, _body: JSON, reason: Reason, message: str, _log: ObjectLog) -> bool:
        self.calls.append((reason, message))
        return self.writes


LOG = ObjectLog(logging.getLogger("test.recover"), {"namespace": "ns", "name": "x"})
BODY: JSON = {"metadata": {"uid": "u"}}


def raised(error: Exception) -> Exception:
    try:
        raise error
    except Exception as e:  # with its traceback, as the loop has it
        return e


async def test_an_internal_error_fails_the_resource_and_logs_its_traceback_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ctx, give_up = context(), Recorded(writes=True)
    with caplog.at_level(logging.DEBUG):
        wait = await recover(
            ctx, "CloneObject", "u", BODY, raised(KeyError("x")), Backoff(), LOG, give_up
        )
    assert wait == 0  # at once: the next step finishes the Failed resource
    assert [reason for reason, _ in give_up.calls] == [Reason.INTERNAL_ERROR]
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert error.getMessage() == "ns/x: internal error: KeyError: 'x'"
    assert error.exc_info is not None
    text = ctx.metrics.exposition().decode()
    assert 'clone_operator_reconcile_errors_total{kind="CloneObject"} 1.0' in text


async def test_a_refusal_is_one_warning_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    give_up = Recorded(writes=True)
    with caplog.at_level(logging.INFO):
        await recover(
            context(), "CloneObject", "u", BODY, raised(api_error(403)), Backoff(), LOG, give_up
        )
    assert [reason for reason, _ in give_up.calls] == [Reason.API_REFUSED]
    assert [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records] == [
        ("WARNING", "ns/x: cannot go on: POST configmaps: 403 Some: no", None)
    ]


async def test_a_transient_error_waits_out_its_backoff_and_is_counted() -> None:
    ctx, give_up = context(), Recorded(writes=True)
    backoff = Backoff(first=0.01, draw=lambda _low, high: high)
    ctx.fresh.known("u", {"metadata": {"uid": "u", "resourceVersion": "5"}})
    for _ in range(3):
        await recover(ctx, "CloningOperation", "u", BODY, api_error(503), backoff, LOG, give_up)
    assert give_up.calls == []
    assert backoff.attempts == 3
    assert ctx.fresh.latest("u") is None  # the next read goes to the API server
    text = ctx.metrics.exposition().decode()
    assert 'clone_operator_retries_total{kind="CloningOperation",reason="server_error"} 3.0' in text


async def test_a_resource_that_cannot_be_failed_is_retried_with_backoff() -> None:
    ctx, give_up = context(), Recorded(writes=False)  # e.g. terminal already
    backoff = Backoff(first=0.01)
    await recover(ctx, "CloneObject", "u", BODY, api_error(403), backoff, LOG, give_up)
    assert len(give_up.calls) == 1
    assert backoff.attempts == 1
    text = ctx.metrics.exposition().decode()
    assert 'clone_operator_retries_total{kind="CloneObject",reason="permanent"} 1.0' in text


# --- fail: one for both front doors -------------------------------------------------------------


def door_body(kind: str, status: JSON) -> JSON:
    meta = {"name": "x", "namespace": "ns", "uid": "u", "generation": 2}
    spec = (
        {"sourceCluster": "search"}
        if kind == "CloningOperation"
        else {"source": {"kind": "Secret", "name": "s"}}
    )
    return {"apiVersion": "cloning.dev/v1alpha1", "kind": kind, "metadata": meta, "spec": spec,
            "status": status}  # fmt: skip


async def test_both_front_doors_fail_by_the_same_transition_each_in_its_own_status() -> None:
    from clone_operator.api.cloneobjects import State
    from clone_operator.api.cloningoperations import Phase
    from clone_operator.engine.objects import CloneObject
    from clone_operator.engine.operations import Operation
    from clone_operator.reconcile import objects as object_rules
    from clone_operator.reconcile import operations as operation_rules
    from clone_operator.reconcile.conditions import Transition

    now = "2026-01-01T00:00:00Z"
    op = Operation.parse(door_body("CloningOperation", {"phase": "InProgress"}))
    obj = CloneObject.parse(door_body("CloneObject", {"state": "Pending"}))
    assert (op.stage, op.failed, obj.stage, obj.failed) == (
        Phase.IN_PROGRESS,
        Phase.FAILED,
        State.PENDING,
        State.FAILED,
    )
    to_op = Transition(op.failed, Reason.TIMEOUT, "too slow")
    to_obj = Transition(obj.failed, Reason.TIMEOUT, "too slow")
    assert op.after(to_op, now) == operation_rules.apply(op.status, to_op, now, 2)
    assert obj.after(to_obj, now) == object_rules.apply(obj.status, to_obj, now, 2)
    assert op.after(to_op, now).phase is Phase.FAILED
    assert obj.after(to_obj, now).error_messages == ["too slow"]


async def test_a_terminal_resource_is_not_failed_again_and_nothing_is_sent() -> None:
    from clone_operator.engine.loop import give_up
    from clone_operator.engine.operations import Operation

    ctx = context()  # its Kube has no connection: a request would raise
    done = Operation.parse(door_body("CloningOperation", {"phase": "Succeeded"}))
    assert not await give_up(ctx, done, LOG, Reason.INTERNAL_ERROR, "late")
    assert ctx.kube.requests == {}
