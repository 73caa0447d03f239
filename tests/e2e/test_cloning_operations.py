"""CloningOperation end to end: the real operator against the real local cluster."""

from __future__ import annotations

import json
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from tests.cluster import localcluster
from tests.e2e.clones import (
    OWNED_KINDS,
    TERMINAL,
    kill_repeatedly,
    owned,
    source_cluster,
    status_of,
    uid_of,
    wait_finalized,
    wait_phase,
)
from tests.e2e.harness import DEFAULT_OPERATOR_ENV, OperatorProcess
from tests.e2e.kube import Kubectl, make_unplaceable, owned_canary, ready_replicas, wait_for
from tests.e2e.manifests import operation, statefulset

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "crds" / "examples"
# Where the local storage's default class puts a source's volumes (tests/cluster/storage.py).
SAME_REGION = "us-east-1"


def test_example_operation_clones_the_example_cluster(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl("apply", "-f", str(EXAMPLES / "source-cluster.yaml"))
    wait_for("the example source", lambda: ready_replicas(kubectl, "search") == 3, timeout=90)
    kubectl("apply", "-f", str(EXAMPLES / "cloningoperation.yaml"))
    st = wait_phase(kubectl, "search-to-28", TERMINAL)
    assert st["phase"] == "Succeeded", st
    target = st["targetCluster"]
    # The example stays in the source's region: its volumes are regional (us-east-1), as
    # a cloud's are (the cross-region case is
    # test_a_volume_clone_across_regions_is_refused_before_anything_is_made).
    assert (st["serverVersion"], st["targetRegion"], st["sourceRegion"]) == (
        "28.0",
        SAME_REGION,
        "us-east-1",
    )
    assert (st["readyReplicas"], st["replicas"], st["ready"]) == (3, 3, "3/3")
    for stamp in ("createdAt", "startedAt", "updatedAt", "completedAt"):
        assert st[stamp].endswith("Z")
    assert {c["type"]: c["status"] for c in st["conditions"]} == {
        "Ready": "True",
        "Progressing": "False",
        "VolumesReady": "True",
    }

    sts = kubectl.get("statefulset", target)
    assert sts["status"]["readyReplicas"] == 3
    assert sts["spec"]["template"]["spec"]["containers"][0]["image"] == "typesense/typesense:28.0"
    # Its own nodes file, naming its own pods.
    assert sts["spec"]["template"]["spec"]["volumes"] == [
        {"name": "nodes", "configMap": {"name": f"{target}-search-nodes", "defaultMode": 420}}
    ]
    assert kubectl.get("configmap", f"{target}-search-nodes")["data"]["nodes"] == ",".join(
        f"{target}-{i}.{target}:8107:8108" for i in range(3)
    )
    assert not sts["metadata"].get("ownerReferences"), "a finished clone must outlive its operation"
    # The clone's pods sit in the requested region...
    nodes = {n["metadata"]["name"]: n["metadata"]["labels"] for n in kubectl.items("nodes")}
    clone_pods = kubectl.items("pods", "-l", f"cloning.dev/cluster={target}")
    assert len(clone_pods) == 3
    assert {nodes[p["spec"]["nodeName"]]["topology.kubernetes.io/region"] for p in clone_pods} == {
        SAME_REGION
    }
    # ...and neither the source StatefulSet nor the source Service selects them.
    source_selector = ",".join(
        f"{k}={v}"
        for k, v in kubectl.get("statefulset", "search")["spec"]["selector"]["matchLabels"].items()
    )
    selected = {p["metadata"]["name"] for p in kubectl.items("pods", "-l", source_selector)}
    assert selected == {"search-0", "search-1", "search-2"}
    service_selector = kubectl.get("service", "search")["spec"]["selector"]
    assert not any(
        all(p["metadata"]["labels"].get(k) == v for k, v in service_selector.items())
        for p in clone_pods
    )
    assert kubectl.get("service", target)["spec"]["clusterIP"] == "None"
    # Every volume is a clone of the matching source volume.
    for i in range(3):
        pvc = kubectl.get("pvc", f"data-{target}-{i}")
        source = pvc["spec"]["dataSource"]
        assert (source["kind"], source["name"]) == ("PersistentVolumeClaim", f"data-search-{i}")
        pv = kubectl.get("pv", pvc["spec"]["volumeName"])
        assert (
            pv["metadata"]["annotations"]["cloning.dev/cloned-from-pvc"]
            == f"{kubectl.namespace}/data-search-{i}"
        )
    # The lock is gone and Events tell the story.
    assert kubectl.items("leases") == []
    reasons = [
        e["reason"]
        for e in kubectl.items("events", "--field-selector", "involvedObject.name=search-to-28")
    ]
    assert {"Started", "TargetReady"} <= set(reasons)  # a free slot: no Pending wait
    # Deleting the operation leaves the clone in place. A canary the operation still owns
    # shows when the garbage collector has dealt with the operation's dependents.
    kubectl.apply(owned_canary(kubectl, "cloningoperation", "search-to-28"))
    kubectl("delete", "cloningoperation", "search-to-28", "--wait=true", "--timeout=30s")
    wait_for(
        "the garbage collector to remove the operation's canary",
        lambda: kubectl.get("configmap", "canary") is None,
        timeout=60,
    )
    assert kubectl.get("statefulset", target) is not None


def test_second_active_operation_for_a_source_fails(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    source_cluster(kubectl, "db", replicas=1)
    kubectl.apply([operation("first", "db"), operation("second", "db")])
    first = wait_phase(kubectl, "first", TERMINAL)
    second = wait_phase(kubectl, "second", TERMINAL)
    outcomes = sorted([(first["phase"], first["reason"]), (second["phase"], second["reason"])])
    assert outcomes == [("Failed", "AnotherOperationActive"), ("Succeeded", "TargetReady")]
    loser = first if first["phase"] == "Failed" else second
    assert "only one operation per cluster" in loser["message"]
    assert "targetCluster" not in loser
    # Once the winner is done, a new operation is accepted.
    wait_finalized(kubectl, "first")
    wait_finalized(kubectl, "second")
    kubectl.apply(operation("third", "db"))
    assert wait_phase(kubectl, "third", TERMINAL)["phase"] == "Succeeded"


def test_many_concurrent_operations_for_one_source_only_one_wins(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    source_cluster(kubectl, "hot", replicas=1)
    kubectl.apply([operation(f"race-{i}", "hot") for i in range(10)])
    ends = [wait_phase(kubectl, f"race-{i}", TERMINAL) for i in range(10)]
    won = sorted((st["startedAt"], st["completedAt"]) for st in ends if st["phase"] == "Succeeded")
    # One active at a time: every loser of a race fails; one that comes after the winner
    # has finished (and released the source) may legitimately run next, never beside it.
    assert len(won) >= 1
    assert all(b[0] >= a[1] for a, b in pairwise(won)), won
    assert [st["reason"] for st in ends if st["phase"] != "Succeeded"] == [
        "AnotherOperationActive"
    ] * (10 - len(won))
    clones = kubectl.items("statefulsets", "-l", "cloning.dev/source-cluster=hot")
    assert len(clones) == len(won)


def test_cancel_pending_then_refused_once_in_progress(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    # One slot only, held by an operation whose pods can never be scheduled.
    operator.ensure(
        {
            **DEFAULT_OPERATOR_ENV,
            "CLONE_OPERATOR_MAX_IN_PROGRESS": "1",
            "CLONE_OPERATOR_UNSCHEDULABLE_GRACE_SECONDS": "600",
        }
    )
    source_cluster(kubectl, "web", replicas=1)
    source_cluster(kubectl, "api", replicas=1)
    # A clone whose pods can't be scheduled: the source's template gets an impossible selector.
    source_cluster(kubectl, "stuck", replicas=1)
    make_unplaceable(kubectl, "stuck")
    kubectl.apply(operation("holder", "stuck"))
    wait_phase(kubectl, "holder", {"InProgress"})
    kubectl.apply(operation("queued", "web"))
    st = wait_for(
        "queued to wait for a slot",
        lambda: (s := status_of(kubectl, "queued")).get("reason") == "WaitingForSlot" and s,
    )
    assert st["phase"] == "Pending"

    kubectl("patch", "cloningoperation", "queued", "--type=merge", "-p", '{"spec":{"cancel":true}}')
    st = wait_phase(kubectl, "queued", {"Canceled"})
    assert st["reason"] == "Canceled"
    assert "completedAt" in st
    assert owned(kubectl, uid_of(kubectl, "cloningoperation", "queued")) == {
        k: [] for k in OWNED_KINDS
    }
    wait_finalized(kubectl, "queued")
    assert kubectl.get("lease", "cloning-lock-web") is None

    # Past Pending, the API server itself refuses the cancel, naming the field.
    refused = kubectl(
        "patch",
        "cloningoperation",
        "holder",
        "--type=merge",
        "-p",
        '{"spec":{"cancel":true}}',
        check=False,
    )
    assert refused.returncode != 0
    assert "spec.cancel" in refused.stderr
    assert "only a Pending operation can be canceled" in refused.stderr
    assert kubectl.get("cloningoperation", "holder")["spec"]["cancel"] is False
    # And a cancel can never be taken back.
    unset = kubectl(
        "patch",
        "cloningoperation",
        "queued",
        "--type=merge",
        "-p",
        '{"spec":{"cancel":false}}',
        check=False,
    )
    assert unset.returncode != 0
    assert "cannot be unset" in unset.stderr


def test_cancel_racing_pickup_never_lets_a_canceled_operation_go_on(
    kubectl: Kubectl, cluster: localcluster.Paths, operator: OperatorProcess
) -> None:
    """Cancel lands a few milliseconds after creation, on both sides of the pickup. The
    operations are named like the source's pods (`racy-3`), as people number clones: the
    isolation guard never takes the operator's own provenance for the source's."""
    source_cluster(kubectl, "racy", replicas=1)
    api = client.CustomObjectsApi(k8s_config.new_client_from_config(str(cluster.kubeconfig)))
    args = ("cloning.dev", "v1alpha1", kubectl.namespace, "cloningoperations")
    outcomes = []
    for i, delay in enumerate([0.0, 0.002, 0.005, 0.01, 0.02, 0.04, 0.08] * 3):
        name = f"racy-{i}"
        api.create_namespaced_custom_object(*args, operation(name, "racy"))
        time.sleep(delay)
        try:
            api.patch_namespaced_custom_object(*args, name, {"spec": {"cancel": True}})
            refusal = None
        except ApiException as e:
            refusal = str(e.body)
        st = wait_finalized(kubectl, name)
        spec = kubectl.get("cloningoperation", name)["spec"]
        objects = owned(kubectl, uid_of(kubectl, "cloningoperation", name))
        if refusal is None:
            assert spec["cancel"] is True
            assert st["phase"] == "Canceled", (name, st)
            assert objects == {k: [] for k in OWNED_KINDS}, (name, objects)
        else:
            assert spec["cancel"] is False
            assert "only a Pending operation can be canceled" in refusal
            assert st["phase"] == "Succeeded", (name, st)
        outcomes.append(st["phase"])
        # Free the source for the next round.
        kubectl("delete", "cloningoperation", name, "--wait=true", "--timeout=30s")
    print(
        f"cancel won {outcomes.count('Canceled')} times, pickup won {outcomes.count('Succeeded')}"
    )
    assert set(outcomes) <= {"Canceled", "Succeeded"}


def test_a_volume_clone_across_regions_is_refused_before_anything_is_made(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    """A volume clone cannot leave its source's region on real storage (nor on the local
    cluster's): refused at pickup, naming the class and both regions (issue 25)."""
    source_cluster(kubectl, "src", replicas=1)
    kubectl.apply(operation("west", "src", targetRegion="us-west-2", copyMethod="VolumeClone"))
    st = wait_phase(kubectl, "west", TERMINAL, timeout=60)
    assert (st["phase"], st["reason"]) == ("Failed", "CopyMethodUnsuitable"), st
    assert "StorageClass clone-test keeps its volumes in region us-east-1" in st["message"]
    assert "the target must run in region us-west-2" in st["message"]


def test_failures_are_explained_and_leave_nothing_behind(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl.apply(operation("ghost", "does-not-exist"))
    st = wait_phase(kubectl, "ghost", TERMINAL)
    assert (st["phase"], st["reason"]) == ("Failed", "SourceNotFound")
    assert "does-not-exist" in st["message"]
    assert {c["type"]: c["status"] for c in st["conditions"]}["Failed"] == "True"

    source_cluster(kubectl, "src", replicas=1)
    kubectl.apply(operation("far", "src", targetRegion="mars-1"))
    st = wait_phase(kubectl, "far", TERMINAL)
    assert (st["phase"], st["reason"]) == ("Failed", "UnknownRegion")
    assert "mars-1" in st["message"]
    assert "us-east-1" in st["message"]
    assert "oregon" in st["message"]
    wait_finalized(kubectl, "far")

    # Aliases from the operator's region table work (the source's region: its volumes').
    kubectl.apply(operation("alias", "src", targetRegion="virginia"))
    st = wait_phase(kubectl, "alias", TERMINAL)
    assert (st["phase"], st["targetRegion"]) == ("Succeeded", "us-east-1")
    wait_finalized(kubectl, "alias")

    # Pods that cannot be scheduled fail the operation, and its partial target is removed.
    make_unplaceable(kubectl, "src")
    kubectl.apply(operation("unplaceable", "src"))
    st = wait_phase(kubectl, "unplaceable", TERMINAL, timeout=60)
    assert (st["phase"], st["reason"]) == ("Failed", "PodsCannotStart")
    assert "cannot be scheduled" in st["message"]
    wait_finalized(kubectl, "unplaceable")
    assert owned(kubectl, uid_of(kubectl, "cloningoperation", "unplaceable")) == {
        k: [] for k in OWNED_KINDS
    }


def test_existing_target_is_never_overwritten(kubectl: Kubectl, operator: OperatorProcess) -> None:
    source_cluster(kubectl, "orig", replicas=1)
    kubectl.apply(statefulset("taken", replicas=1))
    before = kubectl.get("statefulset", "taken")
    kubectl.apply(operation("clash", "orig", targetName="taken"))
    st = wait_phase(kubectl, "clash", TERMINAL)
    assert (st["phase"], st["reason"]) == ("Failed", "TargetExists")
    wait_finalized(kubectl, "clash")
    after = kubectl.get("statefulset", "taken")
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["spec"] == before["spec"]
    assert after["metadata"].get("labels") == before["metadata"].get("labels")


def test_sources_of_any_shape_clone(kubectl: Kubectl, operator: OperatorProcess) -> None:
    source_cluster(kubectl, "solo", replicas=1)
    source_cluster(kubectl, "multi", replicas=4, claims=["data", "logs"])
    kubectl.apply(
        [operation("solo-op", "solo"), operation("multi-op", "multi", copyMethod="VolumeClone")]
    )
    solo = wait_phase(kubectl, "solo-op", TERMINAL)
    multi = wait_phase(kubectl, "multi-op", TERMINAL)
    assert solo["phase"] == multi["phase"] == "Succeeded"
    target = multi["targetCluster"]
    pvcs = {
        p["metadata"]["name"]: p
        for p in kubectl.items("pvc", "-l", f"cloning.dev/cluster={target}")
    }
    assert sorted(pvcs) == sorted(f"{c}-{target}-{i}" for c in ("data", "logs") for i in range(4))
    for name, pvc in pvcs.items():
        claim, ordinal = name.split("-")[0], name.rsplit("-", 1)[1]
        assert pvc["spec"]["dataSource"]["name"] == f"{claim}-multi-{ordinal}"


def test_operator_killed_mid_flight_resumes_without_duplicates_or_orphans(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    sources = [f"k{i}" for i in range(6)]
    for s in sources:
        kubectl.apply(statefulset(s, replicas=2))
    for s in sources:
        wait_for(f"{s} ready", lambda s=s: ready_replicas(kubectl, s) == 2, timeout=90)
    kubectl.apply([operation(f"{s}-op", s) for s in sources])
    kill_repeatedly(operator, (0.2, 0.5, 0.3))
    for s in sources:
        st = wait_finalized(kubectl, f"{s}-op", timeout=120)
        assert st["phase"] == "Succeeded", (s, st)
        uid = uid_of(kubectl, "cloningoperation", f"{s}-op")
        objects = owned(kubectl, uid)
        target = st["targetCluster"]
        assert objects["statefulsets"] == [target]
        assert objects["services"] == [target]
        assert objects["persistentvolumeclaims"] == [f"data-{target}-0", f"data-{target}-1"]
    clones = kubectl.items("statefulsets", "-l", "cloning.dev/operation-uid")
    assert len(clones) == len(sources), "one target per operation, no duplicates"
    assert kubectl.items("leases") == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, "spec.sourceCluster: Required value"),
        ({"sourceCluster": "Not_A_Name"}, "spec.sourceCluster: Invalid value"),
        ({"sourceCluster": "db", "serverVersion": "28 .0"}, "spec.serverVersion: Invalid value"),
        ({"sourceCluster": "db", "targetRegion": "us east"}, "spec.targetRegion: Invalid value"),
        (
            {"sourceCluster": "db", "notificationEmailAddresses": ["not-an-email"]},
            "spec.notificationEmailAddresses[0]: Invalid value",
        ),
        (
            {"sourceCluster": "db", "notificationEmailAddresses": ["a@b.io", "a@b.io"]},
            "spec.notificationEmailAddresses[1]: Duplicate value",
        ),
        ({"sourceCluster": "db", "timeoutSeconds": 5}, "spec.timeoutSeconds: Invalid value"),
        (
            {"sourceCluster": "db", "copyMethod": "Rsync"},
            'spec.copyMethod: Unsupported value: "Rsync"',
        ),
        ({"sourceCluster": "db", "targetName": "x" * 53}, "spec.targetName: Too long"),
        ({"sourceCluster": "db", "surprise": True}, 'unknown field "spec.surprise"'),
    ],
)
def test_invalid_manifests_are_refused_by_kubectl_apply(
    kubectl: Kubectl, spec: dict[str, Any], expected: str
) -> None:
    manifest = {
        "apiVersion": "cloning.dev/v1alpha1",
        "kind": "CloningOperation",
        "metadata": {"name": "bad"},
        "spec": spec,
    }
    refused = kubectl.apply(manifest, check=False)
    assert refused.returncode != 0
    assert expected in refused.stderr, refused.stderr
    assert kubectl.get("cloningoperation", "bad") is None


def test_spec_is_immutable_except_cancel(
    kubectl: Kubectl, operator_process: OperatorProcess
) -> None:
    operator_process.stop()  # only the API server's own rules are at work here
    kubectl.apply(operation("frozen", "db", serverVersion="28.0"))
    for patch, field in [
        ({"serverVersion": "29.0"}, "spec.serverVersion"),
        ({"sourceCluster": "other"}, "spec.sourceCluster"),
        ({"targetRegion": "us-east-1"}, "spec.targetRegion"),
        ({"notificationEmailAddresses": ["new@example.com"]}, "spec.notificationEmailAddresses"),
    ]:
        refused = kubectl(
            "patch",
            "cloningoperation",
            "frozen",
            "--type=merge",
            "-p",
            json.dumps({"spec": patch}),
            check=False,
        )
        assert refused.returncode != 0
        assert f"{field} is immutable; create a new CloningOperation instead" in refused.stderr
    assert kubectl.get("cloningoperation", "frozen")["spec"]["serverVersion"] == "28.0"
    # A new operation (no status yet) may still be canceled.
    kubectl("patch", "cloningoperation", "frozen", "--type=merge", "-p", '{"spec":{"cancel":true}}')
    assert kubectl.get("cloningoperation", "frozen")["spec"]["cancel"] is True


def test_deleting_an_unfinished_operation_removes_its_partial_target(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    operator.ensure({**DEFAULT_OPERATOR_ENV, "CLONE_OPERATOR_UNSCHEDULABLE_GRACE_SECONDS": "600"})
    source_cluster(kubectl, "half", replicas=1)
    make_unplaceable(kubectl, "half")
    kubectl.apply(operation("doomed", "half"))
    target = wait_phase(kubectl, "doomed", {"InProgress"})["targetCluster"]
    uid = uid_of(kubectl, "cloningoperation", "doomed")
    wait_for("the partial target", lambda: kubectl.get("statefulset", target))
    # No finalizer: the operation goes at once, even with the operator down.
    operator.stop()
    kubectl("delete", "cloningoperation", "doomed", "--wait=true", "--timeout=15s")
    # The garbage collector follows the owner references to what it created.
    wait_for(
        "the partial target to be collected",
        lambda: owned(kubectl, uid) == {k: [] for k in OWNED_KINDS},
    )
    assert kubectl.get("lease", "cloning-lock-half") is None
    assert kubectl.get("statefulset", "half") is not None  # the source is never touched
