"""Where the API server is, the CA that signs it, and who calls when no caller does.

In a pod: the ServiceAccount's token and CA and the `KUBERNETES_SERVICE_*` address;
else the kubeconfig (`KUBECONFIG` or `~/.kube/config`): its current context's
server, CA, and user (a token, a token file, a client certificate, or an exec
credential plugin). The one kubeconfig loading of both clients: the gateway's
(`kube.client.Pools`) and the operator's (`clone_operator.k8s.api.Kube.connect`,
which makes its identity from what is found here). Owns only finding these; it
sends nothing, and holds no identity of its own.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeconfigError(ValueError):
    """A kubeconfig this loader cannot use; the message names what to change."""


@dataclass(frozen=True)
class Exec:
    """A kubeconfig user's credential plugin (`users[].user.exec`): a command that prints
    an ExecCredential; its token is used until its expirationTimestamp."""

    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    cached: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def token(self) -> str | None:
        expiry = self.cached.get("expiry")
        if "token" in self.cached and (expiry is None or datetime.now(UTC) < expiry):
            return str(self.cached["token"])
        done = subprocess.run(
            [self.command, *self.args],
            env={**os.environ, **dict(self.env)},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise KubeconfigError(
                f"the kubeconfig's exec plugin {self.command} failed: {done.stderr}"
            )
        status = json.loads(done.stdout).get("status") or {}
        if not status.get("token"):
            raise KubeconfigError(
                f"the kubeconfig's exec plugin {self.command} gave no token (client "
                "certificates from a plugin are not supported: give the certificate files)"
            )
        stamp = status.get("expirationTimestamp")
        self.cached["token"] = status["token"]
        self.cached["expiry"] = (
            datetime.fromisoformat(stamp.replace("Z", "+00:00")) - timedelta(seconds=10)
            if stamp
            else None
        )
        return str(status["token"])


@dataclass(frozen=True)
class Identity:
    """How a process authenticates as itself: a token file, a token, an exec plugin, or
    a client certificate."""

    token_file: str = ""
    token: str = ""
    cert_file: str = ""
    key_file: str = ""
    exec: Exec | None = None

    def bearer(self) -> str | None:
        if self.token_file:
            # Projected tokens rotate: read the file each time (it is small and cached by the OS).
            return Path(self.token_file).read_text().strip()
        if self.exec is not None:
            return self.exec.token()
        return self.token or None


@dataclass(frozen=True)
class Endpoint:
    """Where the API server is, the CA that signs it, and the process's own identity."""

    server: str
    ca_file: str | None
    identity: Identity
    verify: bool = True
    """False: the kubeconfig's cluster says `insecure-skip-tls-verify: true`."""

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
        unsupported = sorted(k for k in ("auth-provider", "username", "password") if k in user)
        if unsupported:
            raise KubeconfigError(
                f"{path}: the user of context {current} uses {', '.join(unsupported)}, which "
                "this loader does not support: give a token, a token file, a client "
                "certificate or an exec plugin"
            )

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
        plugin = user.get("exec")
        return cls(
            server=str(cluster["server"]).rstrip("/"),
            ca_file=material("certificate-authority", base) or None,
            identity=Identity(
                token=str(user.get("token", "")),
                token_file=str(base / user["tokenFile"]) if user.get("tokenFile") else "",
                cert_file=material("client-certificate", base),
                key_file=material("client-key", base),
                exec=Exec(
                    command=str(plugin["command"]),
                    args=tuple(str(a) for a in plugin.get("args") or ()),
                    env=tuple((str(e["name"]), str(e["value"])) for e in plugin.get("env") or ()),
                )
                if plugin
                else None,
            ),
            verify=not cluster.get("insecure-skip-tls-verify", False),
        )

    def ssl_context(self, with_identity: bool) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if with_identity and self.identity.cert_file:
            context.load_cert_chain(self.identity.cert_file, self.identity.key_file or None)
        return context
