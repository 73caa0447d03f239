"""The Typesense cluster-cloning API over CloningOperations (seed: typesense-cluster-cloning-api).

`{cluster}` is a StatefulSet in the caller's namespace; an operation's `id` is
its CloningOperation's name (a time-ordered UUID when made here).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from clone_operator.api.cloningoperations import TERMINAL_PHASES, Phase
from clone_operator.gateway import views
from clone_operator.gateway.context import Caller, GatewayError, caller, from_api
from clone_operator.kube.errors import JSON, ApiError

router = APIRouter(
    prefix="/api/v1/clusters/{cluster}/cloning-operations", tags=["cluster cloning (Typesense)"]
)
KIND = "CloningOperation"
Who = Annotated[Caller, Depends(caller)]


def failures(*codes: int) -> views.Responses:
    return views.failures(views.Failure, *codes)


def active(obj: JSON) -> bool:
    """Pending or InProgress, and not being canceled."""
    phase = (obj.get("status") or {}).get("phase")
    return not (phase and Phase(phase) in TERMINAL_PHASES) and not (
        (obj.get("spec") or {}).get("cancel") and phase in (None, Phase.PENDING)
    )


def of_cluster(cluster: str) -> str:
    """The field selector of a cluster's operations (a selectable field of the CRD)."""
    return f"spec.sourceCluster={cluster}"


def cluster_missing(who: Caller, cluster: str) -> GatewayError:
    return GatewayError(404, f"cluster {cluster} not found in namespace {who.namespace}")


async def operation_of(who: Caller, cluster: str, operation_id: str) -> JSON:
    obj = await who.client.get(KIND, who.namespace, operation_id)
    if obj is None or (obj.get("spec") or {}).get("sourceCluster") != cluster:
        raise GatewayError(404, f"cloning operation {operation_id} of cluster {cluster} not found")
    return obj


async def read_page(who: Caller, chosen: list[str]) -> list[JSON]:
    """The named operations in the given order: one list selecting them by their id label
    (10 GETs cost ten times as much), then a GET for any without the label."""
    if not chosen:
        return []
    selector = views.any_of(views.OPERATION_ID_LABEL, chosen)
    found = {
        o["metadata"]["name"]: o
        for o in await who.client.list(KIND, who.namespace, label_selector=selector)
    }
    missing = [n for n in chosen if n not in found]
    for obj in await asyncio.gather(*(who.client.get(KIND, who.namespace, n) for n in missing)):
        if obj is not None:
            found[obj["metadata"]["name"]] = obj
    return [found[n] for n in chosen if n in found]


def envelope(obj: JSON) -> dict[str, Any]:
    view = views.operation_view(obj)
    return views.OperationEnvelope(success=True, cloning_operation=view).model_dump(mode="json")


@router.post(
    "",
    status_code=201,
    response_model=views.OperationEnvelope,
    responses=failures(400, 401, 403, 404, 409),
    summary="Start a cloning operation",
)
async def start(
    cluster: str, who: Who, body: views.CreateOperationRequest | None = None
) -> dict[str, Any]:
    request = body or views.CreateOperationRequest()
    source, rows = await asyncio.gather(
        who.client.get("StatefulSet", who.namespace, cluster),
        who.client.rows(KIND, who.namespace, ("Name", "Phase"), field_selector=of_cluster(cluster)),
    )
    if source is None:
        raise cluster_missing(who, cluster)
    # Rows carry the phase; a Pending one may be canceled already, so read those whole.
    open_ = [str(name) for name, phase in rows if phase not in TERMINAL_PHASES]
    others = await asyncio.gather(*(who.client.get(KIND, who.namespace, n) for n in open_))
    busy = [o for o in others if o is not None and active(o)]
    if busy:
        other = busy[0]
        raise GatewayError(
            409,
            f"cloning operation {other['metadata']['name']} of cluster {cluster} is "
            f"{views.operation_status(other)}: only one operation can be active at a time",
        )
    manifest = views.operation_manifest(views.uuid7(), cluster, request)
    created = await who.client.create(KIND, who.namespace, manifest)
    return envelope(created)


@router.get(
    "/{operation_id}",
    response_model=views.CloningOperationView,
    responses=failures(401, 403, 404),
    summary="Get one cloning operation",
)
async def show(cluster: str, operation_id: str, who: Who) -> dict[str, Any]:
    obj = await operation_of(who, cluster, operation_id)
    return views.operation_view(obj).model_dump(mode="json")


@router.get(
    "",
    response_model=views.OperationPage,
    responses=failures(400, 401, 403, 404),
    summary="List a cluster's cloning operations, newest first",
)
async def index(
    cluster: str,
    who: Who,
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1, le=250)] = 10,
) -> dict[str, Any]:
    selector = of_cluster(cluster)
    names = await who.client.names(KIND, who.namespace, field_selector=selector)
    if not names and await who.client.get("StatefulSet", who.namespace, cluster) is None:
        raise cluster_missing(who, cluster)
    start, end = (page - 1) * per_page, page * per_page
    if views.all_uuid7(names):
        # Time-ordered names: page on the names, then read just the page's objects.
        chosen = sorted(names, reverse=True)[start:end]
        objects = await read_page(who, chosen)
    else:  # some made elsewhere (kubectl): order by creation time, from the whole list
        items = await who.client.list(KIND, who.namespace, field_selector=selector)
        objects = views.newest_first(items)[start:end]
    return views.OperationPage(
        page=page,
        per_page=per_page,
        total=len(names),
        cloning_operations=[views.operation_view(o) for o in objects],
    ).model_dump(mode="json")


@router.patch(
    "/{operation_id}",
    response_model=views.OperationEnvelope,
    responses=failures(400, 401, 403, 404, 409),
    summary="Cancel a pending cloning operation",
)
async def cancel(
    cluster: str, operation_id: str, body: views.UpdateOperationRequest, who: Who
) -> dict[str, Any]:
    obj = await operation_of(who, cluster, operation_id)
    if (obj.get("spec") or {}).get("cancel"):
        return envelope(obj)
    patch = {"metadata": {"uid": obj["metadata"]["uid"]}, "spec": {"cancel": True}}
    try:
        patched = await who.client.merge_patch(KIND, who.namespace, operation_id, patch)
    except ApiError as e:
        # The API server's CEL rule: only a Pending operation can be canceled.
        raise from_api(e, invalid_status=409) from None
    return envelope(patched)
