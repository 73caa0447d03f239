"""Outcome emails of CloningOperations: one background worker per terminal operation.

The engine's `finish` step starts the worker once the terminal phase is written
(`start`), and keeps the operation un-finalized — so its engine task alive, also
across restarts — until every recipient is settled. The worker never touches the
phase: it writes only `status.notifications[]`, so delivery cannot change an
outcome, and it runs beside the reconcile loop, never in it.

Delivery guarantee — **at most once per recipient**, decided so that nobody gets
the same outcome twice:

* The status is the record. A recipient whose entry is `Sent` (or in any other
  final state) is never sent again, whoever runs the worker later.
* Before the message itself is transferred (after the SMTP server accepted the
  envelope recipient, before DATA) the worker writes a claim: the entry becomes
  `Sending`, with the attempt counted. Only then does it send DATA, and then it
  writes `Sent` (or the error).
* A worker that starts and finds an entry `Sending` knows the operator stopped
  between the claim and the result: the server may or may not have accepted the
  message. It records `Unconfirmed` and does not resend. The window is the DATA
  transfer of one small message plus one status write; everything that can fail
  before it (connection refused, TLS, AUTH, 4xx/5xx to MAIL or RCPT) is retried
  or recorded safely.
* While the worker itself is alive, a connection lost during DATA is retried, as
  RFC 5321 (§4.1.1.4) asks: without the final reply the message is not
  delivered. Every transfer of one outcome to one recipient carries the same
  Message-ID, which lets mail systems drop a duplicate.

Retries: a transient failure (4xx, connection refused or lost, timeout, a
server-level refusal such as AUTH) leaves the entry `Pending` with
`nextAttemptAt` after an exponential backoff (settings `smtp_retry_seconds`,
doubling up to `smtp_max_retry_seconds`), at most `smtp_max_attempts` attempts,
then `Failed`. A 5xx reply to one recipient (RCPT or DATA) fails that recipient
only; the others are still delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import NoReturn, Protocol

import aiosmtplib

from clone_operator.api.cloningoperations import (
    KIND,
    CloningOperationSpec,
    CloningOperationStatus,
    Notification,
    NotificationState,
)
from clone_operator.api.common import API_VERSION, rfc3339
from clone_operator.builders.notifications import Outcome, build_message
from clone_operator.k8s.api import JSON, ApiError, Conflict, Kube, NotFound, NotLeading
from clone_operator.reconcile import notifications as delivery_rules
from clone_operator.reconcile.notifications import Policy
from clone_operator.services.metrics import Metrics
from clone_operator.services.runtime import Fresh, Wakeups
from clone_operator.settings import Settings, SmtpSecurity

CRASH_PAUSE = 30.0  # a worker that hit a bug waits this long before `finish` starts another
Change = Callable[[Notification], Notification | None]


class Host(Protocol):
    """What delivery needs of the engine's Context (engine.context), and no more: the
    engine imports this service, never the other way round."""

    kube: Kube
    settings: Settings
    metrics: Metrics
    wakeups: Wakeups
    fresh: Fresh
    deliveries: dict[str, asyncio.Task[None]]

    def emit(self, body: JSON, reason: str, message: str, warning: bool) -> None: ...


def policy_of(settings: Settings) -> Policy:
    return Policy(
        enabled=bool(settings.smtp_host),
        max_attempts=settings.smtp_max_attempts,
        backoff_seconds=settings.smtp_retry_seconds,
        max_backoff_seconds=settings.smtp_max_retry_seconds,
    )


def settled(spec: CloningOperationSpec, status: CloningOperationStatus) -> bool:
    return delivery_rules.settled(spec.notification_email_addresses, status.notifications)


def running(ctx: Host, uid: str) -> bool:
    task = ctx.deliveries.get(uid)
    return task is not None and not task.done()


def start(ctx: Host, body: JSON, log: logging.LoggerAdapter[logging.Logger]) -> None:
    """Start the operation's delivery worker unless it runs already; it pokes the
    operation's engine when it ends."""
    meta = body["metadata"]
    uid = str(meta["uid"])
    if running(ctx, uid):
        return
    task = asyncio.create_task(
        _guarded(ctx, str(meta["namespace"]), str(meta["name"]), uid, log),
        name=f"notifications {meta['namespace']}/{meta['name']}",
    )
    ctx.deliveries[uid] = task

    def done(_: asyncio.Task[None]) -> None:
        if ctx.deliveries.get(uid) is task:
            del ctx.deliveries[uid]
        ctx.wakeups.poke(uid)

    task.add_done_callback(done)


