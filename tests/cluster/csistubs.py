"""Where the test CSI driver's gRPC stubs are, and how to import them.

tests/cluster/build.sh (component `csi`) generates them with grpcio-tools from
the pinned CSI spec's csi.proto and the kubelet's plugin registration API, into
the binary cache, keyed by the spec, csi-test and generator versions: nothing
generated is committed, and the stubs always match the installed grpcio and
protobuf runtimes (generated code checks them at import).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent


def _versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (HERE / "versions.env").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.strip().split("=", 1)
            out[key] = value
    return out


def cache() -> Path:
    return Path(os.environ.get("CLONE_OPERATOR_CACHE", Path.home() / ".cache" / "clone-operator"))


def csi_dir() -> Path:
    v = _versions()
    return cache() / "bin" / f"csi-{v['CSI_SPEC_VERSION']}-{v['CSI_TEST_VERSION']}"


def stubs_dir() -> Path:
    return csi_dir() / f"python-{importlib.metadata.version('grpcio-tools')}"


def csi_sanity() -> Path:
    return csi_dir() / "csi-sanity"


def build() -> None:
    """Build csi-sanity and the stubs when missing (a no-op once cached)."""
    env = dict(os.environ, CLONE_OPERATOR_PYTHON=sys.executable)
    result = subprocess.run([str(HERE / "build.sh"), "csi"], env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError("tests/cluster/build.sh csi failed (see the log path printed above)")


def load(name: str) -> ModuleType:
    """Import a generated module (csi_pb2, csi_pb2_grpc, pluginregistration_pb2, ...)."""
    path = str(stubs_dir())
    if not Path(path, f"{name}.py").exists():
        build()
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module(name)
