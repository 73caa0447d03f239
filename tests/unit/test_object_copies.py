"""Copies of single objects (CloneObject): what is stripped, kept, overridden, marked."""

from __future__ import annotations

from typing import Any

import pytest

from clone_operator.api.cloneobjects import CloneObjectStatus, SourceKind, State
from clone_operator.builders import objects
from clone_operator.builders.provenance import Owner, created_by
from clone_operator.kube.errors import Invalid, NotFound
from clone_operator.reconcile import objects as decide
from clone_operator.reconcile.clusters import SourceNotFound, TargetExists
from clone_operator.reconcile.conditions import Reason, Transition
from clone_operator.reconcile.writes import OutsideAdmitted

OWNER = Owner(kind="CloneObject", name="copy-it", namespace="shop", uid="1234abcd-0000")


def source(kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {
            "name": "src",
            "namespace": "shop",
            "uid": "src-uid",
            "resourceVersion": "42",
            "generation": 3,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "managedFields": [{"manager": "kubectl"}],
            "ownerReferences": [{"kind": "Deployment", "name": "x", "uid": "u"}],
            "finalizers": ["example.com/keep"],
            "labels": {"app": "shop", "cloning.dev/clone-object-uid": "older"},
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "pv.kubernetes.io/bind-completed": "yes",
                "team": "a",
            },
        },
        **fields,
    }


def plan(src: dict[str, Any], **kw: Any) -> objects.CopyPlan:
    return objects.CopyPlan(owner=OWNER, source=src, name="dst", namespace="staging", **kw)


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        ({"a": 1, "b": {"c": 2}}, {"b": {"c": None, "d": 3}}, {"a": 1, "b": {"d": 3}}),
        ({"a": [1, 2]}, {"a": [3]}, {"a": [3]}),
        ({"a": 1}, {"a": None, "z": None}, {}),
        ("not an object", {"a": 1}, {"a": 1}),
        ({"a": 1}, "scalar", "scalar"),
    ],
)
def test_merge_patch_follows_rfc7386(target: Any, patch: Any, expected: Any) -> None:
    assert objects.merge_patch(target, patch) == expected


def test_server_assigned_metadata_is_never_copied() -> None:
    copy = objects.build_copy(plan(source("ConfigMap", data={"k": "v"})), SourceKind.CONFIG_MAP)
    meta = copy["metadata"]
    for key in (
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "ownerReferences",
        "finalizers",
    ):
        assert key not in meta, key
    assert "kubectl.kubernetes.io/last-applied-configuration" not in meta["annotations"]
    assert "pv.kubernetes.io/bind-completed" not in meta["annotations"]
    assert meta["annotations"]["team"] == "a"
    assert (meta["name"], meta["namespace"]) == ("dst", "staging")
    assert copy["data"] == {"k": "v"}


def test_provenance_points_at_owner_and_source_and_replaces_old_marks() -> None:
    copy = objects.build_copy(plan(source("ConfigMap", data={})), SourceKind.CONFIG_MAP)
    meta = copy["metadata"]
    assert created_by(copy, OWNER)
    assert meta["labels"]["cloning.dev/clone-object-uid"] == OWNER.uid  # not the source's old mark
    assert meta["labels"]["app"] == "shop"
    assert meta["annotations"]["cloning.dev/source"] == "shop/ConfigMap/src"
    assert meta["annotations"]["cloning.dev/source-uid"] == "src-uid"
    assert meta["annotations"]["cloning.dev/clone-object"] == "shop/copy-it"


def test_options_and_overrides_apply_but_cannot_remove_provenance() -> None:
    overrides = {
        "data": {"LOG": "debug", "OLD": None},
        "metadata": {"labels": {"cloning.dev/clone-object-uid": None}},
    }
    copy = objects.build_copy(
        plan(
            source("ConfigMap", data={"LOG": "info", "OLD": "x"}),
            labels={"env": "stg"},
            annotations={"why": "test"},
            overrides=overrides,
        ),
        SourceKind.CONFIG_MAP,
    )
    assert copy["data"] == {"LOG": "debug"}
    assert copy["metadata"]["labels"]["env"] == "stg"
    assert copy["metadata"]["annotations"]["why"] == "test"
    assert created_by(copy, OWNER)


def test_service_copy_gets_its_own_ips_and_ports() -> None:
    spec = {
        "type": "NodePort",
        "clusterIP": "10.0.0.7",
        "clusterIPs": ["10.0.0.7"],
        "ports": [{"port": 80, "nodePort": 30080, "targetPort": 8080}],
        "selector": {"app": "shop"},
    }
    copy = objects.build_copy(plan(source("Service", spec=spec)), SourceKind.SERVICE)
    assert "clusterIP" not in copy["spec"]
    assert "clusterIPs" not in copy["spec"]
    assert copy["spec"]["ports"] == [{"port": 80, "targetPort": 8080}]
    assert copy["spec"]["selector"] == {"app": "shop"}
    headless = objects.build_copy(
        plan(source("Service", spec={**spec, "clusterIP": "None"})), SourceKind.SERVICE
    )
    assert headless["spec"]["clusterIP"] == "None"