async def stop_all(ctx: Host) -> None:
    """Operator shutdown: a worker stopped mid-transfer leaves `Sending` (→ Unconfirmed)."""
    tasks = list(ctx.deliveries.values())
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _guarded(
    ctx: Host, namespace: str, name: str, uid: str, log: logging.LoggerAdapter[logging.Logger]
) -> None:
    try:
        await deliver(ctx, namespace, name, uid, log)
    except asyncio.CancelledError:
        raise
    except NotLeading:  # the new leader's engine starts delivery again: no crash
        log.info("notification delivery stops: this replica no longer leads")
    except Exception:
        log.exception("notification delivery crashed; trying again in %.0f s", CRASH_PAUSE)
        await asyncio.sleep(CRASH_PAUSE)


def _parse(body: JSON) -> tuple[CloningOperationSpec, CloningOperationStatus]:
    return (
        CloningOperationSpec.model_validate(body.get("spec") or {}),
        CloningOperationStatus.model_validate(body.get("status") or {}),
    )


async def deliver(
    ctx: Host, namespace: str, name: str, uid: str, log: logging.LoggerAdapter[logging.Logger]
) -> None:
    """Settle every recipient of one terminal operation, then return."""
    policy = policy_of(ctx.settings)
    resumed = False
    while True:
        body = await _read(ctx, namespace, name, uid)
        if body is None:
            return  # deleted: nobody left to record a delivery on
        spec, status = _parse(body)
        if status.phase is None or not status.phase.terminal:
            return
        addresses = spec.notification_email_addresses
        if not resumed:
            entries = delivery_rules.resume(addresses, status.notifications, policy)
            if entries != status.notifications:
                if await _write(ctx, body, entries) is None:
                    continue  # changed meanwhile: read again
                _settled_now(ctx, body, status.notifications, entries, log)
                resumed = True
                continue
            resumed = True
        if delivery_rules.settled(addresses, status.notifications):
            return
        now = datetime.now(UTC)
        due = delivery_rules.due(status.notifications, now)
        if not due:
            wait = delivery_rules.seconds_until_due(status.notifications, now)
            await asyncio.sleep(min(wait if wait is not None else 1.0, policy.max_backoff_seconds))
            continue
        outcome = Outcome.of(body["metadata"], spec, status)
        await _round(ctx, body, outcome, due, policy, log)


async def _round(
    ctx: Host,
    body: JSON,
    outcome: Outcome,
    due: list[str],
    policy: Policy,
    log: logging.LoggerAdapter[logging.Logger],
) -> None:
    """One SMTP connection, one transaction per due recipient."""
    settings = ctx.settings
    smtp = aiosmtplib.SMTP(
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        use_tls=settings.smtp_security is SmtpSecurity.TLS,
        start_tls=settings.smtp_security is SmtpSecurity.STARTTLS,
        username=settings.smtp_username or None,
        password=settings.smtp_password.get_secret_value() or None,
        timeout=settings.smtp_timeout_seconds,
    )
    try:
        await smtp.connect()
    except (aiosmtplib.SMTPException, OSError) as e:
        # Nothing reached a recipient: a server-level problem, retried for everyone.
        error = f"cannot reach the SMTP server {settings.smtp_host}:{settings.smtp_port}: {_describe(e)}"
        log.info("%s (%d recipients wait)", error, len(due))
        for address in due:
            body_or_none = await _failed(ctx, body, address, error, False, policy, log)
            if body_or_none is None:
                return
            body = body_or_none
        return
    try:
        for address in due:
            next_body = await _send_one(ctx, smtp, body, outcome, address, policy, log)
            if next_body is None:
                return
            body = next_body
    except _ConnectionLost:
        return
    finally:
        if smtp.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await smtp.quit()
        smtp.close()


