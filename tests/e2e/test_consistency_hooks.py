"""Consistency hooks (`spec.consistency`) end to end: refused at apply where they make no
sense or where the requester may not exec; a hook that fails thaws and fails, leaving
nothing; and, live on the real node (kwok pods cannot exec), a writer paused by the pre
hook is cut exactly at its acknowledged writes, resumed by the post hook, also when the
leader is killed mid-freeze.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import pytest

from tests.app import images
from tests.cluster import localcluster, realnode
from tests.e2e import app_api
from tests.e2e.app_api import API_PORT, http, writing
from tests.e2e.clones import SNAPSHOT_ONLY_CLASS, TERMINAL, snapshot_only_source, wait_phase
from tests.e2e.harness import OperatorProcess, Replica
from tests.e2e.kube import Kubectl, wait_for
from tests.e2e.manifests import operation
from tests.e2e.requesters import Requester

pytestmark = pytest.mark.e2e

SNAPSHOT_ONLY = SNAPSHOT_ONLY_CLASS  # the local storage's class that cannot clone
PAUSE = ["python3", "/app/peerapp.py", "pause", "120"]
RESUME = ["python3", "/app/peerapp.py", "resume"]


def pods_of(kubectl: Kubectl, statefulset: str) -> dict[str, str]:
    """{pod: IP} of this module's clusters once every replica is Ready."""
    return app_api.pods_of(kubectl, statefulset, REPLICAS)


def hooks(pre: list[dict[str, Any]] | None = None, **more: Any) -> dict[str, Any]:
    return {"pre": pre or [{"command": PAUSE}], "post": [{"command": RESUME}], **more}


def finished(kubectl: Kubectl, name: str, timeout: float = 180) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        st = ((kubectl.get("cloningoperation", name) or {}).get("status")) or {}
        return st if st.get("phase") in TERMINAL and st.get("finalized") else None

    return wait_for(f"{name} to finish", done, timeout=timeout)


def events(kubectl: Kubectl, name: str) -> list[tuple[str, str, str]]:
    return [
        (e["type"], e["reason"], e.get("message", ""))
        for e in kubectl.items("events", "--field-selector", f"involvedObject.name={name}")
    ]


def condition(status: dict[str, Any], kind: str) -> tuple[str, str]:
    [c] = [c for c in status.get("conditions", []) if c["type"] == kind]
    return c["status"], c["reason"]


# ---- refused at apply ----


def test_hooks_that_make_no_sense_are_refused_at_apply_naming_the_field(
    kubectl: Kubectl, crds: None
) -> None:
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "by-clone": ({"copyMethod": "VolumeClone", "consistency": hooks()},
                     "spec.consistency: hooks run around a snapshot's cut"),
        "by-none": ({"copyMethod": "None", "consistency": hooks()},
                    "spec.consistency: hooks run around a snapshot's cut"),
        "no-hooks": ({"consistency": {"freezeDeadlineSeconds": 60}},
                     "spec.consistency needs at least one pre or post hook"),
        "long-pre": ({"consistency": hooks([{"command": PAUSE, "timeoutSeconds": 700}])},
                     "each hook's timeoutSeconds must be below freezeDeadlineSeconds"),
        "long-freeze": ({"timeoutSeconds": 300, "consistency": hooks()},
                        "spec.consistency.freezeDeadlineSeconds cannot exceed spec.timeoutSeconds"),
        "empty-cmd": ({"consistency": hooks([{"command": [""]}])},
                      "a hook's command[0] names the program to run"),
        "many-args": ({"consistency": hooks([{"command": ["x"] * 65}])}, "must have at most 64"),
        "bad-onerror": ({"consistency": hooks([{"command": PAUSE, "onError": "Ignore"}])},
                        'supported values: "Fail", "Continue"'),
        "post-onerror": ({"consistency": {"post": [{"command": RESUME, "onError": "Fail"}]}},
                         'unknown field "spec.consistency.post[0].onError"'),
    }  # fmt: skip
    for name, (spec, words) in cases.items():
        refused = kubectl.apply(operation(name, "src", **spec), check=False)
        assert refused.returncode != 0, name
        assert words in refused.stderr, (name, refused.stderr)
    # Immutable once created, like the rest of the spec.
    kubectl.apply(operation("fixed", "src", copyMethod="Snapshot", consistency=hooks()))
    changed = operation("fixed", "src", copyMethod="Snapshot",
                        consistency=hooks(freezeDeadlineSeconds=30))  # fmt: skip
    refused = kubectl.apply(changed, check=False)
    assert refused.returncode != 0
    assert "spec.consistency is immutable" in refused.stderr, refused.stderr


