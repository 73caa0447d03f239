"""A small JSON client over kubernetes_asyncio's authenticated connection pool."""

from __future__ import annotations

import asyncio
import builtins
import json
from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.config.config_exception import ConfigException

from clone_operator import __version__

JSON = dict[str, Any]
USER_AGENT = f"clone-operator/{__version__}"
_FENCED_WRITE: ContextVar[bool] = ContextVar("fenced_write", default=False)
"""Set while a fenced write is being sent (see Kube.fence_at_the_wire)."""
ENGINE_POOL = 38  # parallel requests of the engine (see Kube.in_flight)
ELECTION_POOL = 2  # connections kept free for leader election's renewals
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"

# (apiVersion, kind) → plural, for every kind the operator touches.
PLURALS: dict[tuple[str, str], str] = {
    ("apps/v1", "StatefulSet"): "statefulsets",
    ("v1", "Service"): "services",
    ("v1", "PersistentVolumeClaim"): "persistentvolumeclaims",
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Secret"): "secrets",
    ("v1", "Pod"): "pods",
    ("v1", "Node"): "nodes",
    ("v1", "Namespace"): "namespaces",
    ("v1", "Event"): "events",
    ("coordination.k8s.io/v1", "Lease"): "leases",
    ("v1", "PersistentVolume"): "persistentvolumes",
    ("storage.k8s.io/v1", "StorageClass"): "storageclasses",
    ("storage.k8s.io/v1", "CSIDriver"): "csidrivers",
    ("snapshot.storage.k8s.io/v1", "VolumeSnapshotClass"): "volumesnapshotclasses",
    ("snapshot.storage.k8s.io/v1", "VolumeSnapshot"): "volumesnapshots",
    ("snapshot.storage.k8s.io/v1", "VolumeSnapshotContent"): "volumesnapshotcontents",
    ("groupsnapshot.storage.k8s.io/v1", "VolumeGroupSnapshotClass"): "volumegroupsnapshotclasses",
    ("groupsnapshot.storage.k8s.io/v1", "VolumeGroupSnapshot"): "volumegroupsnapshots",
    ("authorization.k8s.io/v1", "SubjectAccessReview"): "subjectaccessreviews",
    ("cloning.dev/v1alpha1", "CloningOperation"): "cloningoperations",
    ("cloning.dev/v1alpha1", "CloneObject"): "cloneobjects",
}


class ApiError(Exception):
    """An API request failed; `status` and `reason` are the API server's, `request` what
    was asked (`what_is_asked`: method and resource, no names), when known."""

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
    """Not sent: this replica is not (or no longer surely) the leader (engine/leadership.py)."""


class UnknownKind(LookupError):
    """Not sent: the operator has no path for this (apiVersion, kind): it writes only the
    kinds in PLURALS, whatever a body asks for."""


