"""The gateway's pure parts: resources as the seeds' JSON, and who a token says it is."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest

from clone_operator.gateway import auth, views


def operation(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "op-1", "creationTimestamp": "2026-03-27T03:40:21Z"},
        "spec": {"sourceCluster": "search", **spec},
        **({"status": status} if status is not None else {}),
    }


def test_a_new_operation_reads_pending_with_its_request() -> None:
    view = views.operation_view(
        operation(serverVersion="28.0", targetRegion="oregon", notificationEmailAddresses=["a@b.c"])
    )
    assert view.model_dump() == {
        "id": "op-1",
        "status": "pending",
        "created_at": 1774582821,
        "updated_at": 1774582821,
        "completed_at": None,
        "source_region": None,
        "target_region": "oregon",
        "typesense_server_version": "28.0",
        "target_cluster_reference_id": None,
        "notification_email_addresses": ["a@b.c"],
    }


@pytest.mark.parametrize(
    ("phase", "cancel", "expected"),
    [
        ("Pending", False, "pending"),
        ("Pending", True, "canceled"),  # the API server allows it no other end
        ("InProgress", False, "in_progress"),
        ("Canceled", True, "canceled"),
        ("Succeeded", False, "succeeded"),
        ("Failed", False, "failed"),
    ],
)
def test_phases_read_in_the_seeds_spelling(phase: str, cancel: bool, expected: str) -> None:
    assert views.operation_view(operation({"phase": phase}, cancel=cancel)).status == expected


def test_the_reference_appears_only_once_succeeded() -> None:
    status = {
        "phase": "InProgress",
        "targetCluster": "search-clone-1",
        "sourceRegion": "us-east-1",
        "targetRegion": "us-west-2",
        "serverVersion": "27.1",
        "createdAt": "2026-03-27T03:40:21Z",
        "updatedAt": "2026-03-27T03:41:00Z",
    }
    running = views.operation_view(operation(status))
    assert running.target_cluster_reference_id is None
    assert (running.target_region, running.typesense_server_version) == ("us-west-2", "27.1")
    assert running.updated_at - running.created_at == 39
    done = views.operation_view(
        operation({**status, "phase": "Succeeded", "completedAt": "2026-03-27T03:42:00Z"})
    )
    assert (done.target_cluster_reference_id, done.completed_at) == ("search-clone-1", 1774582920)


def test_clone_objects_read_as_the_bridge_seed() -> None:
    obj = {
        "metadata": {
            "name": "clone-object-3",
            "creationTimestamp": "2026-03-28T21:36:16Z",
            "labels": {views.OBJECT_ID_LABEL: "3"},
        },
        "spec": {"source": {"kind": "ConfigMap", "name": "1"}, "options": {"name": "sub-clone-1"}},
    }
    fresh = views.object_view(obj).model_dump()
    assert fresh == {
        "id": 3,
        "state": "pending",
        "destination_id": "sub-clone-1",
        "destination_type": "ConfigMap",
        "source_id": "1",
        "source_type": "ConfigMap",
        "error_messages": [],
        "created_at": "2026-03-28T21:36:16.000+00:00",
        "updated_at": "2026-03-28T21:36:16.000+00:00",
        "parameters": {"name": "sub-clone-1"},
    }
    obj["status"] = {
        "state": "InProgress",
        "destination": {"apiVersion": "v1", "kind": "ConfigMap", "name": "sub-clone-1"},
        "parameters": {"name": "sub-clone-1", "namespace": "team-a"},
        "errorMessages": ["slow"],
    }
    later = views.object_view(obj)
    assert (later.state, later.error_messages) == ("in_progress", ["slow"])
    assert later.parameters == {"name": "sub-clone-1", "namespace": "team-a"}


def test_object_manifest_records_the_id_and_the_options() -> None:
    options = views.ObjectOptions.model_validate({"name": "copy", "labels": {"a": "b"}})
    manifest = views.object_manifest(7, views.SourceKind.SECRET, "db", options)
    assert manifest["metadata"] == {
        "name": "clone-object-7",
        "labels": {views.OBJECT_ID_LABEL: "7"},
    }
    assert manifest["spec"] == {
        "source": {"kind": "Secret", "name": "db"},
        "options": {"name": "copy", "labels": {"a": "b"}, "annotations": {}},
    }
    with pytest.raises(ValueError, match="subdomain"):
        views.ObjectOptions.model_validate({"subdomain": "x"})


def test_uuid7_names_sort_in_creation_order() -> None:
    names = [views.uuid7() for _ in range(50)]
    assert all(uuid.UUID(n).version == 7 for n in names)
    assert len(set(names)) == 50
    assert [n[:13] for n in names] == sorted(n[:13] for n in names)  # the millisecond prefix
    assert all(views.is_uuid7(n) for n in names)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(str(uuid.uuid4()), id="version 4"),
        pytest.param(str(uuid.uuid1()), id="version 1"),
        pytest.param("01a20c5b-60e9-78dd-8cfc-46f75b8d02a", id="a digit short"),
        pytest.param("01A20C5B-60E9-78DD-8CFC-46F75B8D02AE", id="upper case"),
        pytest.param("01a20c5b-60e9-78dd-ccfc-46f75b8d02ae", id="not the RFC variant"),
        pytest.param("my-operation", id="any name"),
    ],
)
def test_only_canonical_uuid7_names_count_as_time_ordered(name: str) -> None:
    assert not views.is_uuid7(name)
    made = [views.uuid7() for _ in range(3)]
    assert views.all_uuid7(made)
    assert not views.all_uuid7([*made, name])
    assert not views.all_uuid7([name, *made])
    assert not views.all_uuid7([f"{made[0]}\n{made[1]}"])  # one name is one line


def test_no_names_are_all_time_ordered() -> None:
    assert views.all_uuid7([])


def test_etag_follows_the_content() -> None:
    assert views.etag({"a": [1]}) == views.etag({"a": [1]})
    assert views.etag({"a": [1]}) != views.etag({"a": [2]})


def jwt(payload: dict[str, Any]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJSUzI1NiJ9.{body}.c2ln"


def test_the_key_comes_from_either_seeds_header() -> None:
    assert auth.token_from({"x-typesense-cloud-management-api-key": "t1"}) == "t1"
    assert auth.token_from({"authorization": "Bearer t2"}) == "t2"
    with pytest.raises(auth.Unauthenticated):
        auth.token_from({"authorization": "Basic dTpw"})
    with pytest.raises(auth.Unauthenticated):
        auth.token_from({})


def test_the_namespace_is_the_tokens_unless_named() -> None:
    bound = jwt(
        {"sub": "system:serviceaccount:team-a:ci", "kubernetes.io": {"namespace": "team-a"}}
    )
    assert auth.namespace_hint({}, None, bound) == "team-a"
    assert auth.namespace_hint({}, "team-b", bound) == "team-b"
    assert auth.namespace_hint({"x-kubernetes-namespace": "team-c"}, None, bound) == "team-c"
    assert auth.namespace_hint({}, None, jwt({"sub": "system:serviceaccount:x:y"})) == "x"
    assert auth.namespace_hint({}, None, "opaque-oidc-token") is None
    with pytest.raises(auth.NoNamespace):
        auth.namespace_hint({}, "Not_A_Namespace", bound)
