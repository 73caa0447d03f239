"""The Bridge clone-objects API over CloneObjects (seed: bridge-clone-objects-api).

A batch is validated whole before anything is created: one kind for all items,
options the CloneObject knows, sources that exist, destinations that do not,
and a server-side dry run of every CloneObject with the caller's token (RBAC,
the schema and the requester-rights admission policies). Only then are ids
taken and the objects created; if one creation still fails, the ones already
made are deleted again, so a refused batch leaves nothing behind.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from clone_operator.api.cloneobjects import SUPPORTED_KINDS, SourceKind
from clone_operator.gateway import views
from clone_operator.gateway.context import Caller, GatewayError, caller, gateway_of
from clone_operator.kube.errors import JSON, ApiError

router = APIRouter(prefix="/api/admin/clone_objects", tags=["clone objects (Bridge)"])
KIND = "CloneObject"
Who = Annotated[Caller, Depends(caller)]


def failures(*codes: int) -> views.Responses:
    return views.failures(views.ObjectFailure, *codes)


def cached(request: Request, body: dict[str, Any]) -> Response:
    """The body with its ETag, or 304 when the client already holds that version."""
    tag = views.etag(body)
    held = {t.strip() for t in request.headers.get("if-none-match", "").split(",")}
    if "*" in held or tag in held or f"W/{tag}" in held:
        return Response(status_code=304, headers={"ETag": tag})
    return JSONResponse(body, headers={"ETag": tag})


async def highest_id(who: Caller) -> int:
    items = await who.client.list(KIND, who.namespace, label_selector=views.OBJECT_ID_LABEL)
    return max((views.object_id(o) or 0 for o in items), default=0)


async def page_of(who: Caller, page: int, per_page: int) -> tuple[int, list[JSON]]:
    """The total and one page of the namespace's clone objects, highest id first."""
    selector = views.OBJECT_ID_LABEL
    names = await who.client.names(KIND, who.namespace, label_selector=selector)
    start, end = (page - 1) * per_page, page * per_page
    numbered = [(views.id_of_name(n), n) for n in names]
    if all(number is not None for number, _ in numbered):
        # Gateway-made names carry the id: page on the names, then one list selects the page.
        chosen = [str(number) for number, _ in sorted(numbered, reverse=True)[start:end]]
        if not chosen:
            return len(names), []
        found = await who.client.list(
            KIND, who.namespace, label_selector=views.any_of(views.OBJECT_ID_LABEL, chosen)
        )
        return len(names), sorted(found, key=lambda o: views.object_id(o) or 0, reverse=True)
    items = await who.client.list(KIND, who.namespace, label_selector=selector)
    ordered = sorted(items, key=lambda o: views.object_id(o) or 0, reverse=True)
    return len(items), ordered[start:end]


async def object_of(who: Caller, object_id: int) -> JSON | None:
    """The CloneObject with this id: a GET of the name the gateway gives it (one object, however
    many the namespace holds), confirmed by its id label; else (the label on an object of
    another name, or a caller who may list but not get) the list selecting that label."""
    try:
        obj = await who.client.get(KIND, who.namespace, views.object_name(object_id))
    except ApiError as e:
        if e.status != 403:
            raise
        obj = None
    if obj is not None and views.object_id(obj) == object_id:
        return obj
    selector = f"{views.OBJECT_ID_LABEL}={object_id}"
    items = await who.client.list(KIND, who.namespace, label_selector=selector)
    return items[0] if items else None


def parse(body: views.CreateObjectsRequest, limit: int) -> tuple[SourceKind, list[Any]]:
    """The batch's one kind and each item's (source name, options); 400 when invalid."""
    items = body.clone_objects
    if len(items) > limit:
        raise GatewayError(400, f"at most {limit} clone_objects per request")
    types = sorted({i.source_type for i in items})
    if len(types) > 1:
        raise GatewayError(
            400, f"all source_types need to be identical; this request has {', '.join(types)}"
        )
    try:
        kind = SourceKind(types[0])
    except ValueError:
        raise GatewayError(
            400, f"source_type {types[0]} cannot be cloned; supported: {SUPPORTED_KINDS}"
        ) from None
    parsed = []
    for index, item in enumerate(items):
        try:
            options = views.ObjectOptions.model_validate(item.options)
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
            )
            raise GatewayError(400, f"clone_objects[{index}].options: {problems}") from None
        parsed.append((str(item.source_id), options))
    return kind, parsed


