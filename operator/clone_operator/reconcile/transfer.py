"""What the data mover's output says about a transfer: bytes done and total, the rate,
attempts; and the decisions made of it (a volume's status, a stall). Pure: it reads the text of the source pod's log (rsync's
`--info=progress2` and `--stats`, and the lines `mover/mover.sh` adds).

rsync rewrites its progress line with carriage returns; a log holds many. The last
complete one is the state. `total` is rsync's own once its statistics are printed
(the transfer ended); before that it is derived from the percentage rsync prints
over the whole transfer (`--no-inc-recursive`: the file list is complete first).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clone_operator.api.cloningoperations import TRANSFER_FIELDS, VolumeStatus
from clone_operator.api.common import parse_rfc3339

_PROGRESS = re.compile(
    r"^\s*(?P<done>[\d,.]+)\s+(?P<percent>\d{1,3})%\s+(?P<rate>[\d.,]+)(?P<unit>[kKMGT]?B)/s"
    r"\s+(?P<eta>\d+:\d{2}:\d{2})"
)
_STAT = re.compile(r"^(?P<name>[A-Za-z ]+):\s+(?P<value>[\d,.]+)(?:\s+bytes)?\s*$")
_RESUMED = re.compile(r"^mover: source: attempt (?P<n>\d+) ended")
_UNITS = {"B": 1, "kB": 1024, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


@dataclass(frozen=True)
class Progress:
    bytes_done: int
    """Bytes of the volume that are on the target: sent, or found there already."""
    total: int | None
    percent: int
    rate: int
    """Bytes per second, as rsync measured them last."""
    attempts: int = 1
    literal_bytes: int | None = None
    """After the end: bytes that crossed the wire (a resumed transfer sends less than
    the total)."""
    matched_bytes: int | None = None
    """After the end: bytes the target already held (a resumed transfer's head start)."""
    finished: bool = False


def _number(text: str) -> int:
    return int(float(text.replace(",", "")))


def progress(log: str) -> Progress | None:
    """The transfer's latest state in a source pod's log; None before rsync reported."""
    last = None
    stats: dict[str, int] = {}
    attempts = 1
    for line in re.split(r"[\r\n]+", log):
        if m := _PROGRESS.match(line):
            last = m
            continue
        if m := _RESUMED.match(line):
            attempts = max(attempts, int(m["n"]) + 1)
            stats = {}  # a later attempt's statistics replace an earlier one's
            continue
        if m := _STAT.match(line.strip()):
            stats[m["name"].strip().lower()] = _number(m["value"])
    if last is None and not stats:
        return None
    done = _number(last["done"]) if last else 0
    percent = int(last["percent"]) if last else 0
    rate = int(float(last["rate"].replace(",", "")) * _UNITS[last["unit"]]) if last else 0
    total = stats.get("total file size")
    finished = total is not None
    if total is None and percent > 0:
        total = done * 100 // percent
    if finished:
        done, percent = total or 0, 100
    return Progress(
        bytes_done=done,
        total=total,
        percent=percent,
        rate=rate,
        attempts=attempts,
        literal_bytes=stats.get("literal data"),
        matched_bytes=stats.get("matched data"),
        finished=finished,
    )


def volume_status(
    base: VolumeStatus,
    previous: VolumeStatus | None,
    seen: Progress | None,
    attempts: int,
    transferred: bool,
    now: str,
) -> VolumeStatus:
    """A target volume's status after one look at its transfer: `base` (its cut) with the
    bytes the source pod's log reports (`seen`; None: nothing new to read, the previous
    figures stand), its attempts, and `progressAt` moved to `now` whenever the figures
    changed (the stall rule counts from it)."""
    before = previous or base
    update: dict[str, object] = {
        field: getattr(before, field)
        for field in TRANSFER_FIELDS
        if getattr(before, field) is not None
    }
    if seen is not None:
        update.update(
            bytes_done=seen.bytes_done,
            bytes_total=seen.total if seen.total is not None else before.bytes_total,
            bytes_per_second=seen.rate,
            matched_bytes=seen.matched_bytes,
        )
    update["transfer_attempts"] = max(attempts, before.transfer_attempts or 0, 1)
    update["transferred"] = transferred
    if transferred:
        update["bytes_per_second"] = 0
        if update.get("bytes_total") is not None:
            update["bytes_done"] = update["bytes_total"]
    moved = any(
        update.get(f) != getattr(before, f)
        for f in ("bytes_done", "transfer_attempts", "transferred")
    )
    if moved or before.progress_at is None:
        update["progress_at"] = now
    return base.model_copy(update=update)


def stalled(volume: VolumeStatus, now: datetime, stall_seconds: float) -> bool:
    """Whether a transfer moved nothing for `stall_seconds` (its figures unchanged since
    progressAt)."""
    if volume.transferred or volume.progress_at is None:
        return False
    return (now - parse_rfc3339(volume.progress_at)).total_seconds() >= stall_seconds


def pod_state(pod: Mapping[str, Any] | None) -> str:
    """A mover pod's state in a few words, for a stall's message: its phase, and what
    holds it (an unschedulable pod's reason, a container's waiting reason)."""
    if pod is None:
        return "missing"
    status = pod.get("status") or {}
    words = [str(status.get("phase") or "Pending")]
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            words.append(f"unschedulable: {str(condition.get('message') or '')[:200]}")
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            message = str(waiting.get("message") or "")[:200]
            words.append(f"{waiting['reason']}{f': {message}' if message else ''}")
        if container.get("restartCount"):
            words.append(f"{container['restartCount']} restarts")
    return ", ".join(words)


def restarts(pod: Mapping[str, Any] | None) -> int:
    """How often a pod's containers restarted (each is one more attempt)."""
    statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or []
    return sum(int(c.get("restartCount") or 0) for c in statuses)


def ready(pod: Mapping[str, Any] | None) -> bool:
    """Whether a receiving mover pod listens (its Ready condition: its readiness probe
    reached the port)."""
    conditions = ((pod or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def phase(pod: Mapping[str, Any] | None) -> str | None:
    return ((pod or {}).get("status") or {}).get("phase") if pod is not None else None


def _mib(n: int) -> str:
    return f"{n / 1024**2:.1f}"


def summary(volumes: Iterable[VolumeStatus]) -> str | None:
    """All volumes' transfer as one short text (a printer column), e.g.
    `12.0/60.0 MiB (20%), 8.1 MiB/s`; None when nothing is transferred."""
    moving = [v for v in volumes if v.transferred is not None]
    if not moving:
        return None
    done = sum(v.bytes_done or 0 for v in moving)
    total = sum(v.bytes_total or 0 for v in moving)
    if all(v.transferred for v in moving):
        return f"{_mib(total or done)} MiB, done"
    rate = sum(v.bytes_per_second or 0 for v in moving if not v.transferred)
    percent = f" ({done * 100 // total}%)" if total else ""
    return f"{_mib(done)}/{_mib(total) if total else '?'} MiB{percent}, {_mib(rate)} MiB/s"
