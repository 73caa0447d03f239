#!/usr/bin/env python3
"""`make deploy` / `make undeploy`: the chart, with the image built here, on the local cluster's real node.

    hack/deploy.py up [helm args...]   # build, import into the node, helm upgrade --install, wait Ready
    hack/deploy.py down                # helm uninstall
    hack/deploy.py import IMAGE        # a Docker image into every real node that runs

The same code the in-cluster e2e harness installs with (tests/e2e/incluster.py:
`build_and_import`, `chart_values`, `helm_install`): the image is tagged with its ID
and imported into the real node's containerd (never pulled), the pods tolerate the
node's taint, the chart's two replicas elect a leader. Unlike the harness it turns
the webhook on (the chart's default) and names the local cluster's regions, and
it uninstalls any other release of the chart (two operators would both act). The
CRDs come from crds/ (`make crds-apply` runs first). DEPLOY_RELEASE and
DEPLOY_NAMESPACE choose the release.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.cluster import localcluster, realnode  # noqa: E402
from tests.e2e.incluster import (  # noqa: E402
    all_ready_and_leading,
    build_and_import,
    chart_values,
    fullname,
    helm_install,
)
from tests.e2e.kube import Kubectl, wait_for  # noqa: E402

RELEASE = os.environ.get("DEPLOY_RELEASE") or "clone-operator"
NAMESPACE = os.environ.get("DEPLOY_NAMESPACE") or "clone-operator-system"
# What a user of this cluster would set: the webhook (in-cluster, behind its Service)
# and friendly names for the local cluster's two regions.
SETTINGS = {
    "CLONE_OPERATOR_WEBHOOK_MODE": "service",
    "CLONE_OPERATOR_REGION_ALIASES": '{"virginia": "us-east-1", "oregon": "us-west-2"}',
}


def up(extra: list[str]) -> int:
    cluster = localcluster.up()
    if not realnode.running(localcluster.node_paths(cluster)):
        reason = realnode.unavailable_reason() or "it is not running (see `make cluster`)"
        print(f"deploy: the local cluster has no real node to run the image on: {reason}")
        return 1
    helm = [str(cluster.helm_bin / "helm"), "--kubeconfig", str(cluster.kubeconfig)]
    admin = Kubectl(cluster.kube_bin / "kubectl", cluster.kubeconfig)
    uninstall_others(helm, admin)
    image = build_and_import(cluster.cache, cluster.cluster_dir)
    mover = build_mover(cluster)
    settings = {**SETTINGS, "CLONE_OPERATOR_MOVER_IMAGE": mover}
    print(f"deploy: helm upgrade --install {RELEASE} in {NAMESPACE} with {image} ({mover})")
    helm_install(helm, RELEASE, NAMESPACE, [*chart_values(image, settings), *extra])
    kubectl = admin.in_namespace(NAMESPACE)
    leader = wait_for(
        "the operator's pods Ready and one leading",
        lambda: all_ready_and_leading(kubectl, RELEASE),
        timeout=180,
    )
    print(
        f"deploy: {RELEASE} is Ready on the real node; {leader} leads. Look with:\n"
        f"  export KUBECONFIG={cluster.kubeconfig}\n"
        f"  {cluster.kube_bin / 'kubectl'} -n {NAMESPACE} get pods -o wide\n"
        f"  {cluster.kube_bin / 'kubectl'} -n {NAMESPACE} logs deploy/{fullname(RELEASE)}"
    )
    return 0


def uninstall_others(helm: list[str], admin: Kubectl) -> None:
    """Every other release of the chart goes (the in-cluster e2e session leaves one
    running): two operators watching every namespace would both act."""
    selector = "app.kubernetes.io/name=clone-operator"
    for deployment in admin.items("deployments", "--all-namespaces", "-l", selector):
        meta = deployment["metadata"]
        release = (meta.get("labels") or {}).get("app.kubernetes.io/instance")
        if release and (meta["namespace"], release) != (NAMESPACE, RELEASE):
            print(f"deploy: uninstalling {meta['namespace']}/{release}, another operator")
            subprocess.run(
                [*helm, "uninstall", release, "--namespace", meta["namespace"], "--wait"],
                check=False,
                capture_output=True,
            )


def build_mover(cluster: localcluster.Paths) -> str:
    """The data mover's image (the `Transfer` copy method), built on the operator's base
    (made already) and put on every real node; its reference, tagged with its ID."""
    base = subprocess.run(
        [str(ROOT / "hack" / "base-image.sh")], capture_output=True, text=True, check=True
    ).stdout.strip()
    env = {**os.environ, "IMAGE_KIND": "mover", "BASE_IMAGE": base}
    built = subprocess.run(
        [str(ROOT / "hack" / "image.sh"), "clone-operator-mover:deploy"],
        capture_output=True, text=True, env=env, check=True,
    ).stdout.strip()  # fmt: skip
    ref = f"clone-operator-mover:{built.splitlines()[-1].removeprefix('sha256:')[:12]}"
    subprocess.run(
        [realnode.docker_client() or "docker", "tag", "clone-operator-mover:deploy", ref],
        check=True,
    )
    import_everywhere(cluster, ref)
    return ref


def import_everywhere(cluster: localcluster.Paths, ref: str) -> int:
    """Put a Docker image on every real node that runs (never pulled there)."""
    count = 0
    for spec in realnode.SPECS.values():
        np = localcluster.node_paths(cluster, spec)
        if realnode.running(np):
            if not realnode.has_image(np, ref):
                realnode.import_image(np, ref)
            count += 1
    return count


def down() -> int:
    cluster = localcluster.paths()
    helm = [str(cluster.helm_bin / "helm"), "--kubeconfig", str(cluster.kubeconfig)]
    status = [*helm, "status", RELEASE, "--namespace", NAMESPACE]
    if subprocess.run(status, check=False, capture_output=True).returncode != 0:
        # (helm's --ignore-not-found says "uninstalled" even when there was nothing.)
        print(f"undeploy: no release {RELEASE} in {NAMESPACE}: nothing to uninstall")
        return 0
    args = [*helm, "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait"]
    return subprocess.run(args, check=False).returncode


def main(argv: list[str]) -> int:
    if argv[:1] == ["up"]:
        return up(argv[1:])
    if argv == ["down"]:
        return down()
    if len(argv) == 2 and argv[0] == "import":
        count = import_everywhere(localcluster.paths(), argv[1])
        print(f"{argv[1]}: on {count} real nodes" if count else f"{argv[1]}: no real node runs")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