def test_hooks_need_the_right_to_exec_into_the_source_at_apply(
    requester: Requester, crds: None
) -> None:
    """Token-only kubeconfig: a hook is an exec into the source's pods on the requester's
    behalf, so without `create pods/exec` there the operation is refused at apply; Auto
    with hooks copies by snapshot only, so it needs `create volumesnapshots` too."""
    requester.may_clone_a_cluster(snapshots=True)
    as_requester = requester.kubectl
    plain = operation("plain", "any", copyMethod="Snapshot")
    assert as_requester.apply(plain, check=False).returncode == 0
    hooked = operation("hooked", "any", copyMethod="Snapshot", consistency=hooks())
    refused = as_requester.apply(hooked, check=False)
    assert refused.returncode != 0
    assert "cannot create pods/exec in the namespace" in refused.stderr, refused.stderr
    requester.allow(requester.home, "create", "pods/exec")
    assert as_requester.apply(hooked, check=False).returncode == 0


def test_auto_with_hooks_needs_the_right_to_snapshot_at_apply(
    requester: Requester, crds: None
) -> None:
    requester.may_clone_a_cluster(snapshots=False)
    requester.allow(requester.home, "create", "pods/exec")
    as_requester = requester.kubectl
    refused = as_requester.apply(operation("auto", "any", consistency=hooks()), check=False)
    assert refused.returncode != 0
    assert "cannot create volumesnapshots.snapshot.storage.k8s.io" in refused.stderr
    by_clone = operation("by-clone", "any", copyMethod="VolumeClone")
    assert as_requester.apply(by_clone, check=False).returncode == 0


# ---- kwok pods: an exec that cannot run ----


@pytest.fixture
def snapshot_source(admin: Kubectl, kubectl: Kubectl) -> str:
    """A 2-replica source `hooksrc` (kwok pods) on the local storage's snapshot-only class."""
    return snapshot_only_source(admin, kubectl, "hooksrc")


def test_a_pre_hook_that_cannot_run_thaws_fails_and_leaves_nothing(
    kubectl: Kubectl, operator: OperatorProcess, snapshot_source: str
) -> None:
    """kwok's pods cannot exec: the pre hook fails (`onError: Fail`), the post hook is
    still tried in every pod, the operation fails with HookFailed before any snapshot."""
    spec = hooks([{"command": PAUSE, "timeoutSeconds": 20}])
    spec["post"][0]["timeoutSeconds"] = 20
    kubectl.apply(operation("hook-fails", snapshot_source, copyMethod="Snapshot",
                            consistency=spec))  # fmt: skip
    st = finished(kubectl, "hook-fails", timeout=120)
    assert (st["phase"], st["reason"]) == ("Failed", "HookFailed"), st
    assert st["message"].startswith("the pre hook failed: hooksrc-"), st["message"]
    freeze = st["freeze"]
    assert (freeze["stage"], freeze["postAttempts"]) == ("Thawed", 1), freeze
    assert freeze["postFailure"], "the post hook was tried, and could not run either"
    assert condition(st, "Quiesced") == ("False", "HookFailed")
    assert kubectl.items("volumesnapshots") == []
    assert not st.get("volumes"), "nothing was cut"
    seen = events(kubectl, "hook-fails")
    assert any(r == "HookFailed" and "pre hook #1 failed in pod hooksrc-" in m for _, r, m in seen)
    assert any(r == "Thawed" for _, r, _m in seen), seen


def test_a_pre_hook_allowed_to_fail_lets_the_cut_go_ahead(
    kubectl: Kubectl, operator: OperatorProcess, snapshot_source: str
) -> None:
    spec = hooks([{"command": PAUSE, "timeoutSeconds": 20, "onError": "Continue"}])
    spec["post"][0]["timeoutSeconds"] = 20
    kubectl.apply(operation("goes-on", snapshot_source, copyMethod="Snapshot", consistency=spec))
    st = finished(kubectl, "goes-on", timeout=180)
    assert (st["phase"], st["copyMethod"]) == ("Succeeded", "Snapshot"), st
    assert st["freeze"]["stage"] == "Thawed"
    assert st["pointInTime"].endswith("Z")
    seen = events(kubectl, "goes-on")
    assert any(t == "Warning" and r == "HookFailed" for t, r, _m in seen), seen
    wait_for("its snapshots removed", lambda: kubectl.items("volumesnapshots") == [] or None)


