"""The data mover's pods on a real node: built by builders/mover.py, admitted under the
restricted Pod Security profile, copying one volume into another (the test storage's
zonal class) through TLS behind their Service, and resuming after the source's
container is killed mid-transfer; every file arrives, checksum for checksum.

With both real nodes up, the source volume and pod are on real-east-c and the
target's on real-west-c: across regions. Skipped without a real node.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from clone_operator.builders import mover
from clone_operator.builders.provenance import Owner
from clone_operator.reconcile.transfer import Progress, progress
from tests.cluster import localcluster, realnode, storage
from tests.e2e.harness import MOVER_IMAGE as IMAGE
from tests.e2e.incluster import build_mover_image
from tests.e2e.kube import Kubectl, wait_for
from tests.e2e.test_storage import pod_output

pytestmark = pytest.mark.e2e

MEGABYTES = 60
BWLIMIT_KIB = 4 * 1024  # ~15 s for the whole copy: the kill lands mid-way, even when busy


def nodes_up(cluster: localcluster.Paths) -> list[realnode.NodeSpec]:
    return [
        spec
        for spec in realnode.SPECS.values()
        if realnode.running(localcluster.node_paths(cluster, spec))
    ]


@pytest.fixture(scope="module")
def mover_image(cluster: localcluster.Paths) -> tuple[realnode.NodeSpec, realnode.NodeSpec]:
    """The mover's image on the real nodes; (the source's node, the target's node)."""
    up = nodes_up(cluster)
    if not up:
        pytest.skip(f"needs a real node: {realnode.unavailable_reason() or 'none is up'}")
    build_mover_image(cluster.cache, cluster.cluster_dir, up, IMAGE)
    return up[0], up[-1]


def on(node: realnode.NodeSpec) -> mover.Placement:
    return mover.Placement(
        node_selector={"kubernetes.io/hostname": node.name},
        tolerations=({"key": realnode.TAINT_KEY, "operator": "Exists"},),
    )


