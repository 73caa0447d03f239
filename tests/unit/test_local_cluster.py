"""The local control plane's early, specific errors and its no-download guarantee."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

from tests.cluster import localcluster

BUILD = Path(localcluster.__file__).with_name("build.sh")


def run_build(path: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path, "HOME": str(tmp_path), "CLONE_OPERATOR_CACHE": str(tmp_path / "cache")}
    return subprocess.run(
        ["/bin/bash", str(BUILD)], env=env, capture_output=True, text=True, check=False
    )


def test_build_without_go_says_how_to_get_it(tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("sed", "mkdir", "dirname", "grep"):
        (tools / tool).symlink_to(
            f"/usr/bin/{tool}" if Path(f"/usr/bin/{tool}").exists() else f"/bin/{tool}"
        )
    result = run_build(str(tools), tmp_path)
    assert result.returncode != 0
    assert "Go is not installed: install Go >= 1.24" in result.stderr


def test_build_with_an_old_go_names_the_versions(tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    fake_go = tools / "go"
    fake_go.write_text("#!/bin/sh\necho go1.21.3\n")  # answers `go env GOVERSION`
    fake_go.chmod(0o755)
    result = run_build(f"{tools}:{os.environ['PATH']}", tmp_path)
    assert result.returncode != 0
    assert "Go go1.21.3 is too old" in result.stderr
    assert "needs Go >= 1.24" in result.stderr


def test_a_busy_port_is_detected() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert localcluster._port_in_use(port)
    assert not localcluster._port_in_use(port)


def test_only_urls_of_this_machine_count_as_no_download() -> None:
    plan = (
        "kube-apiserver --etcd-servers=http://127.0.0.1:32765 "
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local "
        "server: https://127.0.0.1:36443 "
        "download https://dl.k8s.io/release/v1.34.4/bin/linux/amd64/kubectl"
    )
    assert localcluster.downloads_in(plan) == [
        "https://dl.k8s.io/release/v1.34.4/bin/linux/amd64/kubectl"
    ]


def test_kwokctl_configuration_uses_local_binaries_on_loopback() -> None:
    config = json.loads(localcluster.kwokctl_config(localcluster.paths()))
    options = config["options"]
    assert options["runtime"] == "binary"
    assert options["bindAddress"] == "127.0.0.1"
    binaries = {k: v for k, v in options.items() if k.endswith("Binary")}
    assert set(binaries) >= {
        "kubeApiserverBinary",
        "kubeControllerManagerBinary",
        "kubeSchedulerBinary",
        "kubectlBinary",
        "etcdBinary",
        "kwokControllerBinary",
    }
    assert all(Path(v).is_absolute() and "://" not in v for v in binaries.values())
