"""What the data mover's output says about a transfer: bytes done and total, the rate,
attempts. Pure: it reads the text of the source pod's log (rsync's
`--info=progress2` and `--stats`, and the lines `mover/mover.sh` adds).

rsync rewrites its progress line with carriage returns; a log holds many. The last
complete one is the state. `total` is rsync's own once its statistics are printed
(the transfer ended); before that it is derived from the percentage rsync prints
over the whole transfer (`--no-inc-recursive`: the file list is complete first).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