def local(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod with the image as imported (no registry)."""
    for container in pod["spec"]["containers"]:
        container["imagePullPolicy"] = "Never"
    return pod


def helper_pod(plan: mover.TransferPlan, name: str, claim: str, node: realnode.NodeSpec,
               script: str) -> dict[str, Any]:  # fmt: skip
    """A one-shot pod as the mover runs (same uid, fsGroup and restrictions) on a volume."""
    pod = mover.target_pod(plan)
    spec = pod["spec"]
    container = spec["containers"][0]
    container.update(command=["sh", "-c", script], args=[], env=[])
    container.pop("ports")
    container.pop("readinessProbe")
    container["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    spec["restartPolicy"] = "Never"
    placement = on(node)
    spec["nodeSelector"] = placement.node_selector
    spec["tolerations"] = list(placement.tolerations)
    return local({**pod, "metadata": {"name": name}})


def claim(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": storage.ZONAL_CLASS,  # made where its first pod runs
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }


FILL = (
    f"head -c {MEGABYTES * 3 // 4}000000 /dev/urandom >/data/large && mkdir /data/many && "
    f"for i in $(seq {MEGABYTES * 10 // 4}); do head -c 100000 /dev/urandom >/data/many/f$i; done"
)
CHECKSUMS = (
    "cd /data && find . -path ./.mover-partial -prune -o -type f -print | sort | xargs sha256sum"
)


def state(kubectl: Kubectl, pod: str, previous: bool = False) -> Progress | None:
    args = ["logs", pod, *(["--previous"] if previous else [])]
    result = kubectl(*args, check=False)
    return progress(result.stdout + result.stderr) if result.returncode == 0 else None


def container_id(kubectl: Kubectl, pod: str) -> str | None:
    statuses = ((kubectl.get("pod", pod) or {}).get("status") or {}).get("containerStatuses")
    for status in statuses or []:
        if status.get("state", {}).get("running"):
            return str(status["containerID"]).removeprefix("containerd://")
    return None


def phase(kubectl: Kubectl, pod: str) -> str:
    return str(((kubectl.get("pod", pod) or {}).get("status") or {}).get("phase"))


def test_a_killed_mover_resumes_under_the_restricted_profile(
    cluster: localcluster.Paths,
    admin: Kubectl,
    kubectl: Kubectl,
    mover_image: tuple[realnode.NodeSpec, realnode.NodeSpec],
) -> None:
    source_node, target_node = mover_image
    ns = kubectl.namespace
    assert ns
    # The API server's PodSecurity admission refuses any pod that is not restricted.
    admin("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    plan = mover.TransferPlan(
        owner=Owner(kind="CloningOperation", name="copy", namespace=ns, uid="0" * 8),
        name="copy-data-0",
        namespace=ns,
        image=IMAGE,
        source_claim="cut",
        target_claim="copy",
        source_place=on(source_node),
        target_place=on(target_node),
        run_as_user=1000,
        run_as_group=2000,
        bwlimit_kib=BWLIMIT_KIB,
    )
    # The source volume, written as the application would (the mover's uid and fsGroup).
    kubectl.apply([claim("cut"), claim("copy"),
                   helper_pod(plan, "fill", "cut", source_node, f"{FILL} && {CHECKSUMS}")])  # fmt: skip
    written = pod_output(kubectl, "fill")
    assert written.count("\n") == MEGABYTES * 10 // 4 + 1, written[-500:]
    objects = [
        mover.credentials(plan, secrets.token_hex(32)),
        mover.target_service(plan),
        local(mover.target_pod(plan)),
        local(mover.source_pod(plan)),
    ]
    for obj in objects:  # no owner here: the test's namespace goes with everything
        obj["metadata"].pop("ownerReferences")
    created = kubectl.apply(objects, check=False)
    assert created.returncode == 0, created.stderr  # admitted as restricted

    source, target = f"{plan.name}-source", f"{plan.name}-target"
    started = wait_for(
        "the source a fifth of the way",
        lambda: (s := state(kubectl, source)) and s.total and s.percent >= 20 and s,
        timeout=180,
        interval=0.5,
    )
    assert not started.finished
    # Kill the source's container (its whole process tree) as the node would.
    np = localcluster.node_paths(cluster, source_node)
    cid = container_id(kubectl, source)
    assert cid
    realnode.ctr(np, "tasks", "kill", "--signal", "SIGKILL", cid)

    wait_for("the source to finish", lambda: phase(kubectl, source) == "Succeeded", timeout=180)
    wait_for("the target to finish", lambda: phase(kubectl, target) == "Succeeded", timeout=60)
    pod = kubectl.get("pod", source)
    assert pod["spec"]["nodeName"] == source_node.name
    assert kubectl.get("pod", target)["spec"]["nodeName"] == target_node.name
    assert pod["status"]["containerStatuses"][0]["restartCount"] >= 1  # killed, restarted
    end = state(kubectl, source)
    assert end is not None
    assert end.finished, "the restarted source reported no end"
    total = MEGABYTES * 1_000_000
    assert end.total == total
    # The restarted container did not start from zero: what the first had sent stayed
    # on the target (partial file included) and was not sent again.
    assert end.literal_bytes is not None
    print(f"mover on {source_node.name} -> {target_node.name}: killed at {started.bytes_done:,} "
          f"bytes; after the restart {end.literal_bytes:,} sent, {end.matched_bytes:,} found "
          f"on the target, {end.attempts} attempt(s) in the restarted container")  # fmt: skip
    assert end.literal_bytes < total - started.bytes_done // 2, (started, end)
    # Every file arrived, byte for byte, where the target runs.
    kubectl.apply(helper_pod(plan, "check", "copy", target_node, CHECKSUMS))
    assert pod_output(kubectl, "check") == written
