"""Fixtures for the Helm chart's e2e tests: the real `helm` binary and releases
(tests/e2e/chart/helm.py).

Every release gets a unique name (its cluster-scoped RBAC objects are named
after it) and is uninstalled after the test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.cluster import localcluster
from tests.e2e.chart.helm import Helm, Release
from tests.e2e.kube import Kubectl


@pytest.fixture(scope="session")
def helm(cluster: localcluster.Paths) -> Helm:
    return Helm(cluster.helm_bin / "helm", cluster.kubeconfig)


@pytest.fixture
def release(helm: Helm, admin: Kubectl, namespace: str) -> Iterator[Release]:
    """A not-yet-installed release in the test's namespace; uninstalled afterwards.

    Also after a failed install: Helm leaves what it created before the failure,
    and the cluster-scoped RBAC objects would outlive the namespace.
    """
    rel = Release(helm, f"co-{uuid.uuid4().hex[:6]}", namespace)
    yield rel
    helm("uninstall", rel.name, "--namespace", namespace, "--wait", check=False)
    admin(
        "delete",
        "clusterrole,clusterrolebinding",
        "-l",
        f"app.kubernetes.io/instance={rel.name}",
        "--ignore-not-found",
        check=False,
    )
