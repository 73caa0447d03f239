"""Outcome-email delivery decisions: which recipient is due, what an attempt's
result writes into `status.notifications[]`, when to try again. Pure: entries and
times in, entries out; the engine's delivery worker does the SMTP and API I/O.

Per recipient:

    Pending ─(RCPT accepted, claim written)─▶ Sending ─(DATA accepted)─▶ Sent
       ▲  │                                      │
       │  └─(5xx, or attempts exhausted)─▶ Failed ◀┘ (5xx to DATA)
       └────(4xx, connection error: backoff)──────┘
    Sending, found when a worker (re)starts ─▶ Unconfirmed   (never resent)
    no SMTP host configured ─▶ Disabled
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from clone_operator.api.cloningoperations import Notification, NotificationState
from clone_operator.api.common import parse_rfc3339, rfc3339

MAX_ERROR = 1024

DISABLED_MESSAGE = (
    "notifications are disabled: the operator has no SMTP server configured "
    "(operator setting CLONE_OPERATOR_SMTP_HOST)"
)
UNCONFIRMED_MESSAGE = (
    "the operator stopped while this message was being transferred to the SMTP server; "
    "it is not sent again, so that nobody gets it twice (at-most-once delivery)"
)


@dataclass(frozen=True)
class Policy:
    """How hard delivery tries (operator settings)."""

    enabled: bool = True
    max_attempts: int = 8
    backoff_seconds: float = 5.0
    max_backoff_seconds: float = 300.0


def backoff(attempts: int, policy: Policy) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: doubling, capped."""
    exponent = max(attempts - 1, 0)
    return float(min(policy.backoff_seconds * 2.0 ** min(exponent, 32), policy.max_backoff_seconds))


def resume(
    addresses: Iterable[str], entries: list[Notification], policy: Policy
) -> list[Notification]:
    """The entries a starting worker works from: one per address, in spec order.

    New addresses start `Pending` (or `Disabled` when no SMTP server is configured);
    an entry left `Sending` by an earlier worker (the operator stopped mid-transfer)
    becomes `Unconfirmed`: it may have been delivered, and is never sent again.
    """
    by_address = {e.address: e for e in entries}
    out: list[Notification] = []
    for address in dict.fromkeys(addresses):
        entry = by_address.get(address)
        if entry is None:
            if policy.enabled:
                entry = Notification(address=address)
            else:
                entry = Notification(
                    address=address, state=NotificationState.DISABLED, last_error=DISABLED_MESSAGE
                )
        elif entry.state is NotificationState.SENDING:
            entry = entry.model_copy(
                update={
                    "state": NotificationState.UNCONFIRMED,
                    "last_error": UNCONFIRMED_MESSAGE,
                    "next_attempt_at": None,
                }
            )
        elif entry.state is NotificationState.PENDING and not policy.enabled:
            entry = entry.model_copy(
                update={
                    "state": NotificationState.DISABLED,
                    "last_error": DISABLED_MESSAGE,
                    "next_attempt_at": None,
                }
            )
        out.append(entry)
    return out


def settled(addresses: Iterable[str], entries: list[Notification]) -> bool:
    """Every address has an entry in a final state: nothing is left to send."""
    states = {e.address: e.state for e in entries}
    return all(a in states and states[a].final for a in addresses)


def due(entries: list[Notification], now: datetime) -> list[str]:
    """Addresses to try now."""
    return [
        e.address
        for e in entries
        if e.state is NotificationState.PENDING
        and (e.next_attempt_at is None or parse_rfc3339(e.next_attempt_at) <= now)
    ]


def seconds_until_due(entries: list[Notification], now: datetime) -> float | None:
    """How long until the next Pending entry is due; None when none is Pending."""
    waits = [
        max(0.0, (parse_rfc3339(e.next_attempt_at) - now).total_seconds())
        if e.next_attempt_at
        else 0.0
        for e in entries
        if e.state is NotificationState.PENDING
    ]
    return min(waits) if waits else None


def claimed(entry: Notification, now: datetime) -> Notification:
    """The server accepted the recipient; the message is about to be transferred."""
    return entry.model_copy(
        update={
            "state": NotificationState.SENDING,
            "attempts": entry.attempts + 1,
            "last_attempt_at": rfc3339(now),
            "next_attempt_at": None,
        }
    )


def sent(entry: Notification, now: datetime) -> Notification:
    return entry.model_copy(
        update={
            "state": NotificationState.SENT,
            "sent_at": rfc3339(now),
            "next_attempt_at": None,
            "last_error": None,
        }
    )


def failed(
    entry: Notification,
    error: str,
    permanent: bool,
    now: datetime,
    policy: Policy,
) -> Notification:
    """An attempt failed. A claimed (`Sending`) entry counted its attempt already."""
    attempts = entry.attempts if entry.state is NotificationState.SENDING else entry.attempts + 1
    update: dict[str, object] = {
        "attempts": attempts,
        "last_attempt_at": entry.last_attempt_at
        if entry.state is NotificationState.SENDING
        else rfc3339(now),
    }
    if permanent:
        update |= {
            "state": NotificationState.FAILED,
            "next_attempt_at": None,
            "last_error": _trim(f"rejected: {error}"),
        }
    elif attempts >= policy.max_attempts:
        update |= {
            "state": NotificationState.FAILED,
            "next_attempt_at": None,
            "last_error": _trim(f"gave up after {attempts} attempts: {error}"),
        }
    else:
        wait = math.ceil(backoff(attempts, policy))
        update |= {
            "state": NotificationState.PENDING,
            "next_attempt_at": rfc3339(now + timedelta(seconds=wait)),
            "last_error": _trim(error),
        }
    return entry.model_copy(update=update)


def permanent(code: int | None) -> bool:
    """An SMTP reply code that retrying will not change (5xx); 4xx and no reply are transient."""
    return code is not None and 500 <= code <= 599


def replace(entries: list[Notification], entry: Notification) -> list[Notification]:
    return [entry if e.address == entry.address else e for e in entries]


def find(entries: list[Notification], address: str) -> Notification:
    for e in entries:
        if e.address == address:
            return e
    raise KeyError(address)


def _trim(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"
