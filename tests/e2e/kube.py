"""Test-side access to the real local cluster: kubectl and a polling helper.

Tests talk to the real kube-apiserver through the real `kubectl` (the same
binary users run), parsing its JSON output.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class KubectlError(AssertionError):
    def __init__(self, args: list[str], stderr: str) -> None:
        super().__init__(f"kubectl {' '.join(args)}: {stderr}")
        self.stderr = stderr


@dataclass(frozen=True)
class Kubectl:
    binary: Path
    kubeconfig: Path
    namespace: str | None = None

    def __call__(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.binary), "--kubeconfig", str(self.kubeconfig)]
        if self.namespace:
            cmd += ["--namespace", self.namespace]
        result = subprocess.run(
            [*cmd, *args], input=stdin, text=True, capture_output=True, check=False
        )
        if check and result.returncode != 0:
            raise KubectlError(list(args), result.stderr)
        return result

    def in_namespace(self, namespace: str) -> Kubectl:
        return Kubectl(self.binary, self.kubeconfig, namespace)

    def apply(
        self, manifest: dict[str, Any] | list[dict[str, Any]] | str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        text = manifest if isinstance(manifest, str) else json.dumps(_as_list(manifest))
        return self("apply", "-f", "-", stdin=text, check=check)

    def get(self, kind: str, name: str | None = None, *args: str) -> Any:
        result = self("get", kind, *([name] if name else []), "-o", "json", *args, check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr or "not found" in result.stderr:
                return None
            raise KubectlError(["get", kind, name or ""], result.stderr)
        return json.loads(result.stdout)

    def items(self, kind: str, *args: str) -> list[dict[str, Any]]:
        data = self.get(kind, None, *args)
        return list(data["items"]) if data else []


def _as_list(manifest: dict[str, Any] | list[dict[str, Any]]) -> dict[str, Any]:
    if isinstance(manifest, dict):
        return manifest
    return {"apiVersion": "v1", "kind": "List", "items": manifest}


def wait_for(
    what: str, fn: Callable[[], T | None], timeout: float = 60, interval: float = 0.25
) -> T:
    """Poll `fn` until it returns something truthy; fail naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout:.0f} s waiting for {what}; last value: {last!r}"
    )


def ready_replicas(kubectl: Kubectl, name: str) -> int:
    sts = kubectl.get("statefulset", name)
    return int(((sts or {}).get("status") or {}).get("readyReplicas") or 0)


def sa_kubeconfig(admin: Kubectl, namespace: str, sa: str, path: Path) -> Path:
    """A kubeconfig that authenticates with a fresh token of the ServiceAccount."""
    token = admin(
        "create", "token", sa, "--namespace", namespace, "--duration", "6h"
    ).stdout.strip()
    config = yaml.safe_load(admin.kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    entry: dict[str, Any] = {"server": cluster["server"]}
    if "certificate-authority-data" in cluster:
        entry["certificate-authority-data"] = cluster["certificate-authority-data"]
    else:
        entry["certificate-authority"] = cluster["certificate-authority"]
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": entry}],
                "users": [{"name": sa, "user": {"token": token}}],
                "contexts": [{"name": "sa", "context": {"cluster": "c", "user": sa}}],
                "current-context": "sa",
            }
        )
    )
    return path


def owned_canary(kubectl: Kubectl, kind: str, owner: str, name: str = "canary") -> dict[str, Any]:
    """A ConfigMap owned by `owner`: once the garbage collector has removed it, it has
    dealt with the owner's deletion, so anything else it would remove is gone too."""
    body = kubectl.get(kind, owner)
    reference = {
        "apiVersion": body["apiVersion"],
        "kind": body["kind"],
        "name": owner,
        "uid": body["metadata"]["uid"],
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "ownerReferences": [reference]},
    }


def make_unplaceable(kubectl: Kubectl, statefulset_name: str) -> None:
    """Give a ready source a pod template no node can take: its clones cannot be scheduled."""
    patch = {"spec": {"template": {"spec": {"nodeSelector": {"disk": "none"}}}}}
    kubectl("patch", "statefulset", statefulset_name, "--type=merge", "-p", json.dumps(patch))
