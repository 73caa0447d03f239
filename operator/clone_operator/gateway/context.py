"""What every route needs: the process's state, the caller, and errors in the seeds' terms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Query, Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer

from clone_operator.gateway import auth
from clone_operator.gateway.ids import Allocator
from clone_operator.gateway.metrics import Metrics
from clone_operator.gateway.settings import ApiSettings
from clone_operator.kube.client import Client, Pools
from clone_operator.kube.errors import ApiError


class GatewayError(Exception):
    """An answer other than success: HTTP status and a message for the caller."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def from_api(error: ApiError, invalid_status: int = 400) -> GatewayError:
    """The API server's refusal, with its own message, as the seeds' status codes."""
    if error.status == 401:
        return GatewayError(401, "invalid API key: the Kubernetes API server refused the token")
    if error.status in (400, 422):
        return GatewayError(invalid_status, error.message)
    if error.status in (403, 404, 409):
        return GatewayError(error.status, error.message)
    return GatewayError(503 if error.status in (429, 500, 503, 504) else 502, error.message)


@dataclass
class Gateway:
    """Per-process state, held in `app.state`: connection pools, id counters, metrics."""

    settings: ApiSettings
    pools: Pools
    allocator: Allocator
    metrics: Metrics


@dataclass(frozen=True)
class Caller:
    """A request's client (with the caller's token) and the namespace it acts in."""

    client: Client
    namespace: str


def gateway_of(request: Request) -> Gateway:
    state: Gateway = request.app.state.gateway
    return state


API_KEY = APIKeyHeader(name=auth.API_KEY_HEADER, auto_error=False, scheme_name="ApiKey")
BEARER = HTTPBearer(auto_error=False, scheme_name="Bearer")


async def caller(
    request: Request,
    namespace: Annotated[
        str | None,
        Query(description="Namespace to act in; default: the token's ServiceAccount namespace."),
    ] = None,
    _key: Annotated[str | None, Security(API_KEY)] = None,
    _bearer: Annotated[Any, Security(BEARER)] = None,
) -> Caller:
    """Who calls: a Kubernetes token in either header (OpenAPI shows both schemes).

    A token whose claims name no namespace (not a ServiceAccount JWT) is asked about
    with a SelfSubjectReview, which needs no rights: an invalid one answers 401 there.
    """
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        token = auth.token_from(headers)
        hint = auth.namespace_hint(headers, namespace, token)
    except auth.Unauthenticated as e:
        raise GatewayError(401, str(e)) from None
    except auth.NoNamespace as e:
        raise GatewayError(400, str(e)) from None
    client = gateway_of(request).pools.caller(token)
    if hint is None:
        try:
            username = await client.username()
        except ApiError as e:
            raise from_api(e) from None
        hint = auth.namespace_of_user(username)
        if hint is None:
            raise GatewayError(400, auth.NO_NAMESPACE)
    return Caller(client, hint)