async def check_sources_and_destinations(who: Caller, kind: SourceKind, items: list[Any]) -> None:
    """400 for a missing source; 409 for a destination that exists (or is named twice)."""
    destinations = [
        (options.namespace or who.namespace, options.name)
        for _, options in items
        if options.name is not None
    ]
    if len(set(destinations)) < len(destinations):
        raise GatewayError(409, "two clone_objects of this request name the same destination")

    async def exists(namespace: str, name: str) -> bool | None:
        try:
            return await who.client.get(kind.value, namespace, name) is not None
        except ApiError as e:
            if e.status == 403:
                return None  # may not read it: the operator will tell, as a Failed state
            raise

    sources = [(who.namespace, source) for source, _ in items]
    found = await asyncio.gather(*(exists(ns, n) for ns, n in sources + destinations))
    for (namespace, name), present in zip(sources, found[: len(sources)], strict=True):
        if present is False:
            raise GatewayError(400, f"source {kind.value} {namespace}/{name} not found")
    for (namespace, name), present in zip(destinations, found[len(sources) :], strict=True):
        if present:
            raise GatewayError(409, f"destination {kind.value} {namespace}/{name} already exists")


@router.post(
    "",
    status_code=201,
    response_model=views.ObjectsEnvelope,
    responses=failures(400, 401, 403, 404, 409),
    summary="Create clone objects (one source_type per request)",
)
async def create(body: views.CreateObjectsRequest, request: Request, who: Who) -> dict[str, Any]:
    gateway = gateway_of(request)
    kind, items = parse(body, gateway.settings.max_batch)
    await check_sources_and_destinations(who, kind, items)
    await asyncio.gather(
        *(
            who.client.create(
                KIND, who.namespace, views.object_manifest(0, kind, src, opts), dry_run=True
            )
            for src, opts in items
        )
    )

    async def highest() -> int:
        return await highest_id(who)

    ids = await gateway.allocator.take(who.namespace, len(items), highest)
    manifests = [
        views.object_manifest(i, kind, src, opts) for i, (src, opts) in zip(ids, items, strict=True)
    ]
    results = await asyncio.gather(
        *(who.client.create(KIND, who.namespace, m) for m in manifests), return_exceptions=True
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        made: list[JSON] = [r for r in results if isinstance(r, dict)]
        await asyncio.gather(
            *(
                who.client.delete(KIND, who.namespace, o["metadata"]["name"], o["metadata"]["uid"])
                for o in made
            ),
            return_exceptions=True,
        )
        raise failures[0]
    views_ = [views.object_view(r) for r in results if isinstance(r, dict)]
    return views.ObjectsEnvelope(clone_objects=views_).model_dump(mode="json")


@router.get(
    "",
    response_model=views.ObjectPage,
    responses={**views.NOT_MODIFIED, **failures(400, 401, 403)},
    summary="List clone objects, newest first",
)
async def index(
    request: Request,
    who: Who,
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1, le=250)] = 10,
) -> Response:
    total, chosen = await page_of(who, page, per_page)
    body = views.ObjectPage(
        meta={"page": page, "per_page": per_page, "total": total},
        clone_objects=[views.object_view(o) for o in chosen],
    ).model_dump(mode="json")
    return cached(request, body)


@router.get(
    "/{object_id}",
    response_model=views.ObjectsEnvelope,
    responses={**views.NOT_MODIFIED, **failures(400, 401, 403, 404)},
    summary="Show one clone object",
)
async def show(object_id: int, request: Request, who: Who) -> Response:
    obj = await object_of(who, object_id)
    if obj is None:
        raise GatewayError(404, f"clone object {object_id} not found")
    body = views.ObjectsEnvelope(clone_objects=[views.object_view(obj)]).model_dump(mode="json")
    return cached(request, body)
