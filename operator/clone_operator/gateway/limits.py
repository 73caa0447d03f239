"""Bounds on what an unauthenticated client can make the gateway hold: request bodies
and metric series.

The body limit is an ASGI middleware outside FastAPI: FastAPI reads and parses a
route's whole body before it resolves the dependency that reads the token, so a
limit inside it would come after the memory is spent. Here a declared
Content-Length over the limit is answered before one byte of the body is read,
and any other body (chunked included) is counted as it streams and refused the
moment it passes the limit; uvicorn stops reading a connection whose buffer is
full, so nothing past the limit is held either. The refusal closes the
connection: the rest of the body is never read. All bodies in flight share a
budget, so that many connections cannot multiply the limit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""The request methods a metric label takes; any other token a client sends is `other`."""


def method_label(method: str) -> str:
    """The bounded `method` label: a client cannot add series by inventing methods."""
    return method if method in METHODS else "other"


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The request's Content-Length (h11 has already refused a malformed one)."""
    for name, value in headers:
        if name.lower() == b"content-length":
            return int(value)
    return None


class Refused(Exception):
    """The body cannot be taken: too large for a request, or for the budget of them all."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class BodyLimit:
    """Refuse (413, connection closed) any request whose body exceeds `limit` bytes,
    before routing, parsing or authentication; smaller bodies are buffered and
    replayed to the application.

    Bodies in flight share a `budget`: without it, many connections each trickling a
    body just under the limit (never finishing it) would hold the limit once per connection. A
    body that would pass the budget is refused 503 (retry later), and what a request
    holds is returned to the budget when its answer is done.
    """

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        budget: int,
        error_body: Callable[[str, int, str], dict[str, Any]],
        refused: Callable[[str, int, float], None],
    ) -> None:
        self.app = app
        self.limit = limit
        self.budget = budget
        self.held = 0
        """Bytes of request bodies buffered now, over every request."""
        self.error_body = error_body
        self.refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        body = bytearray()
        try:
            declared = declared_length(scope["headers"])
            if declared is not None and declared > self.limit:
                raise self.too_large()
            await self.read(receive, body)
            await self.app(scope, replay(bytes(body), receive), send)
        except Refused as e:
            await self.refuse(scope, send, e)
            self.refused(scope["method"], e.status, time.perf_counter() - start)
        finally:
            self.held -= len(body)

    def too_large(self) -> Refused:
        return Refused(413, f"request body too large: at most {self.limit} bytes")

    async def read(self, receive: Receive, body: bytearray) -> None:
        """Into `body` (counted in `held` as it grows), until the client is done or gone."""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left; the app sees what came
            chunk = message.get("body", b"")
            if len(body) + len(chunk) > self.limit:
                raise self.too_large()
            if self.held + len(chunk) > self.budget:
                raise Refused(503, "too many request bodies in flight: retry shortly")
            body += chunk
            self.held += len(chunk)
            if not message.get("more_body", False):
                return

    async def refuse(self, scope: Scope, send: Send, refusal: Refused) -> None:
        payload = json.dumps(self.error_body(scope["path"], refusal.status, refusal.message))
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"connection", b"close"),  # uvicorn closes it: the rest is never read
        ]
        if refusal.status == 503:
            headers.append((b"retry-after", b"1"))
        await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
        await send({"type": "http.response.body", "body": payload.encode()})


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that yields the buffered body once, then defers to the server's
    (a disconnect, while the response is written)."""
    sent = False

    async def receive_again() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive_again
