"""Outcome emails: the message (builders.notifications) and the delivery decisions
(reconcile.notifications), plus the JSON log format. Pure: no SMTP, no API."""

from __future__ import annotations

import email
import json
import logging
import sys
from datetime import UTC, datetime, timedelta
from email import policy as email_policy

import pytest

from clone_operator.api.cloningoperations import (
    CloningOperationSpec,
    CloningOperationStatus,
    Notification,
    NotificationState,
    Phase,
)
from clone_operator.builders.notifications import Outcome, body, build_message, subject
from clone_operator.logs import JsonFormatter
from clone_operator.reconcile import notifications as decide
from clone_operator.reconcile.notifications import Policy

META = {"namespace": "shop", "name": "clone-search", "uid": "0a1b2c3d-4e5f"}
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
POLICY = Policy(max_attempts=3, backoff_seconds=2, max_backoff_seconds=5)


def outcome(phase: Phase = Phase.SUCCEEDED, **status: object) -> Outcome:
    spec = CloningOperationSpec(
        source_cluster="search", notification_email_addresses=["a@example.com"]
    )
    values: dict[str, object] = {
        "phase": phase,
        "target_cluster": "search-clone-0a1b2c",
        "reason": "TargetReady",
        "message": "target cluster search-clone-0a1b2c is ready (3/3)",
        "created_at": "2026-03-01T11:50:00Z",
        "started_at": "2026-03-01T11:50:01Z",
        "completed_at": "2026-03-01T11:58:30Z",
        "server_version": "27.1",
        "source_region": "us-east-1",
        "target_region": "us-west-2",
        **status,
    }
    return Outcome.of(META, spec, CloningOperationStatus(**values))  # type: ignore[arg-type]


# --- the message ---------------------------------------------------------------------------


def test_subject_names_operation_outcome_source_and_target() -> None:
    assert subject(outcome()) == (
        "[clone-operator] CloningOperation shop/clone-search succeeded: "
        "search -> search-clone-0a1b2c"
    )
    assert "failed" in subject(outcome(Phase.FAILED))
    assert "was canceled" in subject(outcome(Phase.CANCELED, target_cluster=None))
    assert subject(outcome(Phase.CANCELED, target_cluster=None)).endswith(": search")


def test_body_has_every_fact_a_recipient_needs() -> None:
    text = body(outcome())
    for fact in (
        "The CloningOperation shop/clone-search succeeded.",
        "Outcome:         Succeeded",
        "Reason:          TargetReady",
        "Message:         target cluster search-clone-0a1b2c is ready (3/3)",
        "Source cluster:  shop/search",
        "Target cluster:  shop/search-clone-0a1b2c",
        "Server version:  27.1",
        "Regions:         us-east-1 -> us-west-2",
        "Created at:      2026-03-01T11:50:00Z",
        "Started at:      2026-03-01T11:50:01Z",
        "Completed at:    2026-03-01T11:58:30Z",
        "kubectl describe cloningoperation clone-search -n shop",
        "kubectl get statefulset search-clone-0a1b2c -n shop",
    ):
        assert fact in text


def test_failure_body_carries_reason_and_message() -> None:
    text = body(
        outcome(
            Phase.FAILED,
            target_cluster=None,
            started_at=None,
            reason="SourceNotFound",
            message="source StatefulSet shop/nope does not exist",
        )
    )
    assert "Outcome:         Failed" in text
    assert "Reason:          SourceNotFound" in text
    assert "Message:         source StatefulSet shop/nope does not exist" in text
    assert "Target cluster:  -" in text
    assert "Started at:      -" in text
    assert "kubectl get statefulset" not in text


def test_outcome_refuses_a_phase_that_is_not_terminal() -> None:
    spec = CloningOperationSpec(source_cluster="search")
    with pytest.raises(ValueError, match="not terminal"):
        Outcome.of(META, spec, CloningOperationStatus(phase=Phase.IN_PROGRESS))


def test_created_at_falls_back_to_the_creation_timestamp() -> None:
    spec = CloningOperationSpec(source_cluster="search")
    got = Outcome.of(
        {**META, "creationTimestamp": "2026-03-01T11:00:00Z"},
        spec,
        CloningOperationStatus(phase=Phase.FAILED),
    )
    assert got.created_at == "2026-03-01T11:00:00Z"


def test_message_headers_and_stable_message_id() -> None:
    o = outcome()
    msg = build_message(o, "Clone Bot <bot@ops.example>", "a@example.com", "2026-03-01T12:00:00Z")
    assert msg["From"] == "Clone Bot <bot@ops.example>"
    assert msg["To"] == "a@example.com"
    assert msg["Subject"] == subject(o)
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Cloning-Outcome"] == "Succeeded"
    assert msg["X-Cloning-Operation"] == "shop/clone-search"
    assert msg["Date"] == "Sun, 01 Mar 2026 12:00:00 +0000"
    assert msg["Message-ID"].startswith("<0a1b2c3d-4e5f.succeeded.")
    assert msg["Message-ID"].endswith("@ops.example>")
    # Same outcome and recipient: same Message-ID, whenever it is built; another recipient: not.
    again = build_message(o, "bot@ops.example", "A@Example.com", "2026-03-02T00:00:00Z")
    assert again["Message-ID"] == msg["Message-ID"]
    other = build_message(o, "bot@ops.example", "b@example.com", "2026-03-01T12:00:00Z")
    assert other["Message-ID"] != msg["Message-ID"]


