"""The gateway's bounds, driven through the ASGI interface itself (no sockets): a body
over the limit never reaches the application, and metric labels stay a fixed set."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from clone_operator.gateway.limits import BodyLimit, method_label
from clone_operator.gateway.metrics import Metrics

LIMIT = 1024


class Recorder:
    """The wrapped application: records whether it ran and the body it was given."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        self.bodies.append(message["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def chunks(*parts: bytes) -> tuple[Receive, list[int]]:
    """A client streaming `parts` (chunked: no Content-Length); counts the reads."""
    reads = [0]

    async def receive() -> Message:
        index = reads[0]
        reads[0] += 1
        if index >= len(parts):
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": parts[index], "more_body": index < len(parts) - 1}

    return receive, reads


async def call(
    parts: tuple[bytes, ...], headers: list[tuple[bytes, bytes]] | None = None
) -> tuple[Recorder, list[Message], int, list[tuple[str, int]]]:
    app, sent, refused = Recorder(), [], []

    async def send(message: Message) -> None:
        sent.append(message)

    def error_body(path: str, status: int, message: str) -> dict[str, Any]:
        return {"path": path, "status": status, "message": message}

    limited = BodyLimit(app, LIMIT, 4 * LIMIT, error_body, lambda m, c, _: refused.append((m, c)))
    receive, reads = chunks(*parts)
    scope = {"type": "http", "method": "POST", "path": "/x", "headers": headers or []}
    await limited(scope, receive, send)
    return app, sent, reads[0], refused


async def test_a_body_within_the_limit_reaches_the_app_whole() -> None:
    app, sent, _, refused = await call((b"a" * 600, b"b" * 424))
    assert app.bodies == [b"a" * 600 + b"b" * 424]
    assert sent[0]["status"] == 200
    assert refused == []


async def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit() -> None:
    app, sent, reads, refused = await call((b"a" * 1000, b"b" * 100, b"c" * 10**6))
    assert app.bodies == []  # never routed, parsed or authenticated
    assert reads == 2  # the third chunk was never asked for
    start = sent[0]
    assert start["status"] == 413
    assert (b"connection", b"close") in start["headers"]
    assert b"at most 1024 bytes" in sent[1]["body"]
    assert refused == [("POST", 413)]


async def test_a_declared_length_over_the_limit_is_refused_before_any_read() -> None:
    app, sent, reads, _ = await call((b"x",), [(b"content-length", b"52428800")])
    assert (app.bodies, reads, sent[0]["status"]) == ([], 0, 413)


async def test_bodies_in_flight_share_a_budget() -> None:
    """Slow uploads just under the limit cannot add up: past the budget, 503 at once; what
    a request held is returned when it is answered."""
    release = asyncio.Event()
    app = Recorder()
    limited = BodyLimit(app, LIMIT, 2 * LIMIT, lambda p, c, m: {"message": m}, lambda *_: None)

    def trickle(first: bytes) -> Receive:
        """A client that sends `first`, then waits (as a slow one does) for `release`."""
        parts = iter([first, b"!"])

        async def receive() -> Message:
            chunk = next(parts)
            if chunk == b"!":
                await release.wait()
            return {"type": "http.request", "body": chunk, "more_body": chunk != b"!"}

        return receive

    async def request(first: bytes) -> list[Message]:
        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        await limited({"type": "http", "method": "POST", "path": "/", "headers": []},
                      trickle(first), send)  # fmt: skip
        return sent

    slow = [asyncio.create_task(request(b"x" * 1000)) for _ in range(2)]
    await asyncio.sleep(0)
    assert limited.held == 2000
    busy = await request(b"y" * 100)  # 2,100 > 2,048: refused while the two hold theirs
    assert busy[0]["status"] == 503
    assert (b"retry-after", b"1") in busy[0]["headers"]
    release.set()
    for task in slow:
        assert (await task)[0]["status"] == 200
    assert limited.held == 0
    assert (await request(b"z" * 100))[0]["status"] == 200


def test_method_labels_are_a_fixed_set() -> None:
    assert method_label("PATCH") == "PATCH"
    assert method_label("BREW") == method_label("get") == "other"
    metrics = Metrics()
    for method in ("GET", "X-1", "X-2", "PROPFIND"):
        metrics.observe(method, "/r", 200, 0.01)
    text = metrics.exposition().decode()
    assert 'method="other"' in text
    assert "X-1" not in text
    assert "PROPFIND" not in text
