"""A clone never reaches back to its source: peers, config and overrides, end to end.

The sources here find their peers as clustered servers do: a Typesense-style
nodes list (`<pod>.<service>.<ns>.svc.cluster.local:8107:8108,…`) in an
argument, an environment variable, a mounted ConfigMap file and a Secret. The
governing Service is named differently from the StatefulSet, as it often is.
Assertions are on the objects the operator created, read back from the real
API server.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.e2e.clones import (
    OWNED_KINDS,
    TERMINAL,
    kill_repeatedly,
    owned,
    uid_of,
    wait_finalized,
    wait_phase,
)
from tests.e2e.harness import DEFAULT_OPERATOR_ENV, OperatorProcess
from tests.e2e.kube import Kubectl, make_unplaceable, ready_replicas, wait_for
from tests.e2e.manifests import operation, statefulset

pytestmark = pytest.mark.e2e

SERVICE_SUFFIX = "-peers"


def nodes(sts: str, namespace: str, replicas: int = 3, service: str | None = None) -> str:
    """The Typesense nodes list of a cluster (its Service: `<sts>-peers` by default)."""
    service = service or f"{sts}{SERVICE_SUFFIX}"
    return ",".join(
        f"{sts}-{i}.{service}.{namespace}.svc.cluster.local:8107:8108" for i in range(replicas)
    )


def peered_source(
    kubectl: Kubectl, name: str, replicas: int = 3, extra_args: tuple[str, ...] = ()
) -> str:
    """A clustered source whose peers are listed in args, env, a ConfigMap and a Secret;
    returns the nodes list. Waits until every replica is ready."""
    namespace = kubectl.namespace or ""
    peers = nodes(name, namespace, replicas)
    service, sts = statefulset(name, replicas=replicas)
    service["metadata"]["name"] = f"{name}{SERVICE_SUFFIX}"
    sts["spec"]["serviceName"] = f"{name}{SERVICE_SUFFIX}"
    server = sts["spec"]["template"]["spec"]["containers"][0]
    server["args"] = ["--nodes", peers, "--peering-port=8107", *extra_args]
    server["env"] = [
        {"name": "TYPESENSE_NODES", "value": peers},
        {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": f"{name}-auth", "key": "key"}}},
    ]
    server["envFrom"] = [{"configMapRef": {"name": f"{name}-env"}}]
    server["volumeMounts"].append({"name": "nodes", "mountPath": "/etc/typesense"})
    sts["spec"]["template"]["spec"]["volumes"] = [
        {"name": "nodes", "configMap": {"name": f"{name}-nodes"}},
        {"name": "peers", "projected": {"sources": [{"secret": {"name": f"{name}-auth"}}]}},
    ]
    kubectl.apply(
        [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-nodes"},
             "data": {"nodes": peers, "search-engine.conf": "engine=search-engine"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-env"},
             "data": {"SEED": f"{name}-0.{name}{SERVICE_SUFFIX}:8107"}},
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"{name}-auth"},
             "stringData": {"key": "s3cret", "peers": peers}},
            service,
            sts,
        ]
    )  # fmt: skip
    wait_for(f"source {name} ready", lambda: ready_replicas(kubectl, name) == replicas, timeout=90)
    return peers


def secret_text(secret: dict[str, Any], key: str) -> str:
    return base64.b64decode(secret["data"][key]).decode()


def test_a_clone_gets_its_own_peers_and_config_and_keeps_them(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    namespace = kubectl.namespace or ""
    peers = peered_source(kubectl, "search")
    source_config = kubectl.get("configmap", "search-nodes")
    overrides = {
        "metadata": {"labels": {"purpose": "staging"}},
        "spec": {"template": {"metadata": {"annotations": {"example.com/reset-peers": "true"}}}},
    }
    kubectl.apply(operation("isolated", "search", targetName="shadow", targetOverrides=overrides))
    st = wait_phase(kubectl, "isolated", TERMINAL)
    assert st["phase"] == "Succeeded", st
    assert st["targetOverrides"] == overrides
    assert st["overridden"] == (
        "metadata.labels.purpose, spec.template.metadata.annotations.example.com/reset-peers"
    )
    wide = kubectl("get", "cop", "isolated", "-o", "wide").stdout
    assert "OVERRIDES" in wide
    assert "metadata.labels.purpose" in wide
    clone_peers = nodes("shadow", namespace, service="shadow")  # the clone's own Service
    assert peers != clone_peers

    # The StatefulSet: its peers in args and env, its config references, the overrides.
    sts = kubectl.get("statefulset", "shadow")
    assert sts["spec"]["serviceName"] == "shadow"
    assert sts["metadata"]["labels"]["purpose"] == "staging"
    template = sts["spec"]["template"]
    assert template["metadata"]["annotations"]["example.com/reset-peers"] == "true"
    server = template["spec"]["containers"][0]
    assert server["args"] == ["--nodes", clone_peers, "--peering-port=8107"]
    assert server["env"][0] == {"name": "TYPESENSE_NODES", "value": clone_peers}
    assert server["env"][1]["valueFrom"]["secretKeyRef"] == {"name": "shadow-search-auth",
                                                               "key": "key"}  # fmt: skip
    assert server["envFrom"] == [{"configMapRef": {"name": "shadow-search-env"}}]
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    assert volumes["nodes"]["configMap"]["name"] == "shadow-search-nodes"
    assert volumes["peers"]["projected"]["sources"] == [{"secret": {"name": "shadow-search-auth"}}]

    # Its own copies, rewritten, handed over with the rest (no owner reference left).
    copy_nodes = kubectl.get("configmap", "shadow-search-nodes")
    assert copy_nodes["data"] == {
        "nodes": clone_peers,
        "search-engine.conf": "engine=search-engine",
    }
    assert kubectl.get("configmap", "shadow-search-env")["data"] == {"SEED": "shadow-0.shadow:8107"}
    auth = kubectl.get("secret", "shadow-search-auth")
    assert (secret_text(auth, "key"), secret_text(auth, "peers")) == ("s3cret", clone_peers)
    uid = uid_of(kubectl, "cloningoperation", "isolated")
    made = owned(kubectl, uid)
    assert made["configmaps"] == ["shadow-search-env", "shadow-search-nodes"]
    assert made["secrets"] == ["shadow-search-auth"]
    for kind, names in made.items():
        for name in names:
            obj = kubectl.get(kind, name)
            assert not obj["metadata"].get("ownerReferences"), f"{kind}/{name} still owned"
            assert obj["metadata"]["labels"]["cloning.dev/cluster"] == "shadow"
    annotations = copy_nodes["metadata"]["annotations"]
    assert annotations["cloning.dev/source"] == f"{namespace}/ConfigMap/search-nodes"

    # The source is untouched, and a later change of its config never reaches the clone.
    assert (
        kubectl.get("configmap", "search-nodes")["metadata"]["resourceVersion"]
        == (source_config["metadata"]["resourceVersion"])
    )
    kubectl("patch", "configmap", "search-nodes", "--type=merge", "-p",
            json.dumps({"data": {"nodes": "search-9.search-peers:8107:8108"}}))  # fmt: skip
    kubectl("delete", "configmap", "search-env")
    wait_finalized(kubectl, "isolated")
    assert kubectl.get("configmap", "shadow-search-nodes")["data"]["nodes"] == clone_peers
    assert kubectl.get("configmap", "shadow-search-env") is not None
    assert ready_replicas(kubectl, "shadow") == 3


def test_a_reference_the_rewrite_does_not_know_fails_with_its_path_and_nothing_is_made(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    # A peer list built by a shell from a template: no rewrite can know what it makes.
    peered_source(kubectl, "tmpl", replicas=1,
                  extra_args=("--seed=tmpl-$(ORDINAL).tmpl-peers:8107",))  # fmt: skip
    kubectl.apply(operation("templated", "tmpl", targetName="tmpl-clone"))
    st = wait_phase(kubectl, "templated", TERMINAL)
    assert (st["phase"], st["reason"]) == ("Failed", "SourceReferenced"), st
    assert (
        "StatefulSet tmpl-clone spec.template.spec.containers[0].args[3]: "
        "'tmpl-$(ORDINAL).tmpl-peers'" in st["message"]
    )
    failed = {c["type"]: c for c in st["conditions"]}["Failed"]
    assert (failed["status"], failed["reason"]) == ("True", "SourceReferenced")
    wait_finalized(kubectl, "templated")
    assert owned(kubectl, uid_of(kubectl, "cloningoperation", "templated")) == {
        k: [] for k in OWNED_KINDS
    }
    assert kubectl.get("configmap", "tmpl-clone-tmpl-nodes") is None
    events = kubectl.items("events", "--field-selector", "involvedObject.name=templated")
    assert "SourceReferenced" in {e["reason"] for e in events}


def test_overrides_the_api_server_refuses_fail_with_its_words_and_nothing_is_made(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    peered_source(kubectl, "ovr", replicas=1)
    bad = {"spec": {"replicas": -1}}
    kubectl.apply(operation("negative", "ovr", targetName="ovr-clone", targetOverrides=bad))
    st = wait_phase(kubectl, "negative", TERMINAL)
    assert (st["phase"], st["reason"]) == ("Failed", "InvalidTarget"), st
    assert "spec.replicas: Invalid value: -1" in st["message"]
    wait_finalized(kubectl, "negative")
    assert owned(kubectl, uid_of(kubectl, "cloningoperation", "negative")) == {
        k: [] for k in OWNED_KINDS
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"spec": {"selector": {"matchLabels": {"app": "x"}}}}, "cannot change spec.selector"),
        ({"spec": {"serviceName": "x"}}, "cannot change spec.selector, spec.serviceName"),
        ({"spec": {"volumeClaimTemplates": []}}, "spec.volumeClaimTemplates"),
        ({"metadata": {"name": "x"}}, "cannot set metadata.name, metadata.namespace"),
    ],
)
def test_overrides_of_the_clones_identity_are_refused_at_apply(
    kubectl: Kubectl, overrides: dict[str, Any], message: str
) -> None:
    """The CRD's own rules: no operator or webhook needed."""
    result = kubectl.apply(operation("ident", "any", targetOverrides=overrides), check=False)
    assert result.returncode != 0
    assert "spec.targetOverrides" in result.stderr
    assert message in result.stderr
    assert kubectl.get("cloningoperation", "ident") is None


