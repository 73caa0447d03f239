"""Bounds on what an unauthenticated client can make the gateway hold: request bodies
and metric series.

The body limit is an ASGI middleware outside FastAPI: FastAPI reads and parses a
route's whole body before it resolves the dependency that reads the token, so a
limit inside it would come after the memory is spent. Here a declared
Content-Length over the limit is answered before one byte of the body is read,
and any other body (chunked included) is counted as it streams and refused the
moment it passes the limit; uvicorn stops reading a connection whose buffer is
full, so nothing past the limit is held either. The refusal closes the
connection: the rest of the body is never read.
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


class TooLarge(Exception):
    """The body passed the limit."""


class BodyLimit:
    """Refuse (413, connection closed) any request whose body exceeds `limit` bytes,
    before routing, parsing or authentication; smaller bodies are buffered (at most
    `limit` bytes) and replayed to the application."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        error_body: Callable[[str, int, str], dict[str, Any]],
        refused: Callable[[str, float], None],
    ) -> None:
        self.app = app
        self.limit = limit
        self.error_body = error_body
        self.refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        declared = declared_length(scope["headers"])
        try:
            if declared is not None and declared > self.limit:
                raise TooLarge
            body = await self.read(receive)
        except TooLarge:
            await self.refuse(scope, send)
            self.refused(scope["method"], time.perf_counter() - start)
            return
        await self.app(scope, replay(body, receive), send)

    async def read(self, receive: Receive) -> bytes:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return bytes(body)  # the client left; the app sees an empty body
            body += message.get("body", b"")
            if len(body) > self.limit:
                raise TooLarge
            if not message.get("more_body", False):
                return bytes(body)

    async def refuse(self, scope: Scope, send: Send) -> None:
        message = f"request body too large: at most {self.limit} bytes"
        payload = json.dumps(self.error_body(scope["path"], 413, message)).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"connection", b"close"),  # uvicorn closes it: the rest is never read
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


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
