"""The README's 60-second demo, run verbatim: what a newcomer pastes must work.

The block after the README's `<!-- demo: ... -->` marker runs in bash (`-euo
pipefail`) at the repository's root, with the operator running as `make dev` runs
it (its webhook on). CLONE_OPERATOR_CACHE points at a directory shaped like the
local cluster's cache whose kubeconfig puts the demo in the test's namespace.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.cluster import localcluster
from tests.e2e.harness import ROOT, OperatorProcess
from tests.e2e.kube import Kubectl

MARKER = "<!-- demo: tests/e2e/test_readme.py"


def demo_block() -> str:
    """The fenced bash block right after the demo's marker."""
    return marked_block(MARKER)


def marked_block(marker: str) -> str:
    """The fenced bash block right after `marker`."""
    text = (ROOT / "README.md").read_text()
    after = text[text.index(marker) :]
    start = after.index("```bash\n") + len("```bash\n")
    return after[start : after.index("```\n", start)]


def test_the_demo_block_is_marked_in_the_readme() -> None:
    block = demo_block()
    assert "kubectl apply -f crds/examples/source-cluster.yaml" in block
    # The source must be complete before it is cloned: the demo waits for it.
    assert block.index("kubectl rollout status statefulset/search") < block.index(
        "crds/examples/cloningoperation.yaml"
    )


def write_kubeconfig(cluster: localcluster.Paths, kubectl: Kubectl, path: Path) -> None:
    """The cluster's admin kubeconfig with the test's namespace as every context's."""
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    for context in config["contexts"]:
        context["context"]["namespace"] = kubectl.namespace
    path.write_text(yaml.safe_dump(config))


@pytest.mark.e2e
def test_the_readme_demo_works_when_pasted(
    webhook: OperatorProcess,
    cluster: localcluster.Paths,
    kubectl: Kubectl,
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    kubeconfig = cache / "kwok" / "clusters" / "clone-operator" / "kubeconfig.yaml"
    kubeconfig.parent.mkdir(parents=True)
    write_kubeconfig(cluster, kubectl, kubeconfig)
    (cache / "path").symlink_to(cluster.bin_dir)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", demo_block()],
        cwd=ROOT,
        env={**os.environ, "CLONE_OPERATOR_CACHE": str(cache)},
        capture_output=True,
        text=True,
        timeout=480,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    status = kubectl.get("cloningoperation", "search-to-28")["status"]
    assert (status["phase"], status["readyReplicas"]) == ("Succeeded", 3)
    assert status["targetCluster"] in result.stdout  # the last command lists the clone


CROSS_REGION = "<!-- cross-region: tests/e2e/test_readme.py"


@pytest.mark.e2e
def test_the_readme_cross_region_example_moves_the_data_through_auto(
    webhook: OperatorProcess,
    cluster: localcluster.Paths,
    kubectl: Kubectl,
    tmp_path: Path,
) -> None:
    """The README's clone into us-west-2, pasted after the demo's exports: `Auto` picks a
    Transfer (the requester, the admin, may snapshot and create pods through its group),
    and the notes written in us-east-1 are on the clone's volume on the west real node."""
    from tests.cluster import realnode

    up = [
        s for s in realnode.SPECS.values() if realnode.running(localcluster.node_paths(cluster, s))
    ]
    if len(up) < 2:
        pytest.skip(f"needs both real nodes: {realnode.unavailable_reason() or 'not both up'}")
    kubeconfig = tmp_path / "kubeconfig.yaml"
    write_kubeconfig(cluster, kubectl, kubeconfig)
    exports = f"export KUBECONFIG={kubeconfig}\nexport PATH={cluster.bin_dir}:$PATH\n"
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", exports + marked_block(CROSS_REGION)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    status = kubectl.get("cloningoperation", "notes-to-oregon")["status"]
    assert (status["phase"], status["copyMethod"], status["targetRegion"]) == (
        "Succeeded", "Transfer", "us-west-2",
    )  # fmt: skip
    assert status["volumes"][0]["transferred"] is True
    assert "real-west-c" in result.stdout  # `kubectl get pod -o wide`: the west real node
    notes = [line for line in result.stdout.splitlines() if line.startswith("note ")]
    assert len(notes) == 3, result.stdout  # the last notes of the clone's own volume
