"""Clones into another region by the data mover (`copyMethod: Transfer`, issue 26), live on
the two real nodes: real-east-c (us-east-1) holds the source, real-west-c (us-west-2)
the clone.

One source for the module: peerapp (tests/app) as a 2-replica continuous writer on the
test storage's zonal class in us-east-1, documents written to each pod and a few MB of
random bytes on ordinal 0's volume: its transfer takes ~16 s at the suite's 512 KiB/s
(`CLONE_OPERATOR_MOVER_BANDWIDTH_KIB`, tests/e2e/harness.py), long enough to act on it
mid-way.

- `Auto` clones it into us-west-2 by Transfer, the writer paused by a pre hook, the
  mover's source container SIGKILLed mid-transfer (through containerd), then the
  operator too: the clone runs on real-west-c with every document, exactly the
  acknowledged writes and the random bytes checksum for checksum; the status shows the
  transfer did not start over; no mover was made twice; nothing of the mover is left;
  the source is untouched.
- An operation deleted mid-transfer leaves nothing: no pod, Secret, Service, volume or
  snapshot of it.
- A transfer that stops moving (the source's container frozen) fails `TransferStalled`
  after the operator's stall setting, never the Timeout, and leaves nothing.
- Token-only requesters (kwok pods, no real node needed): without `create pods`,
  `copyMethod: Transfer` is refused at `kubectl apply`, and `Auto` into another region
  fails `CopyMethodUnsuitable` naming the missing right.

Operations are created by a ServiceAccount with exactly the rights a transfer needs,
which records itself in `cloning.dev/requested-by` (the admission policies let a
creator record its own name; the webhook, when it runs, does it for everyone): Auto asks
the API server whether the recorded requester may create pods, and a SubjectAccessReview
by user name does not see the cluster admin's rights, which come from its group.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from clone_operator.api.policies import REQUESTED_BY
from clone_operator.builders.mover import TRANSFER_LABEL
from clone_operator.builders.provenance import OPERATION_UID
from clone_operator.reconcile.transfer import Progress, progress
from tests.app import images
from tests.cluster import localcluster, realnode, storage
from tests.e2e import app_api
from tests.e2e.app_api import API_PORT, http, writing
from tests.e2e.clones import TERMINAL, wait_phase
from tests.e2e.harness import DEFAULT_OPERATOR_ENV, OperatorProcess
from tests.e2e.incluster import make_mover_image
from tests.e2e.kube import Kubectl, ready_replicas, sa_kubeconfig, wait_for
from tests.e2e.manifests import operation, statefulset
from tests.e2e.requesters import Requester

pytestmark = pytest.mark.e2e

SOURCE, SERVICE = "movesrc", "movesrc-hl"
REPLICAS = 2
SOURCE_REGION, TARGET_REGION = "us-east-1", "us-west-2"
FILLER_BYTES = 8_000_000  # on ordinal 0's volume: ~16 s at 512 KiB/s
TRANSFERRED = "cloning.dev/transferred"
PAUSE = ["python3", "/app/peerapp.py", "pause", "120"]
RESUME = ["python3", "/app/peerapp.py", "resume"]
FILL = (
    "import os; f = open('/data/filler', 'wb'); "
    f"f.write(os.urandom({FILLER_BYTES})); f.flush(); os.fsync(f.fileno())"
)
SHA256 = "import hashlib; print(hashlib.sha256(open('/data/filler', 'rb').read()).hexdigest())"
# status.transfer, the `Transfer` column: `12.0/60.0 MiB (20%), 8.1 MiB/s` while under
# way, `60.0 MiB, done` at the end (reconcile/transfer.py, summary).
UNDER_WAY = re.compile(r"\d+\.\d/(\d+\.\d|\?) MiB( \(\d{1,3}%\))?, \d+\.\d MiB/s")
DONE = re.compile(r"^\d+\.\d MiB, done$")
# The right a mover needs that a plain clone does not: `create pods` (not pods/exec).
CREATE_PODS = re.compile(r"\bcreate pods\b(?!/)")
# Auto's refusal names exactly what the requester may not create.
MAY_NOT_CREATE_PODS = re.compile(r"may not create pods\b(?!/)")


# ---- the source, its requester, the images ----


def pods_of(kubectl: Kubectl, statefulset: str) -> dict[str, str]:
    """{pod: IP} of this module's clusters once every replica is Ready."""
    return app_api.pods_of(kubectl, statefulset, REPLICAS)


