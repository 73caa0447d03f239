"""Outcome emails, Events, metrics and readiness end to end: the real operator
(process or pod), the real local cluster, and a real SMTP server (aiosmtpd) on
this machine (127.0.0.1, or the real node's bridge address for a pod).

The operator runs with SMTP settings pointing at a port chosen once per session
(tests/e2e/mail.py); each test starts (or, for "server down", does not start) an aiosmtpd
Controller on that port and reads what it received. The monitoring endpoint is
scraped before and after each scenario: the deltas must match what it did.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from clone_operator import __version__
from tests.e2e.clones import source_cluster, status_of, wait_finalized, wait_phase
from tests.e2e.harness import DEFAULT_OPERATOR_ENV, OperatorProcess, crashes
from tests.e2e.kube import Kubectl, wait_for
from tests.e2e.mail import METRICS_ENV, METRICS_PORT, SMTP_ENV, SMTP_PORT, SmtpServer
from tests.e2e.manifests import operation

pytestmark = pytest.mark.e2e

KIND = "CloningOperation"


@pytest.fixture
def smtp(operator_process: OperatorProcess) -> Iterator[SmtpServer]:
    """A real SMTP server on SMTP_PORT where the operator reaches this machine, running,
    with an empty mailbox."""
    server = SmtpServer(SMTP_PORT, host=operator_process.host_address)
    server.start()
    yield server
    server.stop()


def run_operator(proc: OperatorProcess, env: dict[str, str]) -> Iterator[OperatorProcess]:
    """The operator with `env`; fails the test if it logged a crash meanwhile."""
    proc.ensure(env)
    MONITORING["url"] = proc.monitoring_url
    logs = [(proc.log_path, len(proc.log()))]
    yield proc
    proc.log()  # in-cluster: fetch the pod's log
    seen = {path for path, _ in logs}
    if proc.log_path not in seen:  # restarted by the test
        logs.append((proc.log_path, 0))
    for path, offset in logs:
        text = path.read_text(errors="replace")[offset:] if path.exists() else ""
        found = crashes(text)
        assert not found, f"the operator logged errors (see {path}): {found[:3]}"


@pytest.fixture
def notifying(operator_process: OperatorProcess, smtp: SmtpServer) -> Iterator[OperatorProcess]:
    yield from run_operator(operator_process, SMTP_ENV)


# --- metrics ---------------------------------------------------------------------------------


# Where the running operator serves /metrics and /readyz (set by run_operator).
MONITORING = {"url": f"http://127.0.0.1:{METRICS_PORT}"}


def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"{MONITORING['url']}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def metric(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: dict[Any, float], after: dict[Any, float], name: str, **labels: str) -> float:
    return metric(after, name, **labels) - metric(before, name, **labels)


# --- helpers ---------------------------------------------------------------------------------


def notifications_of(kubectl: Kubectl, name: str) -> dict[str, dict[str, Any]]:
    return {n["address"]: n for n in status_of(kubectl, name).get("notifications") or []}


def wait_mail(smtp: SmtpServer, address: str, count: int = 1) -> list[EmailMessage]:
    return wait_for(
        f"{count} message(s) to {address}",
        lambda: (got := smtp.mailbox.to(address)) and len(got) >= count and got,
        timeout=60,
    )


def describe(kubectl: Kubectl, kind: str, name: str) -> str:
    return kubectl("describe", kind, name).stdout


def wait_described(kubectl: Kubectl, kind: str, name: str, *texts: str) -> str:
    def shows() -> str | None:
        out = describe(kubectl, kind, name)
        return out if all(t in out for t in texts) else None

    return wait_for(f"`kubectl describe {kind} {name}` to show {texts}", shows, timeout=30)


# --- the scenarios ---------------------------------------------------------------------------


ADDRESSES = ["dev@example.com", "ops@example.com"]


@dataclass(frozen=True)
class Succeeded:
    """One CloningOperation with two recipients, run until Succeeded and finalized."""

    status: dict[str, Any]
    before: dict[Any, float]
    """The metrics scraped before it was created."""

    @property
    def target(self) -> str:
        return str(self.status["targetCluster"])


@pytest.fixture
def succeeded(kubectl: Kubectl, notifying: OperatorProcess, smtp: SmtpServer) -> Succeeded:
    before = scrape()
    source_cluster(kubectl, "books", replicas=1)
    kubectl.apply(operation("clone-books", "books", notificationEmailAddresses=ADDRESSES))
    wait_for(
        "the in-flight gauge to count the running operation",
        lambda: metric(scrape(), "clone_operator_operations_in_flight", kind=KIND) >= 1,
        timeout=30,
        interval=0.05,
    )
    status = wait_finalized(kubectl, "clone-books", timeout=120)
    assert status["phase"] == "Succeeded"
    return Succeeded(status, before)


def test_the_monitoring_endpoint_answers_ready(notifying: OperatorProcess) -> None:
    with urllib.request.urlopen(f"{MONITORING['url']}/readyz", timeout=10) as r:
        assert (r.status, json.loads(r.read())) == (200, {"ready": True})


def test_success_is_emailed_once_to_each_address(
    kubectl: Kubectl, smtp: SmtpServer, succeeded: Succeeded, namespace: str
) -> None:
    status, target = succeeded.status, succeeded.target
    for address in ADDRESSES:
        [msg] = wait_mail(smtp, address)
        assert msg["To"] == address
        assert msg["From"] == "Clone Operator <clone-operator@ops.example>"
        assert msg["Subject"] == (
            f"[clone-operator] CloningOperation {namespace}/clone-books succeeded: "
            f"books -> {target}"
        )
        assert msg["X-Cloning-Outcome"] == "Succeeded"
        text = msg.get_body().get_content()  # type: ignore[union-attr]
        for fact in (
            f"Operation:       {namespace}/clone-books",
            f"Source cluster:  {namespace}/books",
            f"Target cluster:  {namespace}/{target}",
            "Outcome:         Succeeded",
            "Reason:          TargetReady",
            f"Message:         {status['message']}",
            f"Created at:      {status['createdAt']}",
            f"Started at:      {status['startedAt']}",
            f"Completed at:    {status['completedAt']}",
        ):
            assert fact in text
    # Exactly one message per address, one recipient each.
    assert sorted(rcpts[0] for rcpts, _ in smtp.mailbox.all()) == ADDRESSES
    assert all(len(rcpts) == 1 for rcpts, _ in smtp.mailbox.all())
    entries = notifications_of(kubectl, "clone-books")
    assert {a: (e["state"], e["attempts"]) for a, e in entries.items()} == {
        a: ("Sent", 1) for a in ADDRESSES
    }
    assert all(e["sentAt"] >= status["completedAt"] for e in entries.values())


def test_every_transition_of_a_success_is_an_event(kubectl: Kubectl, succeeded: Succeeded) -> None:
    target = succeeded.target
    wait_described(
        kubectl,
        "cloningoperation",
        "clone-books",
        "Started",
        f"cloning books into {target}",
        "Provisioning",
        f"created target cluster {target}",
        "TargetReady",
        f"target cluster {target} is ready",
        "NotificationSent",
        "emailed the Succeeded outcome to dev@example.com",
        "emailed the Succeeded outcome to ops@example.com",
    )


def test_a_success_is_counted(succeeded: Succeeded) -> None:
    before, after = succeeded.before, scrape()
    outcome = {"kind": KIND, "outcome": "Succeeded"}
    assert delta(before, after, "clone_operator_notifications_total", result="sent") == 2
    assert delta(before, after, "clone_operator_operations_total", **outcome) == 1
    assert delta(before, after, "clone_operator_operation_duration_seconds_count", **outcome) == 1
    assert delta(before, after, "clone_operator_operation_duration_seconds_sum", **outcome) > 0
    assert delta(before, after, "clone_operator_api_requests_total", method="PATCH") >= 4
    assert delta(before, after, "clone_operator_api_requests_total", method="POST") >= 2
    assert metric(after, "clone_operator_operations_in_flight", kind=KIND) == 0
    assert metric(after, "clone_operator_build_info", version=__version__) == 1
    # Exposed (its value depends on whatever else the shared cluster holds).
    assert ("clone_operator_reconcile_errors_total", (("kind", KIND),)) in after


def test_failed_operation_notifies(
    kubectl: Kubectl, notifying: OperatorProcess, smtp: SmtpServer, namespace: str
) -> None:
    before = scrape()
    kubectl.apply(operation("clone-nothing", "nothing", notificationEmailAddresses=["a@x.io"]))
    status = wait_finalized(kubectl, "clone-nothing")
    assert (status["phase"], status["reason"]) == ("Failed", "SourceNotFound")
    [msg] = wait_mail(smtp, "a@x.io")
    assert msg["Subject"] == (
        f"[clone-operator] CloningOperation {namespace}/clone-nothing failed: nothing"
    )
    text = msg.get_body().get_content()  # type: ignore[union-attr]
    assert "Reason:          SourceNotFound" in text
    assert (
        f"Message:         source cluster {namespace}/nothing (a StatefulSet) does not exist"
        in text
    )
    assert status["notifications"][0]["state"] == "Sent"
    wait_described(
        kubectl,
        "cloningoperation",
        "clone-nothing",
        "SourceNotFound",
        f"source cluster {namespace}/nothing (a StatefulSet) does not exist",
        "NotificationSent",
    )
    after = scrape()
    assert delta(before, after, "clone_operator_operations_total", kind=KIND, outcome="Failed") == 1
    assert delta(before, after, "clone_operator_notifications_total", result="sent") == 1


def test_canceled_operation_notifies(
    kubectl: Kubectl, notifying: OperatorProcess, smtp: SmtpServer
) -> None:
    kubectl.apply(
        operation("clone-never", "whatever", cancel=True, notificationEmailAddresses=["c@x.io"])
    )
    status = wait_finalized(kubectl, "clone-never")
    assert status["phase"] == "Canceled"
    [msg] = wait_mail(smtp, "c@x.io")
    assert "was canceled" in msg["Subject"]
    assert status["notifications"][0]["state"] == "Sent"


def test_rejected_recipient_is_recorded_and_the_others_delivered(
    kubectl: Kubectl, notifying: OperatorProcess, smtp: SmtpServer
) -> None:
    smtp.mailbox.reject = {"nobody@x.io"}
    before = scrape()
    kubectl.apply(
        operation(
            "clone-rejected",
            "nothing",
            notificationEmailAddresses=["nobody@x.io", "somebody@x.io"],
        )
    )
    status = wait_finalized(kubectl, "clone-rejected")
    entries = {n["address"]: n for n in status["notifications"]}
    assert entries["nobody@x.io"]["state"] == "Failed"
    assert entries["nobody@x.io"]["attempts"] == 1
    assert "550" in entries["nobody@x.io"]["lastError"]
    assert "no such user" in entries["nobody@x.io"]["lastError"]
    assert "sentAt" not in entries["nobody@x.io"]
    assert entries["somebody@x.io"]["state"] == "Sent"
    wait_mail(smtp, "somebody@x.io")
    assert [rcpts for rcpts, _ in smtp.mailbox.all()] == [["somebody@x.io"]]
    wait_described(
        kubectl, "cloningoperation", "clone-rejected", "NotificationFailed", "could not email"
    )
    after = scrape()
    assert delta(before, after, "clone_operator_notification_errors_total", error="permanent") == 1
    assert delta(before, after, "clone_operator_notifications_total", result="failed") == 1
    assert delta(before, after, "clone_operator_notifications_total", result="sent") == 1


def test_smtp_down_then_up_is_retried_and_delivered_once(
    kubectl: Kubectl, notifying: OperatorProcess, smtp: SmtpServer
) -> None:
    smtp.stop()
    before = scrape()
    kubectl.apply(operation("clone-later", "nothing", notificationEmailAddresses=["late@x.io"]))
    wait_phase(kubectl, "clone-later", {"Failed"})

    def retrying() -> dict[str, Any] | None:
        entry = notifications_of(kubectl, "clone-later").get("late@x.io") or {}
        return entry if entry.get("state") == "Pending" and entry.get("attempts", 0) >= 2 else None

    entry = wait_for("two failed attempts", retrying, timeout=30)
    assert "cannot reach the SMTP server" in entry["lastError"]
    assert entry["nextAttemptAt"]
    assert not status_of(kubectl, "clone-later").get("finalized")  # kept until delivered

    smtp.start()
    status = wait_finalized(kubectl, "clone-later", timeout=60)
    [entry] = status["notifications"]
    assert entry["state"] == "Sent"
    assert entry["attempts"] >= 3
    assert "lastError" not in entry
    # Finalized only once its delivery worker ended, after the server's reply to DATA
    # (and so after the mailbox got the message): nothing more can arrive.
    assert len(smtp.mailbox.to("late@x.io")) == 1
    after = scrape()
    assert delta(before, after, "clone_operator_notification_errors_total", error="transient") >= 2
    assert delta(before, after, "clone_operator_notifications_total", result="sent") == 1


def test_restart_after_delivery_does_not_send_again(
    kubectl: Kubectl, notifying: OperatorProcess, smtp: SmtpServer
) -> None:
    kubectl.apply(operation("clone-once", "nothing", notificationEmailAddresses=["once@x.io"]))
    sent = wait_finalized(kubectl, "clone-once")["notifications"]
    wait_mail(smtp, "once@x.io")
    notifying.kill()
    notifying.start()
    # A finalized operation is not picked up again; another one shows the operator is working.
    kubectl.apply(operation("clone-twice", "nothing", notificationEmailAddresses=["twice@x.io"]))
    wait_finalized(kubectl, "clone-twice")
    # The restarted operator listed clone-once before it saw clone-twice: a resend would
    # have started before this later delivery, and would have been recorded by now.
    wait_mail(smtp, "twice@x.io")
    assert len(smtp.mailbox.to("once@x.io")) == 1
    assert status_of(kubectl, "clone-once")["notifications"] == sent


def test_restart_during_transfer_is_recorded_and_never_resent(
    kubectl: Kubectl, notifying: OperatorProcess, smtp: SmtpServer
) -> None:
    """The at-most-once window: the server holds the message, the operator dies before it
    records `Sent`. After the restart the recipient is `Unconfirmed` and is not sent again."""
    smtp.mailbox.data_delay = 8.0
    kubectl.apply(operation("clone-midway", "nothing", notificationEmailAddresses=["midway@x.io"]))

    def sending() -> bool:
        entry = notifications_of(kubectl, "clone-midway").get("midway@x.io") or {}
        return entry.get("state") == "Sending"

    wait_for("the claim before DATA", sending, timeout=30)
    wait_mail(smtp, "midway@x.io")  # the server has it; its reply is delayed
    notifying.kill()
    smtp.mailbox.data_delay = 0
    notifying.start()
    status = wait_finalized(kubectl, "clone-midway", timeout=60)
    [entry] = status["notifications"]
    assert entry["state"] == "Unconfirmed"
    assert entry["attempts"] == 1
    assert "not sent again" in entry["lastError"]
    # Finalized once the restarted worker ended; its Event comes after the decision.
    wait_described(kubectl, "cloningoperation", "clone-midway", "NotificationUnconfirmed")
    assert len(smtp.mailbox.to("midway@x.io")) == 1


def test_clone_object_transitions_are_described(
    kubectl: Kubectl, notifying: OperatorProcess, namespace: str
) -> None:
    before = scrape()
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings"},
            "data": {"a": "1"},
        }
    )
    kubectl.apply(
        {
            "apiVersion": "cloning.dev/v1alpha1",
            "kind": "CloneObject",
            "metadata": {"name": "copy-settings"},
            "spec": {
                "source": {"kind": "ConfigMap", "name": "settings"},
                "options": {"name": "settings-copy"},
            },
        }
    )
    kubectl.apply(
        {
            "apiVersion": "cloning.dev/v1alpha1",
            "kind": "CloneObject",
            "metadata": {"name": "copy-missing"},
            "spec": {"source": {"kind": "ConfigMap", "name": "missing"}},
        }
    )
    wait_described(
        kubectl,
        "cloneobject",
        "copy-settings",
        "Accepted",
        "Started",
        f"cloning ConfigMap settings into {namespace}/settings-copy",
        "Created",
        f"created ConfigMap {namespace}/settings-copy",
    )
    wait_described(
        kubectl,
        "cloneobject",
        "copy-missing",
        "Warning",
        "SourceNotFound",
        f"source ConfigMap {namespace}/missing does not exist",
    )
    after = scrape()
    kind = "CloneObject"
    assert (
        delta(before, after, "clone_operator_operations_total", kind=kind, outcome="Created") == 1
    )
    assert delta(before, after, "clone_operator_operations_total", kind=kind, outcome="Failed") == 1


def test_without_smtp_notifications_are_disabled_and_nothing_fails(
    kubectl: Kubectl, operator_process: OperatorProcess, namespace: str
) -> None:
    env = {**DEFAULT_OPERATOR_ENV, **METRICS_ENV, "CLONE_OPERATOR_LOG_FORMAT": "json"}
    for proc in run_operator(operator_process, env):
        before = scrape()
        source_cluster(kubectl, "quiet", replicas=1)
        kubectl.apply(
            operation("clone-quiet", "quiet", notificationEmailAddresses=["a@x.io", "b@x.io"])
        )
        status = wait_finalized(kubectl, "clone-quiet", timeout=120)
        assert status["phase"] == "Succeeded"
        assert [(n["address"], n["state"]) for n in status["notifications"]] == [
            ("a@x.io", "Disabled"),
            ("b@x.io", "Disabled"),
        ]
        assert all(
            "no SMTP server configured" in n["lastError"] and n["attempts"] == 0
            for n in status["notifications"]
        )
        wait_described(kubectl, "cloningoperation", "clone-quiet", "NotificationsDisabled")
        after = scrape()
        assert delta(before, after, "clone_operator_notifications_total", result="disabled") == 2
        assert delta(before, after, "clone_operator_notifications_total", result="sent") == 0

        # JSON logs: every line is a JSON object; the engine's lines name the object.
        lines = [json.loads(line) for line in proc.log().splitlines() if line.strip()]
        assert any(line["message"].startswith("clone-operator started") for line in lines)
        ours = [
            line
            for line in lines
            if line.get("namespace") == namespace and line.get("name") == "clone-quiet"
        ]
        assert any("Succeeded" in line["message"] for line in ours)
        assert any("not emailing a@x.io, b@x.io" in line["message"] for line in ours)
