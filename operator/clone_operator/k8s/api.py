"""The operator's client: a small JSON client over kubernetes_asyncio's authenticated
connection pool, fenced by leader election and counted.

Paths, errors and where the API server is (the pod's ServiceAccount, else the
kubeconfig) are the shared core's (`clone_operator.kube`), re-exported here so the
engine imports one module; this module owns the operator's identity (`connect`: the
connection pool made from what `kube.endpoint` found).
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from kubernetes_asyncio import client

from clone_operator import __version__
from clone_operator.kube import streams
from clone_operator.kube.endpoint import Endpoint
from clone_operator.kube.errors import JSON as JSON
from clone_operator.kube.errors import ApiError as ApiError
from clone_operator.kube.errors import Conflict as Conflict
from clone_operator.kube.errors import Invalid as Invalid
from clone_operator.kube.errors import NamespaceTerminating as NamespaceTerminating
from clone_operator.kube.errors import NotFound as NotFound
from clone_operator.kube.errors import NotLeading as NotLeading
from clone_operator.kube.errors import UnknownKind as UnknownKind
from clone_operator.kube.errors import answer
from clone_operator.kube.paths import PLURALS as PLURALS
from clone_operator.kube.paths import path as path
from clone_operator.kube.paths import ref_path as ref_path
from clone_operator.kube.paths import what_is_asked as what_is_asked

USER_AGENT = f"clone-operator/{__version__}"
_FENCED_WRITE: ContextVar[bool] = ContextVar("fenced_write", default=False)
"""Set while a fenced write is being sent (see Kube.fence_at_the_wire)."""
ENGINE_POOL = 38  # parallel requests of the engine (see Kube.in_flight)
ELECTION_POOL = 2  # connections kept free for leader election's renewals
MAX_EXEC_MESSAGE = 2**20
"""The largest websocket message an exec stream may send (a command's output comes in
chunks of a few kB; a bigger one is hostile and ends the stream)."""
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


TOKEN_REREAD_SECONDS = 60.0
"""A token file (a projected ServiceAccount token, rotated by the kubelet) or an exec
plugin's token is asked again at most this often."""


def configuration(
    endpoint: Endpoint, reread_seconds: float = TOKEN_REREAD_SECONDS
) -> client.Configuration:
    """kubernetes_asyncio's configuration for the operator's own identity at `endpoint`:
    its client certificate, or its bearer token, asked again now and then (it rotates)."""
    conf = client.Configuration(host=endpoint.server)
    conf.ssl_ca_cert = endpoint.ca_file
    conf.verify_ssl = endpoint.verify
    identity = endpoint.identity
    conf.cert_file = identity.cert_file or None
    conf.key_file = identity.key_file or None
    # Enough parallelism for bursts; every connection costs TLS and read buffers.
    conf.connection_pool_maxsize = ENGINE_POOL + ELECTION_POOL
    if identity.bearer() is None:
        return conf
    asked = [0.0]

    def bearer(conf: client.Configuration) -> None:
        if asked[0] and time.monotonic() - asked[0] < reread_seconds:
            return
        asked[0] = time.monotonic()
        conf.api_key["BearerToken"] = f"Bearer {identity.bearer()}"

    bearer(conf)
    conf.refresh_api_key_hook = bearer
    return conf


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
    async def connect(cls, endpoint: Endpoint | None = None) -> Kube:
        """In-cluster credentials when running in a pod, else the kubeconfig (as
        `kube.endpoint` finds them: the gateway's loading too)."""
        api = client.ApiClient(configuration(endpoint or Endpoint.discover()))
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
        return answer(status, text, what_is_asked(method, url))

    async def log(
        self, namespace: str, pod: str, tail_lines: int = 200, limit_bytes: int = 65536
    ) -> str:
        """The end of a pod's (only container's) log: at most `tail_lines` lines and
        `limit_bytes` bytes, so a chatty container never costs more. "" when the
        container has not started, or the pod is gone."""
        url = path("v1", "Pod", namespace, pod, "log")
        query = {"tailLines": str(tail_lines), "limitBytes": str(limit_bytes)}
        self.requests["GET"] += 1
        self.by_resource[what_is_asked("GET", url)] += 1
        response = await self.api.call_api(
            url,
            "GET",
            query_params=list(query.items()),
            header_params={"Accept": "application/json, */*"},  # errors as Status, logs as text
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
        )
        async with response:
            raw = await response.read()  # at most limitBytes: the API server cuts it
            status = response.status
        if status in (400, 404):  # not started yet (ContainerCreating), or gone
            return ""
        text = bytes(raw).decode("utf-8", "replace")
        if not 200 <= status < 300:
            answer(status, text, what_is_asked("GET", url))
        return text

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

    async def exec(
        self,
        namespace: str,
        pod: str,
        container: str | None,
        command: builtins.list[str],
        wait_seconds: float,
    ) -> streams.Result:
        """Run `command` in a pod's container (the pods/exec subresource over a websocket)
        and wait at most `wait_seconds` for its exit status. Fenced like a write: a
        replica that does not lead never execs. What the command writes is capped
        (`streams.Output`); the command is not killed when the wait ends (the API has no
        way to), only the stream closed."""
        if self.fence is not None and not self.fence():
            raise NotLeading(0, "NotLeading", "pods/exec: this replica is not the leader")
        configuration = self.api.configuration
        url = (
            f"{configuration.host}{streams.exec_path(namespace, pod)}"
            f"?{streams.exec_query(command, container)}"
        )
        headers: dict[str, str] = {"User-Agent": str(self.api.user_agent)}
        await self.api.update_params_for_auth(headers, [], ["BearerToken"])
        self.requests["POST"] += 1
        self.by_resource["create pods/exec"] += 1
        session: aiohttp.ClientSession = self.api.rest_client.pool_manager
        output = streams.Output()
        marked = _FENCED_WRITE.set(True)
        try:
            async with asyncio.timeout(wait_seconds):
                async with session.ws_connect(
                    url,
                    protocols=streams.PROTOCOLS,
                    headers=headers,
                    max_msg_size=MAX_EXEC_MESSAGE,
                    autoping=True,
                ) as ws:
                    async for message in ws:
                        if message.type == aiohttp.WSMsgType.BINARY:
                            output.add(message.data)
                        elif message.type == aiohttp.WSMsgType.ERROR:
                            return streams.Result(
                                None, "", "", f"the exec stream failed: {ws.exception()}"
                            )
        except TimeoutError:
            return streams.result(output, timed_out=wait_seconds)
        except aiohttp.WSServerHandshakeError as e:
            status = e.status
            answer(status, e.message, "create pods/exec")  # raises the error of its status
            raise ApiError(status, "", e.message, "create pods/exec") from e
        except aiohttp.ClientError as e:
            raise ApiError(0, "", f"pods/exec: {e}", "create pods/exec") from e
        finally:
            _FENCED_WRITE.reset(marked)
        return streams.result(output)