@dataclass(frozen=True)
class Source:
    kubectl: Kubectl  # the admin's, in the module's namespace
    requester: Requester
    pods: dict[str, str]  # pod -> IP
    documents: dict[str, dict[str, str]]  # pod -> its documents
    filler: str  # sha256 of ordinal 0's random bytes


@pytest.fixture(scope="module")
def real_nodes(cluster: localcluster.Paths) -> tuple[realnode.NodePaths, realnode.NodePaths]:
    """(the us-east-1 node, the us-west-2 node); skips unless both are up."""
    paths = [localcluster.node_paths(cluster, spec) for spec in (realnode.EAST, realnode.WEST)]
    down = [
        f"{np.spec.name}: {realnode.unavailable_reason(np.spec) or 'not up'}"
        for np in paths
        if not realnode.running(np)
    ]
    if down:
        pytest.skip(f"needs both real nodes, one per region ({'; '.join(down)})")
    return paths[0], paths[1]


@pytest.fixture(scope="module")
def peerapp(
    cluster: localcluster.Paths, real_nodes: tuple[realnode.NodePaths, realnode.NodePaths]
) -> str:
    """peerapp's image on both real nodes (the clone runs in the other region), and the
    mover's (`make mover-image`: the operator's default mover image)."""
    nodes = [np.spec for np in real_nodes]
    make_mover_image()
    refs = [images.build_and_import(cluster.cache, cluster.cluster_dir, ["1.0"], n) for n in nodes]
    return refs[0][0]


def writer_manifests(image: str) -> list[dict[str, Any]]:
    """peerapp as a continuous writer on zonal volumes, on a real node in us-east-1.

    Its pods select a real node by the label's key (each node has its own value) and
    their region by nodeSelector, which a clone's region pin replaces: the clone lands
    on the real node of its region, never on a kwok node.
    """
    labels = {"app": SOURCE}
    container = {
        "name": "peerapp",
        "image": image,
        "imagePullPolicy": "Never",
        "env": [
            {"name": "PEERAPP_WRITER", "value": "1"},
            {"name": "PEERAPP_WRITE_INTERVAL", "value": "0.05"},
        ],
        "ports": [{"name": "api", "containerPort": API_PORT}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": API_PORT}, "periodSeconds": 1},
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    real_node = {"key": realnode.TAINT_KEY, "operator": "Exists"}
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": SERVICE, "labels": labels},
         "spec": {"clusterIP": "None", "selector": labels, "ports": [{"port": API_PORT}]}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": SOURCE, "labels": labels},
         "spec": {
             "replicas": REPLICAS, "serviceName": SERVICE, "podManagementPolicy": "Parallel",
             "selector": {"matchLabels": labels},
             "template": {"metadata": {"labels": labels}, "spec": {
                 "nodeSelector": {"topology.kubernetes.io/region": SOURCE_REGION},
                 "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                     "nodeSelectorTerms": [{"matchExpressions": [real_node]}]}}},
                 "tolerations": [{**real_node, "effect": "NoSchedule"}],
                 "terminationGracePeriodSeconds": 1,
                 "containers": [container]}},
             "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                 "accessModes": ["ReadWriteOnce"],
                 "storageClassName": storage.ZONAL_CLASS,
                 "resources": {"requests": {"storage": "1Gi"}}}}]}},
    ]  # fmt: skip


