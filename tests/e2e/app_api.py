"""The test app's HTTP API as the live tests use it (tests/app/peerapp.py): documents,
the continuous writer's state, and its pods once Ready."""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

from tests.e2e.kube import Kubectl, ready_replicas, wait_for

API_PORT = 8108


def http(ip: str, path: str, body: bytes | None = None) -> Any:
    """GET (or, with a body, PUT) one path of a peerapp pod's API."""
    request = urllib.request.Request(
        f"http://{ip}:{API_PORT}{path}", data=body, method="PUT" if body is not None else "GET"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def pods_of(kubectl: Kubectl, statefulset: str, replicas: int) -> dict[str, str]:
    """{pod name: IP} of the StatefulSet's pods, once all are Ready and have an IP (found
    by name: a clone's pods carry labels of their own, not the source's). Containers on
    the real node, each behind a provisioned volume, with a suite beside them on two
    cores: that once took over 120 s."""

    def all_ready() -> dict[str, str] | None:
        if ready_replicas(kubectl, statefulset) != replicas:
            return None
        ips = {
            p["metadata"]["name"]: p["status"].get("podIP", "")
            for p in kubectl.items("pods")
            if re.fullmatch(rf"{statefulset}-\d+", p["metadata"]["name"])
        }
        return ips if len(ips) == replicas and all(ips.values()) else None

    return wait_for(f"{statefulset}'s pods Ready with IPs", all_ready, timeout=300)


def writing(ip: str, beyond: int = 0) -> dict[str, Any] | None:
    """The writer's state once it acknowledged more than `beyond` records and is not
    paused (None before)."""
    state = http(ip, "/writes")
    return state if state["acked"] > beyond and not state["paused"] else None
