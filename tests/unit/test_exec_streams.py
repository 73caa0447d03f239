"""The pods/exec stream: exit status from the status channel, hostile output capped."""

from __future__ import annotations

import json

from clone_operator.kube import streams


def frames(*pairs: tuple[int, bytes]) -> streams.Output:
    out = streams.Output()
    for channel, data in pairs:
        out.add(bytes([channel]) + data)
    return out


def status(body: object) -> tuple[int, bytes]:
    return (streams.STATUS, json.dumps(body).encode())


def test_success_is_exit_zero_with_the_output() -> None:
    out = frames((1, b"flushed "), (1, b"42 docs"), (2, b"warn"), status({"status": "Success"}))
    result = streams.result(out)
    assert (result.exit_code, result.stdout, result.stderr, result.ok) == (
        0,
        "flushed 42 docs",
        "warn",
        True,
    )


def test_a_non_zero_exit_code_comes_from_the_status_causes() -> None:
    failure = {
        "status": "Failure",
        "reason": "NonZeroExitCode",
        "message": "command terminated with non-zero exit code: exit status 3",
        "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
    }
    result = streams.result(frames((2, b"disk full\n"), status(failure)))
    assert (result.exit_code, result.ok) == (3, False)
    assert result.describe() == "exit code 3: disk full"


def test_an_exec_the_runtime_refused_has_no_exit_code_but_its_message() -> None:
    failure = {"status": "Failure", "message": 'executable file not found: "curlx"'}
    result = streams.result(frames(status(failure)))
    assert result.exit_code is None
    assert result.describe() == 'executable file not found: "curlx"'


def test_no_status_a_timeout_and_garbage_are_failures_never_success() -> None:
    assert streams.result(frames((1, b"hi"))).error == "the stream ended without an exit status"
    assert streams.result(frames(), timed_out=30).describe() == "no exit within 30 s"
    assert streams.result(frames((3, b"{not json"))).exit_code is None
    assert streams.result(frames((3, b"[1, 2]"))).exit_code is None
    bad_code = {
        "status": "Failure",
        "details": {"causes": [{"reason": "ExitCode", "message": "x"}]},
    }
    assert streams.result(frames(status(bad_code))).exit_code is None


def test_hostile_output_is_capped_and_counted() -> None:
    chunk = b"A" * 10_000
    out = frames(*[(1, chunk)] * 100, *[(2, chunk)] * 3, (7, b"unknown channel"), (255, b"\x01"))
    assert len(out.stdout) == streams.KEPT_BYTES
    assert len(out.stderr) == streams.KEPT_BYTES
    assert out.total[streams.STDOUT] == 1_000_000
    text = streams.result(out).stdout
    assert text.endswith(f"… ({1_000_000 - streams.KEPT_BYTES} more bytes)")
    flood = frames((3, b"{" + b" " * (streams.STATUS_BYTES + 10)))
    assert streams.result(flood).error == "the status channel sent more than a status"
    out.add(b"")  # an empty message is ignored


def test_the_request_names_each_argument_and_the_container() -> None:
    query = streams.exec_query(["sh", "-c", "echo a&b=c"], "db")
    assert query == (
        "command=sh&command=-c&command=echo%20a%26b%3Dc&container=db"
        "&stdout=true&stderr=true&stdin=false&tty=false"
    )
    assert "container" not in streams.exec_query(["true"], None)
    assert streams.exec_path("a b", "p/0") == "/api/v1/namespaces/a%20b/pods/p%2F0/exec"