def filler_sha256(kubectl: Kubectl, pod: str) -> str:
    return kubectl("exec", pod, "--", "python3", "-c", SHA256).stdout.strip()


def transfer_requester(admin: Kubectl, namespace: str, workdir: Path) -> Requester:
    """A ServiceAccount with a token-only kubeconfig and what a transfer with hooks needs:
    a cluster clone's rights, `create volumesnapshots` (the cut), `create pods` (the
    mover), `create pods/exec` (the hooks), and deleting its operations."""
    name = "mover-requester"
    admin.in_namespace(namespace)("create", "serviceaccount", name)
    config = sa_kubeconfig(admin, namespace, name, workdir / "kubeconfig")
    who = Requester(name, namespace, admin, Kubectl(admin.binary, config, namespace))
    who.allow(namespace, "get,create,delete", "cloningoperations.cloning.dev")
    who.may_clone_a_cluster(snapshots=True)
    who.allow(namespace, "create", "pods")
    who.allow(namespace, "create", "pods/exec")
    return who


@pytest.fixture(scope="module")
def source(
    admin: Kubectl, crds: None, peerapp: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Source]:
    """The module's source, writing, with its documents and random bytes, in a namespace
    of the module's own."""
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    admin("create", "namespace", namespace)
    kubectl = admin.in_namespace(namespace)
    try:
        requester = transfer_requester(admin, namespace, tmp_path_factory.mktemp("requester"))
        kubectl.apply(writer_manifests(peerapp))
        pods = pods_of(kubectl, SOURCE)
        documents: dict[str, dict[str, str]] = {}
        for pod, ip in sorted(pods.items()):
            docs = {f"doc-{pod}-{i}": f"written to {pod} #{i}" for i in range(3)}
            for doc_id, text in docs.items():
                assert http(ip, f"/documents/{doc_id}", text.encode()) == {"id": doc_id}
            documents[pod] = docs
        kubectl("exec", f"{SOURCE}-0", "--", "python3", "-c", FILL)
        filler = filler_sha256(kubectl, f"{SOURCE}-0")
        for ip in pods.values():
            wait_for("the writer writing", partial(writing, ip, 20))
        yield Source(kubectl, requester, pods, documents, filler)
    finally:
        admin("delete", "namespace", namespace, "--wait=false", check=False)


# ---- what the tests share ----


def transfer_op(requester: Requester, target: str, **spec: Any) -> dict[str, Any]:
    """An operation of the module's source into us-west-2, target named `target`,
    recording its requester as the webhook would."""
    op = operation(target, SOURCE, targetName=target, targetRegion=TARGET_REGION, **spec)
    op["metadata"]["annotations"] = {REQUESTED_BY: requester.username}
    return op


def finished(kubectl: Kubectl, name: str, timeout: float) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        st = ((kubectl.get("cloningoperation", name) or {}).get("status")) or {}
        return st if st.get("phase") in TERMINAL and st.get("finalized") else None

    return wait_for(f"{name} to finish", done, timeout=timeout, interval=1)


def mover_state(kubectl: Kubectl, pod: str) -> Progress | None:
    """The transfer's state in the mover's source pod's log (rsync's own progress)."""
    result = kubectl("logs", pod, check=False)
    return progress(result.stdout + result.stderr) if result.returncode == 0 else None


def mid_transfer(kubectl: Kubectl, name: str, pod: str, at_least: int = 20) -> Progress:
    """The state of operation `name`'s mover `pod` once `at_least`% is across; fails at
    once if the operation ends first."""

    def under_way() -> Progress | None:
        st = ((kubectl.get("cloningoperation", name) or {}).get("status")) or {}
        assert st.get("phase") not in TERMINAL, (
            f"{name} ended before its transfer was under way: {st}"
        )
        state = mover_state(kubectl, pod)
        if state is None or state.finished or not state.total:
            return None
        return state if at_least <= state.percent < 100 else None

    return wait_for(f"{pod} {at_least}% of the way", under_way, timeout=300, interval=0.5)


