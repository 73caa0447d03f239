"""A JSON client over aiohttp for a given identity: a caller's bearer token, or the
process's own (`endpoint.Identity`).

Two identities, two connection pools (`Pools`):
  * a caller's: every call made for a request carries the request's bearer token and
    nothing else (no client certificate), so the API server authenticates the caller
    and RBAC and admission decide;
  * the process's own (its ServiceAccount, or the kubeconfig's user).
The gateway's only client. It owns no identity of its own and must not import the
operator's (`clone_operator.k8s`): it cannot act as the operator.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import aiohttp

from clone_operator.kube.endpoint import Endpoint
from clone_operator.kube.errors import ApiError, answer
from clone_operator.kube.paths import kind_path, what_is_asked

JSON = dict[str, Any]
Rows = list[tuple[str | None, ...]]
"""Table rows: the cells of the asked-for columns (None where a column's path is unset)."""
Names = list[str]
MERGE_PATCH = "application/merge-patch+json"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io, application/json"
Unreachable = aiohttp.ClientError
"""The API server did not answer (connection refused, reset, timed out)."""


class Pools:
    """The two connection pools; one instance per process, closed on shutdown."""

    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        self.endpoint = endpoint
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        self.callers_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=endpoint.ssl_context(False), limit=100),
            timeout=client_timeout,
        )
        self.own_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=endpoint.ssl_context(True), limit=10),
            timeout=client_timeout,
        )

    def caller(self, token: str) -> Client:
        """A caller's client: its bearer token and nothing else."""
        return Client(self.callers_session, self.endpoint.server, token)

    def own(self) -> Client:
        """The process's own client (`endpoint.Identity`): never used for a caller's request."""
        return Client(self.own_session, self.endpoint.server, self.endpoint.identity.bearer())

    async def close(self) -> None:
        await self.callers_session.close()
        await self.own_session.close()


@dataclass(frozen=True)
class Client:
    """Calls on behalf of one identity (a token, or the session's client certificate)."""

    session: aiohttp.ClientSession
    server: str
    token: str | None

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> JSON:
        headers = {"Accept": accept}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body)
        async with self.session.request(
            method, self.server + path, params=query, data=data, headers=headers
        ) as response:
            text = await response.text()
            status = response.status
        return answer(status, text, what_is_asked(method, path))

    async def username(self) -> str:
        """Who the token belongs to (a SelfSubjectReview: every authenticated user may ask)."""
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        reviewed = await self.call(
            "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body=review
        )
        return str(((reviewed.get("status") or {}).get("userInfo") or {}).get("username", ""))

    async def get(self, kind: str, namespace: str, name: str) -> JSON | None:
        try:
            return await self.call("GET", kind_path(kind, namespace, name))
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    async def list(
        self,
        kind: str,
        namespace: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[JSON]:
        query: dict[str, str] = {}
        if label_selector:
            query["labelSelector"] = label_selector
        if field_selector:
            query["fieldSelector"] = field_selector
        data = await self.call("GET", kind_path(kind, namespace), query=query)
        items: list[JSON] = data.get("items") or []
        return items

    async def rows(
        self,
        kind: str,
        namespace: str,
        columns: tuple[str, ...],
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Rows:
        """A list as the API server's Table, each object reduced to the named printer columns
        (`Name`, `Phase`, …) as one tuple: about 120 bytes an object instead of kilobytes,
        and no per-object work here beyond picking the cells, which is what keeps counting
        and ordering thousands of them cheap."""
        query = {"includeObject": "None"}
        if label_selector:
            query["labelSelector"] = label_selector
        if field_selector:
            query["fieldSelector"] = field_selector
        table = await self.call("GET", kind_path(kind, namespace), query=query, accept=TABLE)
        names = [str(c.get("name", "")) for c in table.get("columnDefinitions") or []]
        missing = [column for column in columns if column not in names]
        if missing:  # a CRD of another version: say so rather than misread the rows
            raise ApiError(502, "BadGateway", f"the {kind} Table has no column {missing[0]}")
        pick = itemgetter(*(names.index(column) for column in columns))
        rows = table.get("rows") or []
        if len(columns) == 1:  # itemgetter of one index gives the cell, not a tuple
            return [(pick(row["cells"]),) for row in rows]
        return [pick(row["cells"]) for row in rows]

    async def names(
        self,
        kind: str,
        namespace: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Names:
        """The names of a list (its Table's `Name` column)."""
        rows = await self.rows(kind, namespace, ("Name",), label_selector, field_selector)
        return [str(name) for (name,) in rows]

    async def create(self, kind: str, namespace: str, obj: JSON, dry_run: bool = False) -> JSON:
        query = {"dryRun": "All"} if dry_run else None
        return await self.call("POST", kind_path(kind, namespace), body=obj, query=query)

    async def replace(self, kind: str, namespace: str, obj: JSON) -> JSON:
        return await self.call("PUT", kind_path(kind, namespace, obj["metadata"]["name"]), body=obj)

    async def merge_patch(self, kind: str, namespace: str, name: str, patch: JSON) -> JSON:
        return await self.call(
            "PATCH", kind_path(kind, namespace, name), body=patch, content_type=MERGE_PATCH
        )

    async def delete(self, kind: str, namespace: str, name: str, uid: str) -> None:
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}}
        try:
            await self.call("DELETE", kind_path(kind, namespace, name), body=body)
        except ApiError as e:
            if e.status != 404:
                raise