class _ConnectionLost(Exception):
    pass


async def _send_one(
    ctx: Host,
    smtp: aiosmtplib.SMTP,
    body: JSON,
    outcome: Outcome,
    address: str,
    policy: Policy,
    log: logging.LoggerAdapter[logging.Logger],
) -> JSON | None:
    """MAIL, RCPT, claim, DATA, record. Returns the latest body, None if the object is gone."""
    sender = ctx.settings.smtp_from
    envelope_sender = parseaddr(sender)[1] or sender
    try:
        await smtp.mail(envelope_sender)
        await smtp.rcpt(address)
    except aiosmtplib.SMTPResponseException as e:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await smtp.rset()
        # A 5xx to RCPT is this recipient's; a refusal of MAIL FROM is the server's.
        is_permanent = isinstance(e, aiosmtplib.SMTPRecipientRefused) and delivery_rules.permanent(
            e.code
        )
        return await _failed(ctx, body, address, _describe(e), is_permanent, policy, log)
    except (aiosmtplib.SMTPException, OSError) as e:
        await _connection_lost(ctx, body, address, e, policy, log)

    now = datetime.now(UTC)
    claimed = await _advance(
        ctx, body, address, NotificationState.PENDING, lambda e: delivery_rules.claimed(e, now)
    )
    if claimed is None:  # gone, or no longer ours to send
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await smtp.rset()
        return await _read(ctx, *_ref(body))
    body = claimed
    message = build_message(outcome, sender, address, rfc3339(now))
    try:
        await smtp.data(message.as_bytes())
    except aiosmtplib.SMTPResponseException as e:
        return await _failed(
            ctx, body, address, _describe(e), delivery_rules.permanent(e.code), policy, log
        )
    except (aiosmtplib.SMTPException, OSError) as e:
        # No final reply: not delivered (RFC 5321); retried with the same Message-ID.
        await _connection_lost(ctx, body, address, e, policy, log)
    done = datetime.now(UTC)
    recorded = await _advance(
        ctx, body, address, NotificationState.SENDING, lambda e: delivery_rules.sent(e, done)
    )
    if recorded is not None:
        ctx.metrics.notification_settled(NotificationState.SENT)
        log.info("emailed the %s outcome to %s", outcome.phase, address)
        ctx.emit(
            recorded,
            "NotificationSent",
            f"emailed the {outcome.phase} outcome to {address}",
            False,
        )
    return recorded


async def _connection_lost(
    ctx: Host,
    body: JSON,
    address: str,
    error: BaseException,
    policy: Policy,
    log: logging.LoggerAdapter[logging.Logger],
) -> NoReturn:
    """A transient failure of this recipient's attempt that also ends the connection."""
    await _failed(ctx, body, address, _describe(error), False, policy, log)
    raise _ConnectionLost from error


async def _failed(
    ctx: Host,
    body: JSON,
    address: str,
    error: str,
    is_permanent: bool,
    policy: Policy,
    log: logging.LoggerAdapter[logging.Logger],
) -> JSON | None:
    ctx.metrics.notification_error(is_permanent)
    now = datetime.now(UTC)
    result: list[Notification] = []

    def change(entry: Notification) -> Notification | None:
        if entry.state not in (NotificationState.PENDING, NotificationState.SENDING):
            return None
        result[:] = [delivery_rules.failed(entry, error, is_permanent, now, policy)]
        return result[0]

    new_body = await _update(ctx, body, address, change)
    if new_body is None or not result:
        return new_body
    entry = result[0]
    if entry.state is NotificationState.FAILED:
        ctx.metrics.notification_settled(entry.state)
        log.warning("could not email %s: %s", address, entry.last_error)
        ctx.emit(
            new_body,
            "NotificationFailed",
            f"could not email {address} ({entry.attempts} attempts): {entry.last_error}. "
            "Check the address and the operator's SMTP settings; it is not sent again.",
            True,
        )
    else:
        log.info(
            "email to %s failed (attempt %d), retrying at %s: %s",
            address,
            entry.attempts,
            entry.next_attempt_at,
            error,
        )
    return new_body