def running_container(kubectl: Kubectl, pod: str) -> str | None:
    statuses = ((kubectl.get("pod", pod) or {}).get("status") or {}).get("containerStatuses")
    for status in statuses or []:
        if status.get("state", {}).get("running"):
            return str(status["containerID"]).removeprefix("containerd://")
    return None


def mover_pods(kubectl: Kubectl, target: str) -> dict[str, str]:
    """{name: uid} of the target's mover pods (by their transfer label)."""
    return {
        p["metadata"]["name"]: p["metadata"]["uid"]
        for p in kubectl.items("pods", "-l", TRANSFER_LABEL)
        if p["metadata"]["name"].startswith(f"{target}-mv")
    }


def mover_objects(target: str, volumes: int = REPLICAS) -> list[tuple[str, str]]:
    """(kind, name) of everything a transfer makes per source volume, but the target PVC."""
    found = []
    for k in range(volumes):
        mv = f"{target}-mv{k}"
        found += [("pod", f"{mv}-source"), ("pod", f"{mv}-target"), ("secret", mv),
                  ("service", mv), ("persistentvolumeclaim", f"{mv}-cut"),
                  ("volumesnapshot", f"data-{target}-{k}")]  # fmt: skip
    return found


def still_there(kubectl: Kubectl, objects: list[tuple[str, str]]) -> list[str]:
    return [f"{kind}/{name}" for kind, name in objects if kubectl.get(kind, name) is not None]


def labelled(kubectl: Kubectl, uid: str) -> list[str]:
    """Pods, Secrets, Services, claims, snapshots and StatefulSets of the operation."""
    kinds = ("pods", "secrets", "services", "persistentvolumeclaims", "volumesnapshots",
             "statefulsets")  # fmt: skip
    return [
        f"{kind}/{o['metadata']['name']}"
        for kind in kinds
        for o in kubectl.items(kind, "-l", f"{OPERATION_UID}={uid}")
    ]


def snapshot_contents(admin: Kubectl, namespace: str) -> list[str]:
    return [
        c["metadata"]["name"]
        for c in admin.items("volumesnapshotcontents")
        if (c["spec"].get("volumeSnapshotRef") or {}).get("namespace") == namespace
    ]


def wait_gone(what: str, left: Callable[[], list[str]], timeout: float = 180) -> None:
    """Poll until `left()` is empty; fail naming what is still there."""
    deadline = time.monotonic() + timeout
    found = left()
    while found and time.monotonic() < deadline:
        time.sleep(1)
        found = left()
    assert not found, f"{what}: still there after {timeout:.0f} s: {found}"


def hooks() -> dict[str, Any]:
    return {"pre": [{"command": PAUSE}], "post": [{"command": RESUME}]}


# ---- requesters (token-only kubeconfigs; kwok pods) ----


