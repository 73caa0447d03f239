"""Who is calling and in which namespace; pure (no I/O), and tokens never leave this request.

The key is a Kubernetes bearer token, from `X-TYPESENSE-CLOUD-MANAGEMENT-API-KEY`
(the Typesense seed's header) or `Authorization: Bearer` (the Bridge seed's).
The gateway does not verify it: it only forwards it, and the API server
authenticates every call. The namespace is read from the token's claims
(a ServiceAccount token names its namespace); those claims are unverified, but
they only choose *where* to ask: the API server still decides whether the
token's owner may act there. An explicit namespace (`X-Kubernetes-Namespace`
header or `namespace` query parameter) wins; other tokens (OIDC users) need it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

API_KEY_HEADER = "X-TYPESENSE-CLOUD-MANAGEMENT-API-KEY"
NAMESPACE_HEADER = "X-Kubernetes-Namespace"
SA_PREFIX = "system:serviceaccount:"
NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class Unauthenticated(Exception):
    """No key, or not one the gateway can use."""


class NoNamespace(Exception):
    """The token names no namespace and none was given."""


def token_from(headers: dict[str, str]) -> str:
    """The bearer token of a request (header names lower-cased)."""
    key = headers.get(API_KEY_HEADER.lower(), "").strip()
    if key:
        return key.removeprefix("Bearer ").strip()
    authorization = headers.get("authorization", "").strip()
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    raise Unauthenticated(
        f"missing API key: send a Kubernetes token in {API_KEY_HEADER} or Authorization: Bearer"
    )


def claims(token: str) -> dict[str, Any]:
    """The (unverified) payload of a JWT; empty when the token is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        data = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def token_namespace(token: str) -> str | None:
    """The namespace of a ServiceAccount token (bound or legacy), else None."""
    data = claims(token)
    bound = data.get("kubernetes.io")
    if isinstance(bound, dict) and isinstance(bound.get("namespace"), str):
        return str(bound["namespace"])
    legacy = data.get("kubernetes.io/serviceaccount/namespace")
    if isinstance(legacy, str):
        return legacy
    subject = data.get("sub")
    return namespace_of_user(subject) if isinstance(subject, str) else None


def namespace_of_user(username: str) -> str | None:
    """The namespace of a ServiceAccount's user name, else None."""
    if username.startswith(SA_PREFIX):
        return username.removeprefix(SA_PREFIX).split(":")[0]
    return None


def namespace_hint(headers: dict[str, str], explicit: str | None, token: str) -> str | None:
    """The explicit namespace, else the token's; None when neither names one."""
    namespace = explicit or headers.get(NAMESPACE_HEADER.lower()) or token_namespace(token)
    if namespace and (not NAMESPACE.match(namespace) or len(namespace) > 63):
        raise NoNamespace(f"invalid namespace {namespace!r}")
    return namespace or None


NO_NAMESPACE = f"this token names no namespace: send {NAMESPACE_HEADER} or ?namespace="