def _settled_now(
    ctx: Host,
    body: JSON,
    before: list[Notification],
    after: list[Notification],
    log: logging.LoggerAdapter[logging.Logger],
) -> None:
    """Metrics and Events for entries that `resume` made final (Disabled, Unconfirmed)."""
    old = {e.address: e.state for e in before}
    disabled, unconfirmed = [], []
    for e in after:
        if old.get(e.address) == e.state:
            continue
        ctx.metrics.notification_settled(e.state)
        if e.state is NotificationState.DISABLED:
            disabled.append(e.address)
        elif e.state is NotificationState.UNCONFIRMED:
            unconfirmed.append(e.address)
    if disabled:
        log.info("not emailing %s: %s", ", ".join(disabled), delivery_rules.DISABLED_MESSAGE)
        ctx.emit(
            body,
            "NotificationsDisabled",
            f"not emailing {', '.join(disabled)}: {delivery_rules.DISABLED_MESSAGE}",
            False,
        )
    if unconfirmed:
        log.warning(
            "delivery to %s unconfirmed: %s",
            ", ".join(unconfirmed),
            delivery_rules.UNCONFIRMED_MESSAGE,
        )
        ctx.emit(
            body,
            "NotificationUnconfirmed",
            f"email to {', '.join(unconfirmed)} may not have arrived: {delivery_rules.UNCONFIRMED_MESSAGE}",
            True,
        )


def _ref(body: JSON) -> tuple[str, str, str]:
    meta = body["metadata"]
    return str(meta["namespace"]), str(meta["name"]), str(meta["uid"])


async def _read(ctx: Host, namespace: str, name: str, uid: str) -> JSON | None:
    delay = 1.0
    while True:
        try:
            body = await ctx.kube.get(API_VERSION, KIND, namespace, name)
        except ApiError as e:
            logging.getLogger(__name__).info("reading %s/%s: %s", namespace, name, e.message)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            continue
        if body is None or body["metadata"]["uid"] != uid:
            return None
        return body


async def _write(ctx: Host, body: JSON, entries: list[Notification]) -> JSON | None:
    """Guarded write of status.notifications alone; None on a conflict or when gone."""
    patch = {
        "metadata": {"resourceVersion": body["metadata"]["resourceVersion"]},
        "status": {"notifications": [e.wire() for e in entries]},
    }
    try:
        written = await ctx.kube.merge_patch(body, patch, subresource="status")
    except (Conflict, NotFound):
        return None
    ctx.fresh.known(str(body["metadata"]["uid"]), written)  # newer than what the engine has
    return written


async def _advance(
    ctx: Host,
    body: JSON,
    address: str,
    state: NotificationState,
    change: Callable[[Notification], Notification],
) -> JSON | None:
    """`_update` of an entry that is still in `state` (else nothing is written)."""
    return await _update(
        ctx, body, address, lambda entry: change(entry) if entry.state is state else None
    )


async def _update(ctx: Host, body: JSON, address: str, change: Change) -> JSON | None:
    """Compare-and-set one entry on the latest object: `change` sees the stored entry and
    returns the new one (None: leave it). Returns the new body, None if nothing was written."""
    delay = 0.5
    while True:
        status = CloningOperationStatus.model_validate(body.get("status") or {})
        try:
            entry = delivery_rules.find(status.notifications, address)
        except KeyError:
            return None
        new = change(entry)
        if new is None:
            return None
        try:
            written = await _write(ctx, body, delivery_rules.replace(status.notifications, new))
        except ApiError as e:
            logging.getLogger(__name__).info("status write failed, retrying: %s", e.message)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            written = None
        if written is not None:
            return written
        fresh = await _read(ctx, *_ref(body))
        if fresh is None:
            return None
        body = fresh


def _describe(e: BaseException) -> str:
    if isinstance(e, aiosmtplib.SMTPResponseException):
        return f"SMTP {e.code}: {e.message}"
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