def test_a_requester_who_may_not_create_pods_gets_no_transfer(
    admin: Kubectl, kubectl: Kubectl, requester: Requester, operator: OperatorProcess
) -> None:
    """Everything a clone by snapshot needs, but `create pods`: an explicit Transfer is
    refused at apply (the admission policy names the right); Auto into another region,
    which only a transfer could do, fails at pickup naming it, having made nothing."""
    if admin("get", "storageclass", storage.ZONAL_CLASS, check=False).returncode != 0:
        pytest.skip("the local cluster has no CSI storage (tests/cluster/storage.py)")
    requester.may_clone_a_cluster(snapshots=True)
    home, as_requester = requester.home, requester.kubectl
    manifests = statefulset("zsrc", replicas=1, region=SOURCE_REGION)
    manifests[1]["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] = (
        storage.ZONAL_CLASS
    )
    kubectl.apply(manifests)

    explicit = operation("by-transfer", "zsrc", copyMethod="Transfer", targetRegion=TARGET_REGION)
    refused = as_requester.apply(explicit, check=False)
    assert refused.returncode != 0, "an explicit Transfer was admitted"
    assert CREATE_PODS.search(refused.stderr), refused.stderr
    assert kubectl.get("cloningoperation", "by-transfer") is None

    wait_for("source zsrc ready", lambda: ready_replicas(kubectl, "zsrc") == 1, timeout=120)
    auto = operation("by-auto", "zsrc", targetRegion=TARGET_REGION)
    auto["metadata"]["annotations"] = {REQUESTED_BY: requester.username}
    as_requester.apply(auto)  # Auto asks for no more than a clone's rights at apply
    uid = kubectl.get("cloningoperation", "by-auto")["metadata"]["uid"]
    st = finished(kubectl, "by-auto", timeout=90)
    assert (st["phase"], st["reason"]) == ("Failed", "CopyMethodUnsuitable"), st
    assert MAY_NOT_CREATE_PODS.search(st["message"]), st["message"]
    assert labelled(kubectl, uid) == []

    # Given the right, the same explicit Transfer is admitted (the server's dry run).
    requester.allow(home, "create", "pods")
    as_requester("create", "--dry-run=server", "-f", "-", stdin=json.dumps(explicit))


# ---- live, on the two real nodes ----