def test_the_webhook_refuses_leftover_references_and_bad_overrides_at_apply(
    webhook: OperatorProcess,
    kubectl: Kubectl,
) -> None:
    peered_source(kubectl, "hook", replicas=1,
                  extra_args=("--seed=hook-{0..2}.hook-peers:8107",))  # fmt: skip
    result = kubectl.apply(operation("leftover", "hook", targetName="hook-clone"), check=False)
    assert result.returncode != 0
    assert (
        "spec.sourceCluster: the clone would still refer to its source: StatefulSet hook-clone "
        "spec.template.spec.containers[0].args[3]: 'hook-{0..2}.hook-peers'" in result.stderr
    )
    kubectl("patch", "statefulset", "hook", "--type=json", "-p",
            json.dumps([{"op": "remove", "path": "/spec/template/spec/containers/0/args/3"}]))  # fmt: skip
    result = kubectl.apply(
        operation("negative", "hook", targetOverrides={"spec": {"replicas": -1}}), check=False
    )
    assert result.returncode != 0
    assert "spec.targetOverrides: the API server refuses the target StatefulSet:" in result.stderr
    assert "spec.replicas: Invalid value: -1" in result.stderr
    assert kubectl.items("cloningoperations") == []
    assert kubectl.items("configmaps", "-l", "cloning.dev/cluster") == []
    # A sound one passes.
    kubectl.apply(operation("sound", "hook", targetOverrides={"spec": {"replicas": 1}}))
    assert kubectl.get("cloningoperation", "sound") is not None


