"""The API server's answers as exceptions: one type per case a caller tells apart.

Owns the error model of both clients (`k8s.api.Kube`, `kube.client.Client`); no I/O.
"""

from __future__ import annotations

import json
from typing import Any

JSON = dict[str, Any]


class ApiError(Exception):
    """An API request failed; `status` and `reason` are the API server's, `request` what
    was asked (`paths.what_is_asked`: method and resource, no names), when known."""

    def __init__(self, status: int, reason: str, message: str, request: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.request = request


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    """AlreadyExists, or a resourceVersion/uid precondition that no longer holds."""


class NamespaceTerminating(ApiError):
    """403: the namespace is being deleted, and the object with it."""


class Invalid(ApiError):
    """The API server refused the object (422 / 400): the message says why."""


class NotLeading(ApiError):
    """Not sent: this replica is not (or no longer surely) the leader (leader election)."""


class UnknownKind(LookupError):
    """Not sent: the client has no path for this (apiVersion, kind): it reads and writes
    only the kinds in `paths.PLURALS`, whatever a body asks for."""


def decoded(text: str) -> JSON:
    """A response body as a JSON object; {} when it is empty or not one (a proxy in
    between may answer in HTML)."""
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def answer(status: int, text: str, asked: str = "") -> JSON:
    """A response's body if its status is a success, else the error that says why."""
    if 200 <= status < 300:
        return decoded(text)
    error = decoded(text)
    reason = str(error.get("reason", ""))
    message = str(error.get("message") or text.strip()[:1024] or f"HTTP {status}")
    if status == 404:
        raise NotFound(status, reason, message, asked)
    if status == 409:
        raise Conflict(status, reason, message, asked)
    if status == 403 and "being terminated" in message:
        raise NamespaceTerminating(status, reason, message, asked)
    if status in (400, 422):
        raise Invalid(status, reason, message, asked)
    raise ApiError(status, reason, message, asked)