def path(
    api_version: str,
    kind: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    plural = PLURALS.get((api_version, kind))
    if plural is None:
        raise UnknownKind(
            f"the operator does not read or write objects of kind {kind} ({api_version})"
        )
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    parts = [prefix]
    if namespace is not None:
        parts.append(f"namespaces/{quote(namespace)}")
    parts.append(plural)
    if name is not None:
        parts.append(quote(name))
    if subresource is not None:
        parts.append(subresource)
    return "/".join(parts)


def ref_path(obj: JSON, subresource: str | None = None) -> str:
    meta = obj["metadata"]
    return path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"], subresource)


def what_is_asked(method: str, url: str) -> str:
    """`GET statefulsets`, `LIST pods`, `PATCH cloningoperations/status`: a request's
    method and resource, without names (for the request counts)."""
    parts = url.split("?", 1)[0].strip("/").split("/")
    if "namespaces" in parts[:-1]:
        parts = parts[parts.index("namespaces") + 2 :]
    else:
        parts = parts[2:] if parts[:1] == ["api"] else parts[3:]
    if not parts:
        return method
    resource = parts[0] + ("/" + parts[2] if len(parts) > 2 else "")
    if method == "GET" and len(parts) == 1:
        method = "LIST"
    return f"{method} {resource}"


@dataclass
class Kube:
    """One authenticated connection pool; lives in kopf's memo, never in a global."""

    api: client.ApiClient
    requests: Counter[str] = field(default_factory=Counter)
    by_resource: Counter[str] = field(default_factory=Counter)
    """The engine's requests by method and resource (`what_is_asked`): where they go."""
    election_requests: Counter[str] = field(default_factory=Counter)
    """Leader election's own requests (unfenced), kept apart from the engine's."""
    fence: Callable[[], bool] | None = None
    """With leader election: asked before every write; False refuses it (NotLeading)."""
    in_flight: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(ENGINE_POOL))
    """The engine's requests on the wire at once: fewer than the pool's connections, so
    a request that got past it goes out at once (leader election's own never queue
    behind the engine's)."""

    @classmethod
    async def connect(cls) -> Kube:
        """In-cluster credentials when running in a pod, else the kubeconfig."""
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except ConfigException:
            await config.load_kube_config()
        configuration = client.Configuration.get_default_copy()
        # Enough parallelism for bursts; every connection costs TLS and read buffers.
        configuration.connection_pool_maxsize = ENGINE_POOL + ELECTION_POOL
        api = client.ApiClient(configuration)
        api.user_agent = USER_AGENT
        kube = cls(api=api)
        kube.fence_at_the_wire()
        return kube

    def fence_at_the_wire(self) -> None:
        """Ask the fence again once a write has its connection, right before its bytes go
        out: a write that passed `call`'s check and was then held up (a TCP or TLS
        handshake while the process was paused past its renew deadline) is refused
        instead of landing late. kubernetes_asyncio's session is rebuilt on the same
        connector with an aiohttp trace that does this."""
        rest = self.api.rest_client
        old: aiohttp.ClientSession = rest.pool_manager
        connector = old.connector
        old.detach()

        async def check(_session: Any, _ctx: Any, _params: Any) -> None:
            if _FENCED_WRITE.get() and self.fence is not None and not self.fence():
                raise NotLeading(0, "NotLeading", "write refused on the wire: not the leader")

        trace = aiohttp.TraceConfig()
        trace.on_connection_create_end.append(check)
        trace.on_connection_reuseconn.append(check)
        rest.pool_manager = aiohttp.ClientSession(
            connector=connector, trust_env=True, read_bufsize=2**21, trace_configs=[trace]
        )

    def identify(self, instance: str) -> None:
        """Name this replica in every request's User-Agent: the API server's audit log
        then tells replicas apart (they share one ServiceAccount)."""
        self.api.user_agent = f"{USER_AGENT} ({instance})"

    async def close(self) -> None:
        await self.api.close()

    async def call(
        self,
        method: str,
        url: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
        fenced: bool = True,
        tally: Counter[str] | None = None,
    ) -> JSON:
        """One request; a write is refused unless the fence allows it (`fenced=False`:
        leader election's own requests, counted apart). Counted in `tally`, by default
        the engine's `requests`."""
        if tally is None:
            tally = self.requests if fenced else self.election_requests
        if not fenced:
            return await self._send(method, url, body, query, content_type, tally)
        # The fence is asked once the request may go on the wire, not before it queues: a
        # write that waited for a connection while the process was paused (SIGSTOP, a
        # frozen VM) past its renew deadline is refused, not sent late.
        async with self.in_flight:
            if method != "GET" and self.fence is not None and not self.fence():
                raise NotLeading(0, "NotLeading", f"{method} {url}: this replica is not the leader")
            marked = _FENCED_WRITE.set(method != "GET")
            try:
                return await self._send(method, url, body, query, content_type, tally)
            finally:
                _FENCED_WRITE.reset(marked)

    async def _send(
        self,
        method: str,
        url: str,
        body: Any,
        query: dict[str, str] | None,
        content_type: str,
        tally: Counter[str],
    ) -> JSON:
        tally[method] += 1
        if tally is self.requests:
            self.by_resource[what_is_asked(method, url)] += 1
        response = await self.api.call_api(
            url,
            method,
            query_params=list((query or {}).items()),
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
        )
        async with response:
            text = await response.text()
            status = response.status
        if 200 <= status < 300:
            data: JSON = json.loads(text) if text else {}
            return data
        try:  # a proxy in between may answer an error in HTML
            error = json.loads(text) if text else {}
        except ValueError:
            error = {}
        if not isinstance(error, dict):
            error = {}
        reason = str(error.get("reason", ""))
        message = str(error.get("message", text[:1024]))
        asked = what_is_asked(method, url)
        if status == 404:
            raise NotFound(status, reason, message, asked)
        if status == 409:
            raise Conflict(status, reason, message, asked)
        if status == 403 and "being terminated" in message:
            raise NamespaceTerminating(status, reason, message, asked)
        if status in (400, 422):
            raise Invalid(status, reason, message, asked)
        raise ApiError(status, reason, message, asked)

    async def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> JSON | None:
        try:
            return await self.call("GET", path(api_version, kind, namespace, name))
        except NotFound:
            return None

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[JSON]:
        query = {}
        if label_selector:
            query["labelSelector"] = label_selector
        if field_selector:
            query["fieldSelector"] = field_selector
        data = await self.call("GET", path(api_version, kind, namespace), query=query)
        items: list[JSON] = data.get("items", [])
        return items

    async def create(self, obj: JSON, dry_run: bool = False) -> JSON:
        """Create `obj`; with `dry_run`, only ask the API server whether it would (every
        admission and validation step, nothing stored: so not fenced)."""
        meta = obj["metadata"]
        url = path(obj["apiVersion"], obj["kind"], meta.get("namespace"))
        if dry_run:
            query = {"dryRun": "All"}
            return await self.call(
                "POST", url, body=obj, query=query, fenced=False, tally=self.requests
            )
        return await self.call("POST", url, body=obj)

    async def merge_patch(
        self, obj_or_url: JSON | str, patch: JSON, subresource: str | None = None
    ) -> JSON:
        url = obj_or_url if isinstance(obj_or_url, str) else ref_path(obj_or_url, subresource)
        return await self.call("PATCH", url, body=patch, content_type=MERGE_PATCH)

    async def json_patch(self, obj: JSON, operations: builtins.list[JSON]) -> JSON:
        """An RFC 6902 patch: all its operations or none (a failed `test` is Invalid)."""
        return await self.call("PATCH", ref_path(obj), body=operations, content_type=JSON_PATCH)

    async def delete(
        self,
        obj: JSON,
        *,
        uid: str | None = None,
        resource_version: str | None = None,
        propagation: str = "Background",
    ) -> bool:
        """Delete, with preconditions so that only the very object meant goes; False if gone."""
        preconditions = {}
        if uid:
            preconditions["uid"] = uid
        if resource_version:
            preconditions["resourceVersion"] = resource_version
        body: JSON = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        if preconditions:
            body["preconditions"] = preconditions
        try:
            await self.call("DELETE", ref_path(obj), body=body)
        except NotFound:
            return False
        return True