def test_message_survives_the_wire() -> None:
    msg = build_message(
        outcome(message='quotes " and ü and a\nnewline'),
        "bot@ops.example",
        "a@example.com",
        "2026-03-01T12:00:00Z",
    )
    wire = msg.as_bytes()
    assert b"\r\n" in wire
    assert wire.isascii()  # 7-bit clean: quoted-printable for the non-ASCII message
    parsed = email.message_from_bytes(wire, policy=email_policy.default)
    assert parsed["Subject"] == msg["Subject"]
    content = parsed.get_body().get_content()  # type: ignore[union-attr]
    assert 'quotes " and ü and a' in content


# --- delivery decisions ----------------------------------------------------------------------


def entry(address: str = "a@example.com", **kw: object) -> Notification:
    return Notification(address=address, **kw)  # type: ignore[arg-type]


def test_resume_adds_one_pending_entry_per_address_in_spec_order() -> None:
    got = decide.resume(["b@x.io", "a@x.io", "b@x.io"], [], POLICY)
    assert [(e.address, e.state) for e in got] == [
        ("b@x.io", NotificationState.PENDING),
        ("a@x.io", NotificationState.PENDING),
    ]


def test_resume_keeps_what_the_status_recorded() -> None:
    sent = entry("a@x.io", state=NotificationState.SENT, attempts=1, sent_at="2026-01-01T00:00:00Z")
    retrying = entry("b@x.io", attempts=2, next_attempt_at="2026-01-01T00:01:00Z")
    assert decide.resume(["a@x.io", "b@x.io"], [sent, retrying], POLICY) == [sent, retrying]


def test_resume_never_resends_a_claimed_entry() -> None:
    claimed = entry(state=NotificationState.SENDING, attempts=1)
    [got] = decide.resume(["a@example.com"], [claimed], POLICY)
    assert got.state is NotificationState.UNCONFIRMED
    assert got.attempts == 1
    assert "not sent again" in (got.last_error or "")
    assert decide.settled(["a@example.com"], [got])


def test_without_smtp_every_recipient_is_disabled_and_settled() -> None:
    off = Policy(enabled=False)
    got = decide.resume(["a@x.io", "b@x.io"], [entry("b@x.io", attempts=1)], off)
    assert {e.state for e in got} == {NotificationState.DISABLED}
    assert all("CLONE_OPERATOR_SMTP_HOST" in (e.last_error or "") for e in got)
    assert decide.settled(["a@x.io", "b@x.io"], got)
    # A recipient already Sent stays Sent.
    done = entry("a@x.io", state=NotificationState.SENT, sent_at="2026-01-01T00:00:00Z")
    assert decide.resume(["a@x.io"], [done], off) == [done]


def test_settled_needs_a_final_entry_for_every_address() -> None:
    sent = entry("a@x.io", state=NotificationState.SENT)
    assert decide.settled([], [])
    assert not decide.settled(["a@x.io", "b@x.io"], [sent])
    assert not decide.settled(["a@x.io"], [entry("a@x.io")])
    assert not decide.settled(["a@x.io"], [entry("a@x.io", state=NotificationState.SENDING)])
    for state in ("Sent", "Failed", "Unconfirmed", "Disabled"):
        assert decide.settled(["a@x.io"], [entry("a@x.io", state=NotificationState(state))])


def test_due_and_wait() -> None:
    later = decide.rfc3339(NOW + timedelta(seconds=30))
    entries = [
        entry("now@x.io"),
        entry("later@x.io", next_attempt_at=later),
        entry("past@x.io", next_attempt_at=decide.rfc3339(NOW - timedelta(seconds=1))),
        entry("sent@x.io", state=NotificationState.SENT),
    ]
    assert decide.due(entries, NOW) == ["now@x.io", "past@x.io"]
    assert decide.seconds_until_due(entries, NOW) == 0.0
    assert decide.seconds_until_due(entries[1:2], NOW) == 30.0
    assert decide.seconds_until_due(entries[3:], NOW) is None


def test_claim_then_sent() -> None:
    claimed = decide.claimed(entry(attempts=1, last_error="x"), NOW)
    assert claimed.state is NotificationState.SENDING
    assert (claimed.attempts, claimed.last_attempt_at) == (2, "2026-03-01T12:00:00Z")
    done = decide.sent(claimed, NOW + timedelta(seconds=1))
    assert done.state is NotificationState.SENT
    assert done.sent_at == "2026-03-01T12:00:01Z"
    assert done.attempts == 2
    assert done.last_error is None