def test_the_post_hook_runs_when_the_storage_refuses_the_cut(
    admin: Kubectl, kubectl: Kubectl, operator: OperatorProcess, snapshot_source: str
) -> None:
    """The snapshots fail (the driver's injected fault) after the pre hooks: the freeze
    ends early, the post hooks run, the operation fails in the storage's words."""
    cls = f"fails-{kubectl.namespace}"
    admin.apply({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
                 "metadata": {"name": cls}, "driver": "basic-disk.csi.cloning.dev",
                 "deletionPolicy": "Delete", "parameters": {"snapshotFault": "fail"}})  # fmt: skip
    try:
        spec = hooks([{"command": PAUSE, "timeoutSeconds": 20, "onError": "Continue"}])
        kubectl.apply(operation("cut-fails", snapshot_source, copyMethod="Snapshot",
                                volumeSnapshotClassName=cls, consistency=spec))  # fmt: skip
        st = finished(kubectl, "cut-fails", timeout=120)
        assert (st["phase"], st["reason"]) == ("Failed", "StorageRefused"), st
        freeze = st["freeze"]
        assert (freeze["stage"], freeze["postAttempts"]) == ("Thawed", 1), freeze
        assert freeze["failure"].startswith("the storage refused a snapshot: "), freeze
        assert "injected fault (snapshotFault: fail)" in st["message"], st["message"]
        assert any(r == "Thawed" for _, r, _m in events(kubectl, "cut-fails"))
        wait_for("no snapshot left", lambda: kubectl.items("volumesnapshots") == [] or None)
    finally:
        admin("delete", "volumesnapshotclass", cls, "--wait=false", check=False)


# ---- live, on the real node ----

SOURCE, SERVICE, TARGET = "writer", "writer-hl", "writer-clone"
REPLICAS = 2


@pytest.fixture(scope="module")
def peerapp(cluster: localcluster.Paths) -> str:
    """peerapp's image on the real node."""
    if not realnode.running(localcluster.node_paths(cluster)):
        pytest.skip(f"needs the real node: {realnode.unavailable_reason() or 'it is not up'}")
    [ref] = images.build_and_import(cluster.cache, cluster.cluster_dir, ["1.0"])
    return ref


def writer_manifests(image: str) -> list[dict[str, Any]]:
    """peerapp as a continuous writer: a record every 20 ms, each fsynced before it counts."""
    labels = {"app": SOURCE}
    container = {
        "name": "peerapp",
        "image": image,
        "imagePullPolicy": "Never",
        "env": [
            {"name": "PEERAPP_WRITER", "value": "1"},
            {"name": "PEERAPP_WRITE_INTERVAL", "value": "0.02"},
        ],
        "ports": [{"name": "api", "containerPort": API_PORT}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": API_PORT}, "periodSeconds": 1},
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": SERVICE, "labels": labels},
         "spec": {"clusterIP": "None", "selector": labels, "ports": [{"port": API_PORT}]}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": SOURCE, "labels": labels},
         "spec": {
             "replicas": REPLICAS, "serviceName": SERVICE, "podManagementPolicy": "Parallel",
             "selector": {"matchLabels": labels},
             "template": {"metadata": {"labels": labels}, "spec": {
                 "nodeSelector": {"cloning.dev/real-node": "true"},
                 "tolerations": [{"key": realnode.TAINT_KEY, "operator": "Exists",
                                  "effect": "NoSchedule"}],
                 "terminationGracePeriodSeconds": 1,
                 "containers": [container]}},
             "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                 "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "1Gi"}}}}]}},
    ]  # fmt: skip


def check_cut(kubectl: Kubectl, source: dict[str, str], st: dict[str, Any]) -> None:
    """Every clone replica holds exactly what its source acknowledged before its last
    pause, nothing torn; the source was resumed by the post hook and writes again."""
    assert st["phase"] == "Succeeded", st
    assert (st["freeze"]["stage"], st["freeze"].get("failure")) == ("Thawed", None), st["freeze"]
    assert condition(st, "Quiesced") == ("False", "Thawed")
    clone = pods_of(kubectl, TARGET)
    for pod, ip in sorted(source.items()):
        state = http(ip, "/writes")
        assert state["pauses"], f"{pod} was never paused: {state}"
        acked_at_pause = state["pauses"][-1]["acked"]
        assert "resume" in state["resumes"], f"{pod} was not resumed by the post hook: {state}"
        wait_for(f"{pod} writing again", partial(writing, ip, acked_at_pause))
        ordinal = pod.rsplit("-", 1)[1]
        held = http(clone[f"{TARGET}-{ordinal}"], "/writes")["at_start"]
        assert held == {"records": acked_at_pause, "torn": False, "gaps": 0}, (pod, held, state)
        print(f"\n{pod}: {acked_at_pause} records acknowledged before the pause; the clone "
              f"holds {held['records']}, torn: {held['torn']}")  # fmt: skip


