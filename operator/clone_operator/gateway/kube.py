"""The gateway's one I/O boundary: JSON over HTTP to the API server, with a given token.

Two identities, two connection pools:
  * the caller's: every call made for a request carries the request's bearer
    token and nothing else (no client certificate), so the API server
    authenticates the caller and RBAC and admission decide;
  * the gateway's own (its ServiceAccount, or the kubeconfig's user), used for
    nothing but the id counters in its own namespace.
The API server's address and CA come from the pod's environment in a cluster,
else from the kubeconfig (`KUBECONFIG` or `~/.kube/config`).
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import yaml

from clone_operator.gateway.settings import SERVICE_ACCOUNT_DIR

JSON = dict[str, Any]
Rows = list[tuple[str | None, ...]]
"""Table rows: the cells of the asked-for columns (None where a column's path is unset)."""
Names = list[str]
MERGE_PATCH = "application/merge-patch+json"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io, application/json"

CLONING = "/apis/cloning.dev/v1alpha1"
RESOURCES: dict[str, str] = {
    "CloningOperation": f"{CLONING}/namespaces/{{ns}}/cloningoperations",
    "CloneObject": f"{CLONING}/namespaces/{{ns}}/cloneobjects",
    "StatefulSet": "/apis/apps/v1/namespaces/{ns}/statefulsets",
    "PersistentVolumeClaim": "/api/v1/namespaces/{ns}/persistentvolumeclaims",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "Service": "/api/v1/namespaces/{ns}/services",
}


class ApiError(Exception):
    """The API server answered with an error: its HTTP status, reason and message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


def url(kind: str, namespace: str, name: str | None = None) -> str:
    base = RESOURCES[kind].format(ns=quote(namespace, safe=""))
    return base if name is None else f"{base}/{quote(name, safe='')}"


@dataclass(frozen=True)
class Identity:
    """How the gateway itself authenticates: a token file, a token, or a client certificate."""

    token_file: str = ""
    token: str = ""
    cert_file: str = ""
    key_file: str = ""

    def bearer(self) -> str | None:
        if self.token_file:
            # Projected tokens rotate: read the file each time (it is small and cached by the OS).
            return Path(self.token_file).read_text().strip()
        return self.token or None


@dataclass(frozen=True)
class Endpoint:
    """Where the API server is, the CA that signs it, and the gateway's own identity."""

    server: str
    ca_file: str | None
    identity: Identity

    @classmethod
    def discover(cls) -> Endpoint:
        host, port = (
            os.environ.get("KUBERNETES_SERVICE_HOST"),
            os.environ.get("KUBERNETES_SERVICE_PORT"),
        )
        if host and port and (SERVICE_ACCOUNT_DIR / "token").exists():
            server_host = f"[{host}]" if ":" in host else host
            return cls(
                server=f"https://{server_host}:{port}",
                ca_file=str(SERVICE_ACCOUNT_DIR / "ca.crt"),
                identity=Identity(token_file=str(SERVICE_ACCOUNT_DIR / "token")),
            )
        path = Path(os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or "~/.kube/config")
        return cls.from_kubeconfig(path.expanduser())

    @classmethod
    def from_kubeconfig(cls, path: Path) -> Endpoint:
        config = yaml.safe_load(path.read_text())
        current = config.get("current-context")
        contexts = {c["name"]: c["context"] for c in config.get("contexts", [])}
        context = contexts[current] if current in contexts else config["contexts"][0]["context"]
        clusters = {c["name"]: c["cluster"] for c in config["clusters"]}
        users = {u["name"]: u.get("user") or {} for u in config.get("users", [])}
        cluster, user = clusters[context["cluster"]], users.get(context.get("user", ""), {})

        def material(key: str, base: Path) -> str:
            if f"{key}-data" in user or f"{key}-data" in cluster:
                data = base64.b64decode(user.get(f"{key}-data") or cluster[f"{key}-data"])
                handle = tempfile.NamedTemporaryFile(delete=False, suffix=".pem")  # noqa: SIM115
                with handle:
                    handle.write(data)
                return handle.name
            value = user.get(key) or cluster.get(key) or ""
            return str(base / value) if value else ""

        base = path.parent
        return cls(
            server=str(cluster["server"]).rstrip("/"),
            ca_file=material("certificate-authority", base) or None,
            identity=Identity(
                token=str(user.get("token", "")),
                token_file=str(base / user["tokenFile"]) if user.get("tokenFile") else "",
                cert_file=material("client-certificate", base),
                key_file=material("client-key", base),
            ),
        )

    def ssl_context(self, with_identity: bool) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        if with_identity and self.identity.cert_file:
            context.load_cert_chain(self.identity.cert_file, self.identity.key_file or None)
        return context


class Pools:
    """The two connection pools; one instance per process, closed on shutdown."""

    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        self.endpoint = endpoint
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        self.callers = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=endpoint.ssl_context(False), limit=100),
            timeout=client_timeout,
        )
        self.own = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=endpoint.ssl_context(True), limit=10),
            timeout=client_timeout,
        )

    def caller(self, token: str) -> Client:
        return Client(self.callers, self.endpoint.server, token)

    def gateway(self) -> Client:
        return Client(self.own, self.endpoint.server, self.endpoint.identity.bearer())

    async def close(self) -> None:
        await self.callers.close()
        await self.own.close()


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
        try:
            decoded = json.loads(text) if text else {}
        except json.JSONDecodeError:
            decoded = {}
        parsed: JSON = decoded if isinstance(decoded, dict) else {}
        if 200 <= status < 300:
            return parsed
        raise ApiError(
            status,
            str(parsed.get("reason", "")),
            str(parsed.get("message") or text.strip() or f"HTTP {status}"),
        )

    async def username(self) -> str:
        """Who the token belongs to (a SelfSubjectReview: every authenticated user may ask)."""
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        answer = await self.call(
            "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body=review
        )
        return str(((answer.get("status") or {}).get("userInfo") or {}).get("username", ""))

    async def get(self, kind: str, namespace: str, name: str) -> JSON | None:
        try:
            return await self.call("GET", url(kind, namespace, name))
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
        data = await self.call("GET", url(kind, namespace), query=query)
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
        table = await self.call("GET", url(kind, namespace), query=query, accept=TABLE)
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
        return await self.call("POST", url(kind, namespace), body=obj, query=query)

    async def replace(self, kind: str, namespace: str, obj: JSON) -> JSON:
        return await self.call("PUT", url(kind, namespace, obj["metadata"]["name"]), body=obj)

    async def merge_patch(self, kind: str, namespace: str, name: str, patch: JSON) -> JSON:
        return await self.call(
            "PATCH", url(kind, namespace, name), body=patch, content_type=MERGE_PATCH
        )

    async def delete(self, kind: str, namespace: str, name: str, uid: str) -> None:
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}}
        try:
            await self.call("DELETE", url(kind, namespace, name), body=body)
        except ApiError as e:
            if e.status != 404:
                raise
