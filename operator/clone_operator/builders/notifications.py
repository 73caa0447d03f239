"""The outcome email of a CloningOperation: pure, from the object to the message.

One message per recipient (each its own SMTP transaction, so that one rejected
address does not hold back the others). The Message-ID is derived from the
operation's uid, its outcome and the recipient: a message that would ever be
transferred twice (see `clone_operator.services.delivery`) carries the same
Message-ID, which mail systems use to recognise duplicates.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import format_datetime

from clone_operator.api.cloningoperations import (
    CloningOperationSpec,
    CloningOperationStatus,
    Phase,
)
from clone_operator.api.common import parse_rfc3339

# CRLF line ends; headers are not folded before the RFC 5322 hard limit (998), so a long
# subject is not split in front of its first word (which some readers show as a blank).
WIRE = email_policy.SMTP.clone(max_line_length=998)

_VERB = {
    Phase.SUCCEEDED: "succeeded",
    Phase.FAILED: "failed",
    Phase.CANCELED: "was canceled",
}


@dataclass(frozen=True)
class Outcome:
    """What a notification tells: one terminal CloningOperation."""

    namespace: str
    name: str
    uid: str
    source: str
    phase: Phase
    target: str | None = None
    reason: str | None = None
    message: str | None = None
    server_version: str | None = None
    source_region: str | None = None
    target_region: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None

    @classmethod
    def of(
        cls, metadata: dict[str, str], spec: CloningOperationSpec, status: CloningOperationStatus
    ) -> Outcome:
        if status.phase is None or not status.phase.terminal:
            raise ValueError(f"operation phase {status.phase} is not terminal: nothing to tell")
        return cls(
            namespace=metadata["namespace"],
            name=metadata["name"],
            uid=metadata["uid"],
            source=spec.source_cluster,
            phase=status.phase,
            target=status.target_cluster or spec.target_name,
            reason=status.reason,
            message=status.message,
            server_version=status.server_version,
            source_region=status.source_region,
            target_region=status.target_region,
            created_at=status.created_at or metadata.get("creationTimestamp"),
            started_at=status.started_at,
            completed_at=status.completed_at,
        )


def subject(outcome: Outcome) -> str:
    """One line, ASCII: `[clone-operator] CloningOperation ns/name succeeded: src -> target`."""
    target = f" -> {outcome.target}" if outcome.target else ""
    return (
        f"[clone-operator] CloningOperation {outcome.namespace}/{outcome.name} "
        f"{_VERB[outcome.phase]}: {outcome.source}{target}"
    )


def body(outcome: Outcome) -> str:
    """Plain text: what happened, why, and where to look."""
    lines = [
        f"The CloningOperation {outcome.namespace}/{outcome.name} {_VERB[outcome.phase]}.",
        "",
        f"Outcome:         {outcome.phase.value}",
        f"Reason:          {outcome.reason or '-'}",
        f"Message:         {outcome.message or '-'}",
        "",
        f"Operation:       {outcome.namespace}/{outcome.name} (uid {outcome.uid})",
        f"Source cluster:  {outcome.namespace}/{outcome.source}",
        f"Target cluster:  {f'{outcome.namespace}/{outcome.target}' if outcome.target else '-'}",
    ]
    if outcome.server_version:
        lines.append(f"Server version:  {outcome.server_version}")
    if outcome.source_region or outcome.target_region:
        lines.append(
            f"Regions:         {outcome.source_region or '-'} -> {outcome.target_region or '-'}"
        )
    lines += [
        "",
        f"Created at:      {outcome.created_at or '-'}",
        f"Started at:      {outcome.started_at or '-'}",
        f"Completed at:    {outcome.completed_at or '-'}",
        "",
        "Details:",
        f"  kubectl describe cloningoperation {outcome.name} -n {outcome.namespace}",
    ]
    if outcome.phase is Phase.SUCCEEDED and outcome.target:
        lines.append(f"  kubectl get statefulset {outcome.target} -n {outcome.namespace}")
    lines += ["", "-- ", "Sent by clone-operator. This is an automated message; do not reply."]
    return "\n".join(lines) + "\n"


def message_id(outcome: Outcome, recipient: str, domain: str) -> str:
    """The same for every transfer of this outcome to this recipient."""
    digest = hashlib.sha256(recipient.lower().encode()).hexdigest()[:16]
    return f"<{outcome.uid}.{outcome.phase.value.lower()}.{digest}@{domain}>"


def build_message(outcome: Outcome, sender: str, recipient: str, date: str) -> EmailMessage:
    """The full message for one recipient. `date` is RFC 3339 (`...Z`): the send time."""
    msg = EmailMessage(policy=WIRE)
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = subject(outcome)
    msg["Date"] = format_datetime(parse_rfc3339(date))
    domain = sender.rpartition("@")[2] or "clone-operator.invalid"
    msg["Message-ID"] = message_id(outcome, recipient, domain)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    msg["X-Cloning-Operation"] = f"{outcome.namespace}/{outcome.name}"
    msg["X-Cloning-Operation-UID"] = outcome.uid
    msg["X-Cloning-Outcome"] = outcome.phase.value
    text = body(outcome)
    # 7-bit clean on the wire (no 8BITMIME needed): quoted-printable only when needed.
    msg.set_content(text, cte="7bit" if text.isascii() else "quoted-printable")
    return msg