def test_copies_are_removed_with_a_failed_or_deleted_clone(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    operator.ensure({**DEFAULT_OPERATOR_ENV, "CLONE_OPERATOR_UNSCHEDULABLE_GRACE_SECONDS": "8"})
    peered_source(kubectl, "frail", replicas=1)
    make_unplaceable(kubectl, "frail")

    # Failed (its pods cannot start): the operator removes its copies with the rest.
    kubectl.apply(operation("stuck", "frail", targetName="stuck"))
    wait_phase(kubectl, "stuck", {"InProgress"})
    uid = uid_of(kubectl, "cloningoperation", "stuck")
    made = wait_for("stuck's copies", lambda: owned(kubectl, uid)["secrets"])
    assert made == ["stuck-frail-auth"]
    owner = kubectl.get("secret", "stuck-frail-auth")["metadata"]["ownerReferences"]
    assert [r["uid"] for r in owner] == [uid]
    st = wait_phase(kubectl, "stuck", TERMINAL, timeout=60)
    assert (st["phase"], st["reason"]) == ("Failed", "PodsCannotStart")
    wait_finalized(kubectl, "stuck")
    assert owned(kubectl, uid) == {k: [] for k in OWNED_KINDS}

    # Deleted while InProgress (the operator down): the garbage collector removes them.
    kubectl.apply(operation("dropped", "frail", targetName="dropped"))
    wait_phase(kubectl, "dropped", {"InProgress"})
    uid = uid_of(kubectl, "cloningoperation", "dropped")
    wait_for("dropped's copies", lambda: owned(kubectl, uid)["configmaps"])
    operator.stop()
    kubectl("delete", "cloningoperation", "dropped", "--wait=true", "--timeout=15s")
    wait_for(
        "the copies to be collected",
        lambda: owned(kubectl, uid) == {k: [] for k in OWNED_KINDS},
    )
    for name in ("frail-nodes", "frail-env", "frail-auth"):  # the source's are untouched
        assert kubectl.get("secret" if name.endswith("auth") else "configmap", name)


def test_a_canceled_operation_never_copies_anything(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    peered_source(kubectl, "calm", replicas=1)
    kubectl.apply(operation("never", "calm", cancel=True))
    st = wait_phase(kubectl, "never", TERMINAL)
    assert st["phase"] == "Canceled"
    wait_finalized(kubectl, "never")
    assert owned(kubectl, uid_of(kubectl, "cloningoperation", "never")) == {
        k: [] for k in OWNED_KINDS
    }


def test_a_taken_copy_name_fails_the_clone_and_the_object_is_left_as_it_was(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    peered_source(kubectl, "busy", replicas=1)
    kubectl("create", "configmap", "busy-clone-busy-env", "--from-literal=mine=yes")
    before = kubectl.get("configmap", "busy-clone-busy-env")
    kubectl.apply(operation("clash", "busy", targetName="busy-clone"))
    st = wait_phase(kubectl, "clash", TERMINAL)
    assert (st["phase"], st["reason"]) == ("Failed", "TargetExists"), st
    assert "ConfigMap" in st["message"]
    assert "busy-clone-busy-env already exists" in st["message"]
    wait_finalized(kubectl, "clash")
    after = kubectl.get("configmap", "busy-clone-busy-env")
    assert (after["metadata"]["uid"], after["data"]) == (before["metadata"]["uid"], before["data"])
    assert owned(kubectl, uid_of(kubectl, "cloningoperation", "clash")) == {
        k: [] for k in OWNED_KINDS
    }


def test_copies_survive_an_operator_killed_mid_flight_without_duplicates(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    """Copies are created under deterministic names and adopted only by the operation
    whose uid they carry: killed at any point, a clone ends with exactly one of each."""
    sources = [f"p{i}" for i in range(4)]
    for s in sources:
        peered_source(kubectl, s, replicas=1)
    kubectl.apply([operation(f"{s}-op", s, targetName=f"{s}-clone") for s in sources])
    kill_repeatedly(operator, (0.2, 0.4, 0.3))
    for s in sources:
        st = wait_finalized(kubectl, f"{s}-op", timeout=120)
        assert st["phase"] == "Succeeded", (s, st)
        made = owned(kubectl, uid_of(kubectl, "cloningoperation", f"{s}-op"))
        assert made["configmaps"] == [f"{s}-clone-{s}-env", f"{s}-clone-{s}-nodes"]
        assert made["secrets"] == [f"{s}-clone-{s}-auth"]
    assert len(kubectl.items("configmaps", "-l", "cloning.dev/operation-uid")) == 2 * len(sources)
