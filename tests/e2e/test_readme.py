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
    """The fenced bash block right after the marker."""
    text = (ROOT / "README.md").read_text()
    after = text[text.index(MARKER) :]
    start = after.index("```bash\n") + len("```bash\n")
    return after[start : after.index("```\n", start)]


def test_the_demo_block_is_marked_in_the_readme() -> None:
    block = demo_block()
    assert "kubectl apply -f crds/examples/source-cluster.yaml" in block
    # The source must be complete before it is cloned: the demo waits for it.
    assert block.index("kubectl rollout status statefulset/search") < block.index(
        "crds/examples/cloningoperation.yaml"
    )


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
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    for context in config["contexts"]:
        context["context"]["namespace"] = kubectl.namespace
    kubeconfig.write_text(yaml.safe_dump(config))
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