def test_a_writer_paused_by_the_pre_hook_is_cut_exactly_at_its_acknowledged_writes(
    kubectl: Kubectl, operator: OperatorProcess, peerapp: str
) -> None:
    kubectl.apply(writer_manifests(peerapp))
    source = pods_of(kubectl, SOURCE)
    for ip in source.values():
        wait_for("the writer writing", partial(writing, ip, 50))
    kubectl.apply(operation("consistent", SOURCE, copyMethod="Snapshot", targetName=TARGET,
                            consistency=hooks()))  # fmt: skip
    st = finished(kubectl, "consistent", timeout=300)
    check_cut(kubectl, source, st)
    seen = events(kubectl, "consistent")
    assert any(r == "Quiesced" for _, r, _m in seen)
    assert any(r == "Thawed" for _, r, _m in seen)
    started = st["freeze"]["startedAt"]
    assert started <= st["pointInTime"] <= st["freeze"]["thawedAt"], st


def test_a_leader_killed_mid_freeze_leaves_the_thaw_to_the_other_replica(
    kubectl: Kubectl, replicas: list[Replica], peerapp: str
) -> None:
    """The pre hook pauses, then sleeps (the window between the pre hook and the cut);
    the leader is killed in it. The other replica finds the freeze in the status, runs
    the pre hook again (idempotent), takes the cut, runs the post hook well within the
    freeze deadline (the app's own pause would expire only after 300 s), and the
    operation succeeds with the clone cut at the acknowledged writes."""
    leader = wait_for("a leader", lambda: next((r for r in replicas if r.leads()), None))
    [standby] = [r for r in replicas if r is not leader]
    kubectl.apply(writer_manifests(peerapp))
    source = pods_of(kubectl, SOURCE)
    for ip in source.values():
        wait_for("the writer writing", partial(writing, ip, 50))
    slow_pre = ["sh", "-c", "python3 /app/peerapp.py pause 300 && sleep 15"]
    spec = hooks([{"command": slow_pre, "timeoutSeconds": 60}], freezeDeadlineSeconds=240)
    kubectl.apply(operation("killed-mid-freeze", SOURCE, copyMethod="Snapshot",
                            targetName=TARGET, consistency=spec))  # fmt: skip

    def frozen() -> bool:
        st = ((kubectl.get("cloningoperation", "killed-mid-freeze") or {}).get("status")) or {}
        return (st.get("freeze") or {}).get("stage") == "Freezing" and all(
            http(ip, "/writes")["paused"] for ip in source.values()
        )

    wait_for("the source paused by the pre hook", frozen, timeout=60)
    begun = kubectl.get("cloningoperation", "killed-mid-freeze")["status"]["freeze"]
    killed = time.monotonic()
    leader.kill()
    st = wait_phase(kubectl, "killed-mid-freeze", TERMINAL, timeout=240)
    assert standby.leads()
    states = [http(ip, "/writes") for ip in source.values()]
    took = time.monotonic() - killed
    print(f"\nleader killed mid-freeze → the other replica thawed and finished: {took:.1f} s")
    # The same freeze, resumed from the status: its start kept, the pre hook run again
    # by the new leader (idempotent: a second pause of a paused writer), one thaw.
    assert st["freeze"]["startedAt"] == begun["startedAt"], (begun, st["freeze"])
    assert st["freeze"]["postAttempts"] == 1, st["freeze"]
    assert all(len(s["pauses"]) == 2 for s in states), states
    assert all(s["resumes"] == ["resume"] for s in states), states  # the hook, not the expiry
    assert took < 240
    check_cut(kubectl, source, st)
    assert "killed-mid-freeze" in standby.log()


def test_a_hostile_hooks_flood_of_output_is_capped_and_its_exit_code_read(
    kubectl: Kubectl, operator: OperatorProcess, peerapp: str
) -> None:
    """A pre hook writes 20 MB and exits 3 (`onError: Continue`): the operator reads the
    exit code from the stream's status channel, keeps a few kB of what it wrote, says so
    in a Warning Event, and the cut goes ahead."""
    kubectl.apply(writer_manifests(peerapp))
    pods_of(kubectl, SOURCE)
    flood = ["sh", "-c", "head -c 20000000 /dev/zero | tr '\\0' x; echo disk on fire >&2; exit 3"]
    spec = hooks([{"command": flood, "timeoutSeconds": 120, "onError": "Continue"}])
    kubectl.apply(operation("flood", SOURCE, copyMethod="Snapshot", targetName=TARGET,
                            consistency=spec))  # fmt: skip
    st = finished(kubectl, "flood", timeout=300)
    assert st["phase"] == "Succeeded", st
    failed = [m for t, r, m in events(kubectl, "flood") if t == "Warning" and r == "HookFailed"]
    assert len(failed) == REPLICAS, failed
    assert all("exit code 3: disk on fire" in m for m in failed), failed
    assert all(len(m) < 2048 for m in failed), failed
