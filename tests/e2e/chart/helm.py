"""The real `helm` binary and releases of the chart, for the chart's e2e tests (no fixtures here)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.kube import Kubectl

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "helm" / "clone-operator"
# Any tag: kwok marks pods Running/Ready without pulling images.
IMAGE_TAG = "e2e"


class HelmError(AssertionError):
    pass


@dataclass(frozen=True)
class Helm:
    binary: Path
    kubeconfig: Path

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binary), "--kubeconfig", str(self.kubeconfig), *args],
            text=True,
            capture_output=True,
            check=False,
        )
        if check and result.returncode != 0:
            raise HelmError(f"helm {' '.join(args)}:\n{result.stdout}\n{result.stderr}")
        return result

    def template(self, *args: str) -> list[dict[str, Any]]:
        out = self("template", "clone-operator", str(CHART), *args).stdout
        return [d for d in yaml.safe_load_all(out) if d]


@dataclass
class Release:
    """A release of the chart in a namespace; `install` once, `upgrade` any number of times."""

    helm: Helm
    name: str
    namespace: str
    installed: bool = False
    values: list[str] = field(default_factory=list)

    @property
    def fullname(self) -> str:
        return f"{self.name}-clone-operator"

    def _args(self, sets: dict[str, str]) -> list[str]:
        args = [self.name, str(CHART), "--namespace", self.namespace]
        args += ["--set", f"image.tag={IMAGE_TAG}", "--wait", "--timeout", "120s"]
        for key, value in sets.items():
            args += ["--set-json" if value[:1] in "[{" else "--set", f"{key}={value}"]
        return args

    def install(self, **sets: str) -> subprocess.CompletedProcess[str]:
        result = self.helm("install", *self._args(sets))
        self.installed = True
        return result

    def upgrade(self, **sets: str) -> subprocess.CompletedProcess[str]:
        return self.helm("upgrade", "--reuse-values", *self._args(sets))

    def uninstall(self) -> None:
        if self.installed:
            self.helm("uninstall", self.name, "--namespace", self.namespace, "--wait")
            self.installed = False

    def manifest(self) -> list[dict[str, Any]]:
        out = self.helm("get", "manifest", self.name, "--namespace", self.namespace).stdout
        return [d for d in yaml.safe_load_all(out) if d]


def can_i(admin: Kubectl, sa: str, verb: str, resource: str, namespace: str | None = None) -> bool:
    """`kubectl auth can-i` as the ServiceAccount (impersonated by the admin)."""
    args = ["auth", "can-i", verb, resource, f"--as={sa}"]
    args += ["--namespace", namespace] if namespace else ["--all-namespaces"]
    result = admin(*args, check=False)
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), f"kubectl {' '.join(args)}: {result.stdout}{result.stderr}"
    return answer == "yes"
