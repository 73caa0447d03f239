"""Where the API server is, the CA that signs it, and who calls when no caller does.

In a pod: the ServiceAccount's token and CA and the `KUBERNETES_SERVICE_*` address;
else the kubeconfig (`KUBECONFIG` or `~/.kube/config`). Owns only finding these;
it sends nothing. The operator's own identity is not loaded here (`clone_operator.k8s`).
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class Identity:
    """How a process authenticates as itself: a token file, a token, or a client certificate."""

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
    """Where the API server is, the CA that signs it, and the process's own identity."""

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
