"""The pods/exec stream protocol (`v5.channel.k8s.io`, `v4.channel.k8s.io`): pure, no I/O.

Over the websocket each binary message is one channel byte and its data: 1 stdout,
2 stderr, 3 the status (a metav1.Status in JSON once the command ended: `Success`,
or `Failure` with `NonZeroExitCode` and the exit code as a cause), 255 (v5) a
channel's close. A hook's command is the user's, so its output is hostile: what is
kept of stdout and stderr is capped (`Output`), the rest only counted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
"""What the client offers, newest first; both carry the exit status on channel 3."""

STDOUT, STDERR, STATUS, CLOSE = 1, 2, 3, 255
KEPT_BYTES = 4096
"""What is kept of each of stdout and stderr: enough for a message."""
STATUS_BYTES = 65536
"""The status channel carries one small JSON document: more is refused as hostile."""


@dataclass
class Output:
    """What a command wrote, the first `KEPT_BYTES` of each stream kept."""

    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    status: bytearray = field(default_factory=bytearray)
    total: dict[int, int] = field(default_factory=lambda: {STDOUT: 0, STDERR: 0, STATUS: 0})

    def add(self, message: bytes) -> None:
        """One binary message of the stream; an unknown channel is ignored."""
        if not message:
            return
        channel, data = message[0], message[1:]
        if channel == CLOSE:
            return
        kept = {STDOUT: self.stdout, STDERR: self.stderr, STATUS: self.status}.get(channel)
        if kept is None:
            return
        self.total[channel] += len(data)
        limit = STATUS_BYTES if channel == STATUS else KEPT_BYTES
        room = limit - len(kept)
        if room > 0:
            kept.extend(data[:room])

    def text(self, channel: int) -> str:
        kept = self.stdout if channel == STDOUT else self.stderr
        more = self.total[channel] - len(kept)
        shown = kept.decode("utf-8", errors="replace")
        return f"{shown}… ({more} more bytes)" if more > 0 else shown


@dataclass(frozen=True)
class Result:
    """How a command ended: its exit code (None: not known, see `error`), and what it wrote."""

    exit_code: int | None
    stdout: str
    stderr: str
    error: str | None = None
    """Why there is no exit code, or what the API server said besides it."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.error is None

    def describe(self, limit: int = 512) -> str:
        """One line for an Event or a status message: the exit and the end of stderr."""
        if self.exit_code is None:
            what = self.error or "no exit status"
        else:
            what = f"exit code {self.exit_code}"
        said = (self.stderr.strip() or self.stdout.strip())[-limit:]
        return f"{what}: {said}" if said else what


def result(output: Output, timed_out: float | None = None) -> Result:
    """The command's result from what the stream carried (`timed_out`: the seconds waited
    when the wait ended before the status came)."""
    stdout, stderr = output.text(STDOUT), output.text(STDERR)
    if timed_out is not None:
        return Result(None, stdout, stderr, f"no exit within {timed_out:g} s")
    if output.total[STATUS] > STATUS_BYTES:
        return Result(None, stdout, stderr, "the status channel sent more than a status")
    if not output.status:
        return Result(None, stdout, stderr, "the stream ended without an exit status")
    try:
        status = json.loads(output.status)
    except ValueError:
        return Result(None, stdout, stderr, "the exit status is not JSON")
    if not isinstance(status, dict):
        return Result(None, stdout, stderr, "the exit status is not a Status")
    if status.get("status") == "Success":
        return Result(0, stdout, stderr)
    causes = (status.get("details") or {}).get("causes") or []
    for cause in causes if isinstance(causes, list) else []:
        if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
            try:
                return Result(int(str(cause.get("message"))), stdout, stderr)
            except ValueError:
                break
    message = str(status.get("message") or status.get("reason") or "the command failed")
    return Result(None, stdout, stderr, message[:1024])


def exec_query(command: list[str], container: str | None) -> str:
    """The query string of a pods/exec request: each argument a `command` parameter."""
    params: list[tuple[str, str]] = [("command", c) for c in command]
    if container:
        params.append(("container", container))
    params += [("stdout", "true"), ("stderr", "true"), ("stdin", "false"), ("tty", "false")]
    return urlencode(params, quote_via=quote)


def exec_path(namespace: str, pod: str) -> str:
    return f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}/exec"