def test_transient_failure_backs_off_exponentially_then_gives_up() -> None:
    e = entry()
    e = decide.failed(e, "SMTPConnectError: refused", False, NOW, POLICY)
    assert (e.state, e.attempts) == (NotificationState.PENDING, 1)
    assert e.next_attempt_at == "2026-03-01T12:00:02Z"  # 2 s
    e = decide.failed(e, "SMTP 451: try later", False, NOW, POLICY)
    assert (e.state, e.attempts, e.next_attempt_at) == (
        NotificationState.PENDING,
        2,
        "2026-03-01T12:00:04Z",  # 4 s
    )
    assert e.last_error == "SMTP 451: try later"
    e = decide.failed(e, "SMTP 451: try later", False, NOW, POLICY)
    assert (e.state, e.attempts, e.next_attempt_at) == (NotificationState.FAILED, 3, None)
    assert e.last_error == "gave up after 3 attempts: SMTP 451: try later"


def test_backoff_is_capped() -> None:
    assert [decide.backoff(n, POLICY) for n in (1, 2, 3, 4, 50, 5000)] == [2, 4, 5, 5, 5, 5]


def test_permanent_rejection_fails_at_once() -> None:
    e = decide.failed(entry(), "SMTP 550: no such user", True, NOW, POLICY)
    assert (e.state, e.attempts) == (NotificationState.FAILED, 1)
    assert e.last_error == "rejected: SMTP 550: no such user"


def test_failure_after_a_claim_does_not_count_the_attempt_twice() -> None:
    claimed = decide.claimed(entry(attempts=1), NOW)
    e = decide.failed(claimed, "SMTP 452: mailbox full", False, NOW + timedelta(seconds=9), POLICY)
    assert (e.state, e.attempts, e.last_attempt_at) == (
        NotificationState.PENDING,
        2,
        "2026-03-01T12:00:00Z",
    )


def test_error_text_is_bounded_and_one_line() -> None:
    e = decide.failed(entry(), "line\n" * 1000, False, NOW, POLICY)
    assert "\n" not in (e.last_error or "")
    assert len(e.last_error or "") <= decide.MAX_ERROR
    assert Notification.model_validate(e.wire()) == e  # within the CRD's maxLength


def test_reply_codes() -> None:
    assert decide.permanent(550)
    assert decide.permanent(554)
    assert not decide.permanent(450)
    assert not decide.permanent(421)
    assert not decide.permanent(None)


def test_status_wire_shape() -> None:
    status = CloningOperationStatus(
        phase=Phase.SUCCEEDED,
        notifications=[
            decide.sent(decide.claimed(entry(), NOW), NOW),
            entry("b@x.io", state=NotificationState.DISABLED, last_error="off"),
        ],
    )
    wire = status.wire()["notifications"]
    assert wire[0] == {
        "address": "a@example.com",
        "state": "Sent",
        "attempts": 1,
        "sentAt": "2026-03-01T12:00:00Z",
        "lastAttemptAt": "2026-03-01T12:00:00Z",
    }
    assert wire[1] == {"address": "b@x.io", "state": "Disabled", "attempts": 0, "lastError": "off"}


# --- JSON logs -------------------------------------------------------------------------------


def record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("clone_operator.operations", logging.INFO, __file__, 1, msg, args, None)
    for k, v in extra.items():
        setattr(rec, k, v)
    return rec


def test_json_log_lines_are_json_with_the_object() -> None:
    line = JsonFormatter().format(
        record('%s: said "hi"\nand left', "x", object_namespace="shop", object_name="op-1")
    )
    data = json.loads(line)
    assert data["message"] == 'x: said "hi"\nand left'
    assert (data["namespace"], data["name"], data["level"]) == ("shop", "op-1", "INFO")
    assert data["logger"] == "clone_operator.operations"
    assert "\n" not in line


def test_json_log_lines_take_kopfs_object_reference_and_exceptions() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        rec = record(
            "handler failed", k8s_ref={"kind": "CloneObject", "namespace": "a", "name": "b"}
        )
        rec.exc_info = sys.exc_info()
    data = json.loads(JsonFormatter().format(rec))
    assert (data["kind"], data["namespace"], data["name"]) == ("CloneObject", "a", "b")
    assert "RuntimeError: boom" in data["exception"]


def test_a_long_subject_is_not_folded_in_front_of_its_first_word() -> None:
    long_ns = {**META, "namespace": "t-cb041233", "name": "clone-nothing"}
    spec = CloningOperationSpec(source_cluster="nothing")
    o = Outcome.of(long_ns, spec, CloningOperationStatus(phase=Phase.FAILED))
    wire = build_message(o, "bot@ops.example", "a@x.io", "2026-03-01T12:00:00Z").as_bytes()
    parsed = email.message_from_bytes(wire, policy=email_policy.default)
    assert parsed["Subject"] == subject(o)
    assert parsed["Subject"].startswith("[clone-operator]")
