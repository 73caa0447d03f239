"""The gateway (`clone-operator api`) as a child process, its callers, and the seeds' curls.

The gateway runs with its own ServiceAccount's token (the chart's RBAC: ConfigMaps
in its namespace only); callers are ServiceAccounts whose tokens go in the seeds'
headers. Requests are the seeds' own `curl` commands, run by the real curl.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.kube import Kubectl, wait_for

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / ".artifacts"
CHART = ROOT / "helm" / "clone-operator"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GatewayProcess:
    """`python -m clone_operator api` on a free port, with the given kubeconfig."""

    def __init__(
        self,
        kubeconfig: Path,
        counter_namespace: str,
        name: str = "gateway",
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.context = ssl.create_default_context(cafile=str(tls[0])) if tls else None
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path = ARTIFACTS / f"{name}-{os.getpid()}-{self.port}.log"
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "CLONE_OPERATOR_API_PORT": str(self.port),
            "CLONE_OPERATOR_API_HOST": "127.0.0.1",
            "CLONE_OPERATOR_API_NAMESPACE": counter_namespace,
        }
        if tls:
            env["CLONE_OPERATOR_API_TLS_CERT_FILE"] = str(tls[0])
            env["CLONE_OPERATOR_API_TLS_KEY_FILE"] = str(tls[1])
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "clone_operator", "api"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        wait_for("the gateway to answer /healthz", self.healthy, timeout=30)

    def healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the gateway exited; log: {self.log_path}")
        try:
            with urllib.request.urlopen(
                f"{self.url}/healthz", timeout=1, context=self.context
            ) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def install_gateway_rbac(admin: Kubectl, helm: Path, namespace: str, release: str) -> None:
    """The chart's own gateway ServiceAccount and Role, rendered and applied."""
    rendered = subprocess.run(
        [str(helm), "template", release, str(CHART), "--namespace", namespace,
         "--set", "api.enabled=true", "--set", "crds.enabled=false",
         "--show-only", "templates/gateway-rbac.yaml"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    admin.in_namespace(namespace).apply(rendered)


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def curl(command: str, **replace: str) -> Response:
    """Run a seed's curl command (placeholders replaced) with the real curl."""
    for old, new in replace.items():
        command = command.replace(old, new)
    assert command.lstrip().startswith("curl")
    with tempfile.TemporaryDirectory() as tmp:
        headers, body = Path(tmp) / "headers", Path(tmp) / "body"
        extra = f"curl -sS -D {headers} -o {body} -w '%{{http_code}}' "
        result = subprocess.run(
            ["bash", "-c", extra + command.lstrip()[len("curl") :]],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        lines = headers.read_text().splitlines()
        parsed = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(":") for line in lines[1:] if ":" in line)
        }
        text = body.read_text() if body.exists() else ""  # a 304 has no body
        return Response(int(result.stdout.strip()), parsed, text)


def shape(value: Any) -> Any:
    """The keys and JSON types of a value, recursively (lists: the shape of their items)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if value is None:
        return "null"
    return type(value).__name__


@dataclass(frozen=True)
class Refusal:
    head: str
    """The response's status line and headers (what arrived before the connection ended)."""
    seconds: float
    """From the request's first byte to the end of the response."""
    sent: int
    """Body bytes the client managed to send before the gateway closed the connection."""


def stream_body(port: int, path: str, size: int, chunked: bool) -> Refusal:
    """POST `size` bytes with no credentials over a raw socket (plainly sized, or chunked
    with no length), reading the answer while sending; stops when the gateway closes."""
    block = b"{" * 65536
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % size
    received = bytearray()
    closed = threading.Event()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:

        def read() -> None:
            try:
                while data := s.recv(65536):
                    received.extend(data)
            except OSError:
                pass  # a reset after the answer: the unread body was refused
            closed.set()

        start = time.monotonic()
        s.sendall(b"POST %s HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n%s\r\n\r\n"
                  % (path.encode(), framing))  # fmt: skip
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        sent = 0
        try:
            while sent < size and not closed.is_set():
                s.sendall(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
                sent += len(block)
        except OSError:
            pass  # the gateway closed the connection mid-body, as it should
        closed.wait(10)
        seconds = time.monotonic() - start
    head = bytes(received).partition(b"\r\n\r\n")[0].decode(errors="replace")
    return Refusal(head, seconds, sent)


def rss_kib(pid: int) -> int:
    """A process's resident memory (VmRSS), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")
