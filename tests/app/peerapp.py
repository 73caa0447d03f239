"""peerapp: a small clustered server for the live clone tests (standard library only).

It behaves like the clustered stores the operator clones (Typesense,
Elasticsearch, etcd) in the one way that matters for isolation: it finds its
peers through configuration and talks to them.

- Peers come from a Typesense-style nodes list, `host:peer_port:api_port`
  comma-separated, read from a file (`PEERAPP_NODES_FILE`, e.g. a mounted
  ConfigMap) and from an environment variable (`PEERAPP_NODES`); both are
  re-read on every round, so a changed file is seen.
- Every second it calls each peer's `/identity` over HTTP, saying who calls
  (header `X-Peerapp-Caller`), and keeps what each answered.
- It records every caller of its own `/identity`, in memory only: a clone
  starts from a copy of the volume, never from a copy of its source's
  callers.
- It advertises an address of its own, as Kafka's advertised listeners and
  Elasticsearch's publish host do: `--advertise=host:peer_port:api_port` (an
  argument) and `PEERAPP_ADVERTISE` (the environment), typically
  `$(POD_NAME).<service>.<namespace>.svc.cluster.local:…`, which the kubelet
  expands. It calls what it advertises too, as a peer would: a clone that
  advertised its source's zone would call the source, and be seen there.
- Documents live on its volume (`PEERAPP_DATA`, default /data); the version is
  the image's (`/etc/peerapp/version`, baked in at build time), so a clone on
  a new image reports the new version.

HTTP on `PEERAPP_PORT` (default 8108):
  GET /identity            {"pod", "cluster", "namespace", "version",
                            "advertised": {"arg", "env"}}
  GET /peers               {"configured": {"env": [...], "file": [...]},
                            "answers": {host: identity or {"error": ...}},
                            "ever_answered": {host: [pod, ...]}}
  GET /callers             [{"pod", "cluster", "address"}, ...] (distinct)
  PUT /documents/<id>      store the body
  GET /documents           {id: body}
  GET /healthz             200

A continuous writer (`PEERAPP_WRITER=1`), for the consistency hooks' live test: it
appends sequence-numbered records to `writes.log` on its volume, one every
`PEERAPP_WRITE_INTERVAL` seconds, each acknowledged (counted) only once it is written
and fsynced. What a volume holds at start is checked: complete records numbered 1..n,
and whether the last one is torn (a cut taken mid-write). Then it goes on from n+1.
  POST /pause?seconds=N    flush and pause writes: waits for the write under way,
                           fsyncs, answers {"acked": n}; the pause expires by itself
                           after min(N, PEERAPP_MAX_PAUSE) seconds (belt and braces)
  POST /resume             resume writes now
  GET /writes              {"acked", "paused", "pauses": [{"acked", "seconds"}],
                            "resumes": ["resume" | "expired", ...],
                            "at_start": {"records", "torn", "gaps"}}
The same as a command, for a hook (`kubectl exec … -- python3 /app/peerapp.py pause 60`):
  peerapp.py pause [SECONDS] | resume | writes    exit 0 on success, else 1
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

POD = os.environ.get("HOSTNAME") or socket.gethostname()
CLUSTER = re.sub(r"-\d+$", "", POD)  # a StatefulSet pod's name is <statefulset>-<ordinal>
NAMESPACE = os.environ.get("PEERAPP_NAMESPACE", "")
PORT = int(os.environ.get("PEERAPP_PORT", "8108"))
DATA = Path(os.environ.get("PEERAPP_DATA", "/data")) / "documents"
NODES_FILE = os.environ.get("PEERAPP_NODES_FILE", "")
ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def version() -> str:
    try:
        return Path("/etc/peerapp/version").read_text().strip()
    except OSError:
        return "unknown"


def advertised() -> dict[str, str]:
    """What this pod tells its peers to reach it at, by argument and by environment."""
    arg = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--advertise=")), "")
    return {"arg": arg, "env": os.environ.get("PEERAPP_ADVERTISE", "")}


def identity() -> dict[str, Any]:
    return {
        "pod": POD,
        "cluster": CLUSTER,
        "namespace": NAMESPACE,
        "version": version(),
        "advertised": advertised(),
    }


def parse_nodes(text: str) -> list[str]:
    """Hosts of a `host:peer_port:api_port,...` list, with the API port: `host:api_port`."""
    peers = []
    for entry in re.split(r"[,\s]+", text.strip()):
        parts = entry.split(":")
        if len(parts) == 3 and parts[0]:
            peers.append(f"{parts[0]}:{parts[2]}")
    return peers


def configured() -> dict[str, list[str]]:
    from_file: list[str] = []
    if NODES_FILE:
        with contextlib.suppress(OSError):
            from_file = parse_nodes(Path(NODES_FILE).read_text())
    return {"env": parse_nodes(os.environ.get("PEERAPP_NODES", "")), "file": from_file}


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.answers: dict[str, dict[str, Any]] = {}
        self.ever_answered: dict[str, set[str]] = {}
        self.callers: set[tuple[str, str, str]] = set()


STATE = State()


def call_peers_forever() -> None:
    while True:
        peers = configured()
        own = {host for address in advertised().values() for host in parse_nodes(address)}
        for peer in sorted(set(peers["env"]) | set(peers["file"]) | own):
            request = urllib.request.Request(
                f"http://{peer}/identity", headers={"X-Peerapp-Caller": f"{POD}/{CLUSTER}"}
            )
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    answer: dict[str, Any] = json.loads(response.read())
            except (OSError, ValueError) as error:
                answer = {"error": str(error)}
            with STATE.lock:
                STATE.answers[peer] = answer
                if "pod" in answer:
                    STATE.ever_answered.setdefault(peer, set()).add(str(answer["pod"]))
        time.sleep(1)


WRITES = Path(os.environ.get("PEERAPP_DATA", "/data")) / "writes.log"
MAX_PAUSE = float(os.environ.get("PEERAPP_MAX_PAUSE", "300"))
RECORD = re.compile(r"^(\d+) ([0-9a-f]{64})$")


def record_line(seq: int) -> str:
    """One record: its number and a digest of it, so a torn one never parses."""
    return f"{seq} {hashlib.sha256(f'peerapp-{seq}'.encode()).hexdigest()}\n"


def check_log(text: str) -> dict[str, Any]:
    """What a log holds: its complete records (numbered 1..n in order), whether its tail is
    torn (a partial record), and any gap or disorder."""
    lines = text.split("\n")
    tail, complete = lines[-1], lines[:-1]
    records, gaps = 0, 0
    for line in complete:
        match = RECORD.match(line)
        if match is None or record_line(int(match.group(1))) != line + "\n":
            gaps += 1
            continue
        if int(match.group(1)) != records + 1:
            gaps += 1
        records = int(match.group(1))
    return {"records": records, "torn": tail != "", "gaps": gaps}


class Writer:
    """The continuous writer: each record written, flushed and fsynced before it counts."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # held while a record is written, and by a pause
        self.acked = 0
        self.paused_until = 0.0
        self.pauses: list[dict[str, float]] = []
        self.resumes: list[str] = []
        self.at_start: dict[str, Any] = {"records": 0, "torn": False, "gaps": 0}

    def start(self) -> None:
        WRITES.parent.mkdir(parents=True, exist_ok=True)
        text = WRITES.read_text() if WRITES.exists() else ""
        self.at_start = check_log(text)
        self.acked = self.at_start["records"]
        if self.at_start["torn"]:  # keep what is whole: a torn tail is cut off, as a WAL does
            WRITES.write_text(text[: text.rfind("\n") + 1])
        threading.Thread(target=self.write_forever, daemon=True).start()

    def paused(self) -> bool:
        return time.monotonic() < self.paused_until

    def write_forever(self) -> None:
        interval = float(os.environ.get("PEERAPP_WRITE_INTERVAL", "0.05"))
        with WRITES.open("a") as log:
            while True:
                time.sleep(interval)
                with self.lock:
                    if self.paused_until and not self.paused():
                        self.paused_until = 0.0
                        self.resumes.append("expired")
                    if self.paused():
                        continue
                    log.write(record_line(self.acked + 1))
                    log.flush()
                    os.fsync(log.fileno())
                    self.acked += 1

    def pause(self, seconds: float) -> dict[str, Any]:
        seconds = max(0.0, min(seconds, MAX_PAUSE))
        with self.lock:  # the write under way ends first; nothing starts until resumed
            self.paused_until = time.monotonic() + seconds
            fd = os.open(WRITES.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self.pauses.append({"acked": self.acked, "seconds": seconds})
            return {"acked": self.acked, "seconds": seconds}

    def resume(self) -> dict[str, Any]:
        with self.lock:
            was = self.paused()
            self.paused_until = 0.0
            if was:
                self.resumes.append("resume")
            return {"acked": self.acked, "was_paused": was}

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {
                "acked": self.acked,
                "paused": self.paused(),
                "pauses": list(self.pauses),
                "resumes": list(self.resumes),
                "at_start": dict(self.at_start),
            }


WRITER = Writer()


class Handler(BaseHTTPRequestHandler):
    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body, sort_keys=True).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._send(200, {"ok": True})
        elif self.path == "/identity":
            caller = self.headers.get("X-Peerapp-Caller", "")
            if caller:
                pod, _, cluster = caller.partition("/")
                with STATE.lock:
                    STATE.callers.add((pod, cluster, self.client_address[0]))
            self._send(200, identity())
        elif self.path == "/peers":
            with STATE.lock:
                body = {
                    "configured": configured(),
                    "answers": dict(STATE.answers),
                    "ever_answered": {k: sorted(v) for k, v in STATE.ever_answered.items()},
                }
            self._send(200, body)
        elif self.path == "/callers":
            with STATE.lock:
                callers = sorted(STATE.callers)
            self._send(200, [{"pod": p, "cluster": c, "address": a} for p, c, a in callers])
        elif self.path == "/writes":
            self._send(200, WRITER.state())
        elif self.path == "/documents":
            docs = {p.name: p.read_text() for p in sorted(DATA.glob("*"))} if DATA.is_dir() else {}
            self._send(200, docs)
        else:
            self._send(404, {"error": f"no route {self.path}"})

    def do_POST(self) -> None:
        route, _, query = self.path.partition("?")
        params = dict(p.partition("=")[::2] for p in query.split("&") if p)
        if route == "/pause":
            try:
                seconds = float(params.get("seconds", "60"))
            except ValueError:
                self._send(400, {"error": "seconds must be a number"})
                return
            self._send(200, WRITER.pause(seconds))
        elif route == "/resume":
            self._send(200, WRITER.resume())
        else:
            self._send(404, {"error": f"no route {self.path}"})

    def do_PUT(self) -> None:
        doc_id = self.path.removeprefix("/documents/")
        if not self.path.startswith("/documents/") or not ID_RE.match(doc_id):
            self._send(400, {"error": "PUT /documents/<id> ([A-Za-z0-9_.-]{1,100})"})
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        DATA.mkdir(parents=True, exist_ok=True)
        tmp = DATA / f".{doc_id}.tmp"
        tmp.write_bytes(body)
        os.replace(tmp, DATA / doc_id)
        self._send(201, {"id": doc_id})

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per peer call each second would drown the pod's log


def command(args: list[str]) -> int:
    """`pause [SECONDS]`, `resume`, `writes`: the running server's endpoint, for hooks."""
    verb = args[0]
    if verb not in ("pause", "resume", "writes"):
        print(f"usage: peerapp.py [pause [SECONDS] | resume | writes], not {verb}", file=sys.stderr)
        return 2
    query = f"?seconds={float(args[1]):g}" if verb == "pause" and len(args) > 1 else ""
    request = urllib.request.Request(
        f"http://127.0.0.1:{PORT}/{verb}{query}", method="GET" if verb == "writes" else "POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            print(response.read().decode())
    except OSError as error:
        print(f"peerapp {verb}: {error}", file=sys.stderr)
        return 1
    return 0


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if args:
        sys.exit(command(args))
    print(f"peerapp {version()}: {POD} of {CLUSTER}, peers {configured()}", flush=True)
    threading.Thread(target=call_peers_forever, daemon=True).start()
    if os.environ.get("PEERAPP_WRITER") == "1":
        WRITER.start()
    ThreadingHTTPServer(("", PORT), Handler).serve_forever()


if __name__ == "__main__":
    main()