def test_pvc_copy_is_a_volume_clone_at_least_the_source_size() -> None:
    spec = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
        "volumeName": "pv-1",
        "storageClassName": "fast",
    }
    copy = objects.build_copy(
        plan(
            source("PersistentVolumeClaim", spec=spec, status={"phase": "Bound"}), source_size="2Gi"
        ),
        SourceKind.PERSISTENT_VOLUME_CLAIM,
    )
    assert copy["spec"]["dataSource"] == {"kind": "PersistentVolumeClaim", "name": "src"}
    assert copy["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert "volumeName" not in copy["spec"]
    assert "status" not in copy
    assert copy["spec"]["storageClassName"] == "fast"
    assert copy["metadata"]["ownerReferences"] == [OWNER.reference()]


def test_secret_data_and_type_are_copied_but_token_secrets_refused() -> None:
    copy = objects.build_copy(
        plan(source("Secret", type="Opaque", data={"p": "czNjcjN0"})), SourceKind.SECRET
    )
    assert (copy["type"], copy["data"]) == ("Opaque", {"p": "czNjcjN0"})
    with pytest.raises(objects.CopyError, match="cannot be cloned"):
        objects.build_copy(
            plan(source("Secret", type="kubernetes.io/service-account-token")), SourceKind.SECRET
        )


def test_default_names_are_deterministic_and_valid() -> None:
    name = objects.default_name("a" * 300, "1234abcd-0000")
    assert name == objects.default_name("a" * 300, "1234abcd-0000")
    assert len(name) <= 253
    assert name.endswith("-clone-1234a")


def test_clone_object_transitions_record_errors_and_timestamps() -> None:
    pending = decide.apply(
        CloneObjectStatus(), Transition(State.PENDING, Reason.ACCEPTED, "waiting"), "T1", 1
    )
    assert (pending.state, pending.created_at, pending.error_messages) == (State.PENDING, "T1", [])
    failed = decide.apply(
        pending, Transition(State.FAILED, Reason.SOURCE_NOT_FOUND, "gone"), "T2", 1
    )
    assert failed.created_at == "T1"
    assert failed.updated_at == "T2"
    assert failed.error_messages == ["gone"]
    again = decide.apply(failed, Transition(State.FAILED, Reason.SOURCE_NOT_FOUND, "gone"), "T3", 1)
    assert again.error_messages == ["gone"]
    conditions = {c.type: c.status for c in failed.conditions}
    assert conditions == {"Ready": "False", "Failed": "True"}
    assert [
        decide.next_step(s)
        for s in (None, State.PENDING, State.IN_PROGRESS, State.CREATED, State.FAILED)
    ] == [
        decide.Step.ADMIT,
        decide.Step.START,
        decide.Step.CLONE,
        decide.Step.FINISH,
        decide.Step.FINISH,
    ]


def test_cluster_progress_says_what_it_waits_for_in_the_ready_condition() -> None:
    from clone_operator.reconcile.clusters import Readiness

    status = decide.apply(
        CloneObjectStatus(), Transition(State.IN_PROGRESS, Reason.STARTED, "go"), "T1", 1
    )
    first = decide.progress(status, "tgt", Readiness(0, 1, False), "T2", 1)
    assert first is not None
    noted = decide.progress(first, "tgt", Readiness(0, 1, False), "T3", 1, "waiting for volumes")
    assert noted is not None
    [ready] = [c for c in noted.conditions if c.type == "Ready"]
    assert ready.message == "cluster tgt: 0/1 replicas ready; waiting for volumes"
    assert decide.progress(noted, "tgt", Readiness(0, 1, False), "T4", 1) is None
    assert decide.progress(noted, "tgt", Readiness(0, 1, False), "T4", 1, "") is not None


@pytest.mark.parametrize(
    ("error", "reason", "message"),
    [
        (objects.CopyError("no copy"), Reason.INVALID_SOURCE, "no copy"),
        (SourceNotFound("gone"), Reason.SOURCE_NOT_FOUND, "gone"),
        (TargetExists("taken"), Reason.DESTINATION_EXISTS, "taken"),
        (OutsideAdmitted("elsewhere"), Reason.OUTSIDE_ADMITTED, "elsewhere"),
        (
            Invalid(422, "Invalid", "spec.x: bad"),
            Reason.INVALID_DESTINATION,
            "the API server refused the Secret built from the source and options: spec.x: bad",
        ),
        (
            NotFound(404, "NotFound", "namespaces dst not found"),
            Reason.NAMESPACE_NOT_FOUND,
            "destination namespace dst does not exist",
        ),
    ],
)
def test_every_copy_error_fails_with_a_reason_and_words_a_user_can_act_on(
    error: Exception, reason: Reason, message: str
) -> None:
    assert isinstance(error, decide.COPY_ERRORS)
    assert decide.failure_of(SourceKind.SECRET, "dst", error) == (reason, message)