def test_a_live_clone_into_another_region_by_auto_resumes_its_killed_mover_and_operator(
    admin: Kubectl,
    operator: OperatorProcess,
    source: Source,
    real_nodes: tuple[realnode.NodePaths, realnode.NodePaths],
) -> None:
    east, west = real_nodes
    kubectl, requester, target = source.kubectl, source.requester, "west"
    pods_before = {p["metadata"]["name"]: p["metadata"]["uid"]
                   for p in kubectl.items("pods", "-l", f"app={SOURCE}")}  # fmt: skip
    sts_before = kubectl.get("statefulset", SOURCE)

    # No copyMethod: Auto, which finds that no storage-level copy reaches us-west-2.
    requester.kubectl.apply(transfer_op(requester, target, consistency=hooks()))
    killed_at = mid_transfer(kubectl, target, f"{target}-mv0-source")
    cid = wait_for("the mover's running container",
                   partial(running_container, kubectl, f"{target}-mv0-source"))  # fmt: skip
    realnode.ctr(east, "tasks", "kill", "--signal", "SIGKILL", cid)
    # The operator killed too, mid-transfer: the next one carries on with the same movers.
    movers = mover_pods(kubectl, target)
    operator.kill()
    operator.start()
    after = mover_pods(kubectl, target)
    assert all(after[name] == uid for name, uid in movers.items() if name in after), (movers, after)

    st = finished(kubectl, target, timeout=420)
    assert (st["phase"], st["copyMethod"]) == ("Succeeded", "Transfer"), st
    assert (st["sourceRegion"], st["targetRegion"]) == (SOURCE_REGION, TARGET_REGION), st
    assert (st["freeze"]["stage"], st["freeze"].get("failure")) == ("Thawed", None), st["freeze"]
    volumes = st["volumes"]
    assert [(v["name"], v["source"]) for v in volumes] == [
        (f"data-{target}-{i}", f"data-{SOURCE}-{i}") for i in range(REPLICAS)
    ], volumes
    for v in volumes:
        assert v["transferred"] is True, v
        assert v["bytesDone"] == v["bytesTotal"] > 0, v
    first = volumes[0]
    assert first["bytesTotal"] >= FILLER_BYTES, first
    # The killed transfer did not start over: a later attempt (in the restarted container,
    # or the mover's own retry) found on the target what the first had sent.
    attempts, matched = first.get("transferAttempts", 1), first.get("matchedBytes", 0)
    print(f"\nmover killed at {killed_at.bytes_done:,} of {killed_at.total:,} bytes; at the "
          f"end: {attempts} attempt(s), {matched:,} bytes found on the target")  # fmt: skip
    assert attempts >= 2, first  # the killed container's, the restarted one's
    assert matched > 0, first
    # One Transferring Event per volume: no mover was made twice, by either operator.
    started = [e for e in kubectl.items("events", "--field-selector", f"involvedObject.name={target}")
               if e["reason"] == "Transferring"]  # fmt: skip
    assert len(started) == REPLICAS, [e.get("message") for e in started]
    assert DONE.match(st["transfer"]), st["transfer"]
    for i in range(REPLICAS):
        annotations = kubectl.get("pvc", f"data-{target}-{i}")["metadata"].get("annotations")
        assert (annotations or {}).get(TRANSFERRED) == "true", annotations

    # The clone runs in us-west-2, on its real node, with everything the source held.
    clone = pods_of(kubectl, target)
    for pod in clone:
        assert kubectl.get("pod", pod)["spec"]["nodeName"] == west.spec.name, pod
    for pod, ip in sorted(source.pods.items()):
        ordinal = pod.rsplit("-", 1)[1]
        clone_ip = clone[f"{target}-{ordinal}"]
        assert http(clone_ip, "/documents") == source.documents[pod]
        # Exactly what the source acknowledged before the pre hook paused it, untorn.
        state = http(ip, "/writes")
        assert state["pauses"], f"{pod} was never paused: {state}"
        assert "resume" in state["resumes"], f"{pod} was not resumed by the post hook: {state}"
        acked_at_pause = state["pauses"][-1]["acked"]
        held = http(clone_ip, "/writes")["at_start"]
        assert held == {"records": acked_at_pause, "torn": False, "gaps": 0}, (pod, held)
        wait_for(f"{pod} writing again", partial(writing, ip, acked_at_pause))
    assert filler_sha256(kubectl, f"{target}-0") == source.filler

    # Nothing of the mover is left, the snapshots go once the clone is Ready.
    wait_gone("the mover's objects", lambda: still_there(kubectl, mover_objects(target)))
    assert kubectl.items("pods", "-l", TRANSFER_LABEL) == []
    # The source as it was: its pods, its template, its data.
    assert {p["metadata"]["name"]: p["metadata"]["uid"]
            for p in kubectl.items("pods", "-l", f"app={SOURCE}")} == pods_before  # fmt: skip
    sts_after = kubectl.get("statefulset", SOURCE)
    assert sts_after["metadata"]["generation"] == sts_before["metadata"]["generation"]
    for pod, ip in source.pods.items():
        assert http(ip, "/documents") == source.documents[pod]
        claim = kubectl.get("pvc", f"data-{pod}")["metadata"]
        assert TRANSFERRED not in (claim.get("annotations") or {}), claim
    assert filler_sha256(kubectl, f"{SOURCE}-0") == source.filler
    kubectl("delete", "statefulset", target, "--wait=false")  # free the west node


