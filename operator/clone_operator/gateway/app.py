"""Assembly: the FastAPI application, its errors, metrics and serving (`clone-operator api`)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse

from clone_operator import __version__
from clone_operator.gateway import auth, objects, operations
from clone_operator.gateway.context import Gateway, GatewayError, from_api
from clone_operator.gateway.ids import Allocator
from clone_operator.gateway.kube import ApiError, Endpoint, Pools
from clone_operator.gateway.limits import BodyLimit
from clone_operator.gateway.metrics import Metrics
from clone_operator.gateway.settings import ApiSettings

log = logging.getLogger("clone_operator.gateway")
BRIDGE_PREFIX = "/api/admin/"


def error_body(path: str, status: int, message: str) -> dict[str, Any]:
    if path.startswith(BRIDGE_PREFIX):
        return {"message": message, "error_messages": [message]}
    return {"success": False, "message": message}


def route_of(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", "unmatched"))


def create_app(settings: ApiSettings, endpoint: Endpoint | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pools = Pools(endpoint or Endpoint.discover(), settings.request_timeout_seconds)
        app.state.gateway = Gateway(
            settings=settings,
            pools=pools,
            allocator=Allocator(pools.gateway, settings.counter_namespace()),
            metrics=metrics,
        )
        log.info("clone-operator api started on port %s", settings.port)
        try:
            yield
        finally:
            await pools.close()

    metrics = Metrics()
    app = FastAPI(
        title="clone-operator API",
        version=__version__,
        summary="The Typesense cluster-cloning and Bridge clone-objects APIs over "
        "CloningOperation and CloneObject resources.",
        description="Authenticate with a Kubernetes bearer token (e.g. `kubectl create token`) "
        f"in `{auth.API_KEY_HEADER}` or `Authorization: Bearer`: every call the gateway makes "
        "uses it, so Kubernetes RBAC decides.",
        lifespan=lifespan,
    )
    app.include_router(operations.router)
    app.include_router(objects.router)

    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
        return JSONResponse(error_body(request.url.path, exc.status, exc.message), exc.status)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        mapped = from_api(exc)
        return JSONResponse(
            error_body(request.url.path, mapped.status, mapped.message), mapped.status
        )

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}"
            for e in exc.errors()
        ]
        return JSONResponse(error_body(request.url.path, 400, "; ".join(problems)), 400)

    @app.exception_handler(aiohttp.ClientError)
    async def unreachable(request: Request, exc: aiohttp.ClientError) -> JSONResponse:
        message = f"the Kubernetes API server is unreachable: {type(exc).__name__}"
        return JSONResponse(error_body(request.url.path, 503, message), 503)

    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        elapsed = time.perf_counter() - start
        route = route_of(request)
        if route not in ("/metrics", "/healthz", "/readyz"):
            metrics.observe(request.method, route, response.status_code, elapsed)
            # The path and status only: headers (the token) are never logged.
            log.info(
                "%s %s %s %.1f ms", request.method, request.url.path, response.status_code,
                elapsed * 1000,
            )  # fmt: skip
        return response

    # Outermost (added last): the body is bounded before routing, parsing and auth.
    app.add_middleware(
        BodyLimit,
        limit=settings.max_body_bytes,
        budget=settings.max_buffered_bytes,
        error_body=error_body,
        refused=lambda method, status, seconds: metrics.observe(
            method, "unmatched", status, seconds
        ),
    )

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4")

    @app.get("/healthz", include_in_schema=False)
    @app.get("/readyz", include_in_schema=False)
    async def health() -> PlainTextResponse:
        return PlainTextResponse("ok")

    return app


def serve(settings: ApiSettings) -> None:
    import uvicorn

    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        ssl_certfile=settings.tls_cert_file or None,
        ssl_keyfile=settings.tls_key_file or None,
        access_log=False,
        log_config=None,
        server_header=False,
        lifespan="on",
    )
    uvicorn.Server(config).run()