def test_an_operation_deleted_mid_transfer_leaves_nothing(
    admin: Kubectl,
    operator: OperatorProcess,
    source: Source,
    real_nodes: tuple[realnode.NodePaths, realnode.NodePaths],
) -> None:
    """Its progress is in the status and in `kubectl get -o wide` while it runs; every
    object of the transfer is there, named and labelled as documented; the requester
    deletes the operation; then no pod, Secret, Service, claim or snapshot of it is left."""
    east, west = real_nodes
    kubectl, requester, target = source.kubectl, source.requester, "dropped"
    requester.kubectl.apply(transfer_op(requester, target, copyMethod="Transfer"))
    uid = kubectl.get("cloningoperation", target)["metadata"]["uid"]

    def under_way() -> dict[str, Any] | None:
        st = ((kubectl.get("cloningoperation", target) or {}).get("status")) or {}
        assert st.get("phase") not in TERMINAL, f"{target} ended mid-transfer: {st}"
        first = (st.get("volumes") or [{}])[0]
        done, total = first.get("bytesDone") or 0, first.get("bytesTotal") or 0
        return st if st.get("transfer") and 0 < done < total else None

    st = wait_for("the transfer's progress in the status", under_way, timeout=300, interval=0.5)
    assert (st["phase"], st["copyMethod"]) == ("InProgress", "Transfer"), st
    assert UNDER_WAY.fullmatch(st["transfer"]), st["transfer"]
    assert st["volumes"][0]["bytesPerSecond"] >= 0, st["volumes"][0]
    wide = kubectl("get", "cloningoperation", target, "-o", "wide").stdout.splitlines()
    header, row = wide[0].split(), wide[1]
    assert "TRANSFER" in header, wide
    assert UNDER_WAY.search(row), wide

    mv = f"{target}-mv0"
    for kind, name in [*mover_objects(target, 1), ("persistentvolumeclaim", f"data-{target}-0")]:
        obj = kubectl.get(kind, name)
        assert obj, f"{kind}/{name} is not there mid-transfer"
        labels = obj["metadata"].get("labels") or {}
        assert labels.get(OPERATION_UID) == uid, (kind, name, labels)
        if name.startswith(mv):
            assert labels.get(TRANSFER_LABEL) == mv, (kind, name, labels)
    assert kubectl.get("pod", f"{mv}-source")["spec"]["nodeName"] == east.spec.name
    assert kubectl.get("pod", f"{mv}-target")["spec"]["nodeName"] == west.spec.name

    requester.kubectl("delete", "cloningoperation", target, "--wait=false")
    names = mover_objects(target) + [("persistentvolumeclaim", f"data-{target}-{i}")
                                     for i in range(REPLICAS)] + [("statefulset", target)]  # fmt: skip
    wait_gone(
        "the deleted operation's objects",
        lambda: (
            still_there(kubectl, names)
            + labelled(kubectl, uid)
            + snapshot_contents(admin, str(kubectl.namespace))
        ),
    )
    assert kubectl.get("cloningoperation", target) is None


def test_a_transfer_that_stops_moving_fails_as_stalled_and_leaves_nothing(
    admin: Kubectl,
    operator: OperatorProcess,
    source: Source,
    real_nodes: tuple[realnode.NodePaths, realnode.NodePaths],
) -> None:
    """The mover's source container frozen mid-transfer (containerd pauses it): no new
    bytes, so after the operator's stall setting (20 s here) the operation fails
    `TransferStalled`, well before its Timeout, and removes what it made. Last in the
    module: it runs the operator with a setting of its own."""
    east, _ = real_nodes
    operator.ensure({**DEFAULT_OPERATOR_ENV, "CLONE_OPERATOR_TRANSFER_STALL_SECONDS": "20"})
    kubectl, requester, target = source.kubectl, source.requester, "stalled"
    requester.kubectl.apply(transfer_op(requester, target, copyMethod="Transfer"))
    uid = kubectl.get("cloningoperation", target)["metadata"]["uid"]
    pod = f"{target}-mv0-source"
    mid_transfer(kubectl, target, pod)
    cid = wait_for("the mover's running container", partial(running_container, kubectl, pod))
    realnode.ctr(east, "tasks", "pause", cid)
    frozen = time.monotonic()
    try:
        st = wait_phase(kubectl, target, TERMINAL, timeout=180)
    finally:  # a frozen container cannot be stopped: thaw it for the cleanup
        realnode.ctr(east, "tasks", "resume", cid, check=False)
    took = time.monotonic() - frozen
    print(f"\nstalled transfer failed {took:.1f} s after its source froze: {st.get('message')}")
    assert (st["phase"], st["reason"]) == ("Failed", "TransferStalled"), st
    assert took < 120, "the stall setting, never the Timeout"
    finished(kubectl, target, timeout=120)
    wait_gone(
        "the stalled operation's objects",
        lambda: still_there(kubectl, mover_objects(target)) + labelled(kubectl, uid),
    )
