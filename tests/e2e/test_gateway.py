"""The seeds' HTTP APIs through the gateway, with ServiceAccount tokens only.

Every request is a seed's own curl command, run by the real curl with only the
host, the key and the ids replaced; the answers must have exactly the keys and
JSON types of the seed's examples. The gateway runs with its own ServiceAccount
(the chart's Role: id-counter ConfigMaps only), so everything it does on the
custom resources is done with the caller's token.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clone_operator import webhook_certs
from tests.cluster import localcluster
from tests.e2e.clones import source_cluster
from tests.e2e.gateway import (
    GatewayProcess,
    Response,
    curl,
    install_gateway_rbac,
    rss_kib,
    shape,
    stream_body,
)
from tests.e2e.harness import DEFAULT_OPERATOR_ENV, OperatorProcess
from tests.e2e.kube import Kubectl, make_unplaceable, sa_kubeconfig, wait_for
from tests.e2e.manifests import operation

pytestmark = pytest.mark.e2e

SEEDS = Path(__file__).resolve().parents[2] / ".." / "shared" / "seeds"
GATEWAY_NAMESPACE = f"clone-operator-api-{os.getpid()}"
RELEASE = "e2e-api"

# --- the seeds' curl commands, verbatim ---------------------------------------------
TS_CREATE = """curl -X POST --location "https://cloud.typesense.org/api/v1/clusters/<ClusterId>/cloning-operations" \\
    -H "Content-Type: application/json" \\
    -H "Accept: application/json" \\
    -H "X-TYPESENSE-CLOUD-MANAGEMENT-API-KEY: YOUR-API-KEY" \\
    -d '{
          "typesense_server_version": "28.0",
          "target_region": "oregon",
          "notification_email_addresses": ["email@example.com"]
        }'"""
TS_GET = """curl -X GET --location "https://cloud.typesense.org/api/v1/clusters/<ClusterID>/cloning-operations/<OperationId>" \\
      -H "Accept: application/json" \\
      -H "X-TYPESENSE-CLOUD-MANAGEMENT-API-KEY: YOUR-API-KEY\""""
TS_LIST = """curl -X GET --location "https://cloud.typesense.org/api/v1/clusters/<ClusterID>/cloning-operations?per_page=1" \\
      -H "Accept: application/json" \\
      -H "X-TYPESENSE-CLOUD-MANAGEMENT-API-KEY: YOUR-API-KEY\""""
TS_CANCEL = """curl -X PATCH --location "https://cloud.typesense.org/api/v1/clusters/<ClusterID>/cloning-operations/<OperationID>" \\
      -H "Content-Type: application/json" \\
      -H "Accept: application/json" \\
      -H "X-TYPESENSE-CLOUD-MANAGEMENT-API-KEY: YOUR-API-KEY" \\
      -d '{
        "status": "canceled"
      }'"""
# The Bridge's example body names SubAccounts with ids 1 and 3: here they are
# ConfigMaps named "1" and "3" (an integer source_id is the name it spells), and
# its options become CloneObject options (a destination name and a label).
BRIDGE_BODY = {
    "clone_objects": [
        {
            "source_id": 1,
            "source_type": "ConfigMap",
            "options": {"name": "sub-clone-1", "labels": {"subdomain": "sub-clone-1"}},
        },
        {
            "source_id": 3,
            "source_type": "ConfigMap",
            "options": {"name": "sub-clone-2", "labels": {"subdomain": "sub-clone-2"}},
        },
    ]
}
BRIDGE_CREATE = """curl \\
  -X POST \\
  -H "Authorization: Bearer $TOKEN" \\
  -H 'Content-Type: application/json' \\
  -H 'Accept: application/json' \\
  -d 'BODY' \\
  http://<bridge>/api/admin/clone_objects"""
BRIDGE_LIST = 'curl -H "Authorization: Bearer $TOKEN" -H "Accept: application/json" http://<bridge>/api/admin/clone_objects'
BRIDGE_SHOW = 'curl -H "Authorization: Bearer $TOKEN" -H "Accept: application/json" http://<bridge>/api/admin/clone_objects/:id'

# --- the seeds' example responses: their keys and types ------------------------------
TS_OPERATION = {
    "id": "str",
    "status": "str",
    "created_at": "integer",
    "updated_at": "integer",
    "completed_at": "integer",
    "source_region": "str",
    "target_region": "str",
    "typesense_server_version": "str",
    "target_cluster_reference_id": "str",
    "notification_email_addresses": ["str"],
}
NULLABLE_UNTIL_DONE = {"completed_at", "target_cluster_reference_id"}
BRIDGE_OBJECT = {
    "id": "integer",
    "state": "str",
    "destination_id": "str",  # the seed's integers are object names here
    "destination_type": "str",
    "source_id": "str",
    "source_type": "str",
    "error_messages": [],
    "created_at": "str",
    "updated_at": "str",
    "parameters": "dict",
}


def operation_shaped(value: dict[str, Any], *null: str) -> None:
    got = shape(value)
    assert set(got) == set(TS_OPERATION), got
    for key, expected in TS_OPERATION.items():
        allowed = {json.dumps(expected)} | (
            {'"null"'} if key in NULLABLE_UNTIL_DONE or key in null else set()
        )
        assert json.dumps(got[key]) in allowed, (key, got[key])


def object_shaped(value: dict[str, Any]) -> None:
    assert set(value) == set(BRIDGE_OBJECT), value
    assert isinstance(value["id"], int)
    assert not isinstance(value["id"], bool)
    for key in (
        "state",
        "destination_type",
        "source_id",
        "source_type",
        "created_at",
        "updated_at",
    ):
        assert isinstance(value[key], str), (key, value)
    assert isinstance(value["destination_id"], str | None)
    assert isinstance(value["error_messages"], list)
    assert isinstance(value["parameters"], dict)
    for stamp in ("created_at", "updated_at"):
        assert (value[stamp][-6] in "+-", value[stamp][-3]) == (True, ":"), value[stamp]


@dataclass(frozen=True)
class Caller:
    namespace: str
    token: str
    kubectl: Kubectl


@pytest.fixture(scope="session")
def gateway(cluster: localcluster.Paths, admin: Kubectl, crds: None,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:  # fmt: skip
    """The gateway, running as the chart's gateway ServiceAccount."""
    admin("create", "namespace", GATEWAY_NAMESPACE)
    install_gateway_rbac(admin, cluster.helm_bin / "helm", GATEWAY_NAMESPACE, RELEASE)
    kubeconfig = sa_kubeconfig(
        admin, GATEWAY_NAMESPACE, f"{RELEASE}-clone-operator-api",
        tmp_path_factory.mktemp("gateway") / "kubeconfig",
    )  # fmt: skip
    proc = GatewayProcess(kubeconfig, GATEWAY_NAMESPACE)
    yield proc
    proc.stop()
    assert "eyJ" not in proc.log(), "a token was logged"
    assert "Traceback" not in proc.log(), f"the gateway crashed on a request: {proc.log_path}"
    admin("delete", "namespace", GATEWAY_NAMESPACE, "--wait=false", check=False)


def make_caller(admin: Kubectl, namespace: str, name: str = "alice", rights: bool = True) -> Caller:
    kubectl = admin.in_namespace(namespace)
    kubectl("create", "serviceaccount", name)
    if rights:
        kubectl("create", "role", f"{name}-clones", "--verb=*",
                "--resource=cloningoperations.cloning.dev,cloneobjects.cloning.dev")  # fmt: skip
        kubectl("create", "role", f"{name}-sources", "--verb=get,list,create",
                "--resource=statefulsets.apps,configmaps,secrets,services,persistentvolumeclaims")  # fmt: skip
        for role in (f"{name}-clones", f"{name}-sources"):
            kubectl("create", "rolebinding", role, f"--role={role}",
                    f"--serviceaccount={namespace}:{name}")  # fmt: skip
        wait_for(
            f"{name}'s roles",
            lambda: kubectl("auth", "can-i", "create", "cloneobjects.cloning.dev",
                            f"--as=system:serviceaccount:{namespace}:{name}",
                            check=False).stdout.strip() == "yes",
        )  # fmt: skip
    token = kubectl("create", "token", name, "--duration", "2h").stdout.strip()
    return Caller(namespace, token, kubectl)


@pytest.fixture
def alice(admin: Kubectl, namespace: str) -> Caller:
    return make_caller(admin, namespace)


def ts(command: str, gw: GatewayProcess, who: Caller, cluster: str, op: str = "") -> Response:
    return curl(
        command,
        **{"https://cloud.typesense.org": gw.url, "YOUR-API-KEY": who.token,
           "<ClusterId>": cluster, "<ClusterID>": cluster,
           "<OperationId>": op, "<OperationID>": op},
    )  # fmt: skip


def bridge(command: str, gw: GatewayProcess, who: Caller, body: Any = None,
           object_id: int | None = None, extra: str = "") -> Response:  # fmt: skip
    command = command.replace("'BODY'", f"'{json.dumps(body)}'")
    command = command.replace("curl", f"curl {extra}", 1) if extra else command
    return curl(
        command,
        **{"http://<bridge>": gw.url, "$TOKEN": who.token, ":id": str(object_id)},
    )  # fmt: skip


# --- Typesense ---------------------------------------------------------------------


def test_typesense_workflow_create_poll_cancel(
    gateway: GatewayProcess, alice: Caller, operator: OperatorProcess
) -> None:
    # One InProgress slot, held by an operation whose pods can never be scheduled:
    # the next operation waits Pending (cancellable), as the seed's queue does.
    operator.ensure({**DEFAULT_OPERATOR_ENV, "CLONE_OPERATOR_MAX_IN_PROGRESS": "1",
                     "CLONE_OPERATOR_UNSCHEDULABLE_GRACE_SECONDS": "600"})  # fmt: skip
    kubectl = alice.kubectl
    source_cluster(kubectl, "stuck", replicas=1)
    make_unplaceable(kubectl, "stuck")
    source_cluster(kubectl, "search", replicas=1)

    # In the source's region: a volume copy cannot leave it, and is refused at pickup.
    holder = ts(TS_CREATE.replace('"oregon"', '"virginia"'), gateway, alice, "stuck")
    assert holder.status == 201, holder.text
    holder_id = holder.json()["cloning_operation"]["id"]
    wait_for("the holder to be in_progress",
             lambda: ts(TS_GET, gateway, alice, "stuck", holder_id).json()["status"] == "in_progress")  # fmt: skip

    created = ts(TS_CREATE, gateway, alice, "search")
    assert created.status == 201, created.text
    body = created.json()
    assert set(body) == {"success", "cloning_operation"}
    assert body["success"] is True
    op = body["cloning_operation"]
    # source_region is the operator's finding: null for the instant before it looks.
    operation_shaped(op, "source_region")
    assert uuid.UUID(op["id"])
    assert (op["status"], op["target_region"], op["typesense_server_version"]) == (
        "pending",
        "oregon",
        "28.0",
    )
    assert op["notification_email_addresses"] == ["email@example.com"]
    assert op["completed_at"] is None
    assert op["target_cluster_reference_id"] is None
    assert kubectl.get("cloningoperation", op["id"])["spec"]["sourceCluster"] == "search"

    # A second one for the same cluster while this one is active: 409.
    again = ts(TS_CREATE, gateway, alice, "search")
    assert (again.status, again.json()["success"]) == (409, False), again.text
    assert op["id"] in again.json()["message"]

    # Waiting for a slot the operator has not looked at the source's nodes: no region yet.
    polled = wait_for(
        "the operator to queue it",
        lambda: (
            (r := ts(TS_GET, gateway, alice, "search", op["id"])).status == 200
            and kubectl.get("cloningoperation", op["id"]).get("status", {}).get("reason")
            == "WaitingForSlot"
            and r.json()
        ),
    )
    operation_shaped(polled, "source_region")
    assert polled["status"] == "pending"

    listed = ts(TS_LIST, gateway, alice, "search")
    assert listed.status == 200
    page = listed.json()
    assert set(page) == {"page", "per_page", "total", "cloning_operations"}
    assert (page["page"], page["per_page"], page["total"]) == (1, 1, 1)
    operation_shaped(page["cloning_operations"][0], "source_region")

    canceled = ts(TS_CANCEL, gateway, alice, "search", op["id"])
    assert canceled.status == 200, canceled.text
    assert canceled.json()["success"] is True
    operation_shaped(canceled.json()["cloning_operation"], "source_region")
    assert canceled.json()["cloning_operation"]["status"] == "canceled"
    done = wait_for("the cancel to complete",
                    lambda: (g := ts(TS_GET, gateway, alice, "search", op["id"]).json())["completed_at"] and g)  # fmt: skip
    assert done["status"] == "canceled"
    assert isinstance(done["completed_at"], int)
    assert kubectl.items("statefulset", "-l", "cloning.dev/source-cluster=search") == []

    # Past pending, the API server refuses the cancel, and says why.
    refused = ts(TS_CANCEL, gateway, alice, "stuck", holder_id)
    assert refused.status == 409, refused.text
    assert refused.json() == {"success": False, "message": refused.json()["message"]}
    assert "only a Pending operation can be canceled" in refused.json()["message"]

    # Unknown cluster, unknown operation, an operation asked of the wrong cluster: 404.
    assert ts(TS_LIST, gateway, alice, "nope").status == 404
    assert ts(TS_GET, gateway, alice, "search", str(uuid.uuid4())).status == 404
    assert ts(TS_GET, gateway, alice, "stuck", op["id"]).status == 404
    # A bad body: 400 with the seed's error shape.
    bad = ts(TS_CREATE.replace('"28.0"', "28"), gateway, alice, "search")
    assert (bad.status, bad.json()["success"]) == (400, False), bad.text


def test_typesense_operation_succeeds_with_a_reference_and_lists_newest_first(
    gateway: GatewayProcess, alice: Caller, operator: OperatorProcess
) -> None:
    source_cluster(alice.kubectl, "search", replicas=1)
    ids = []
    # The source's volumes are regional (us-east-1): a clone stays in that region.
    same_region = TS_CREATE.replace('"oregon"', '"virginia"')
    for _ in range(2):
        made = ts(same_region, gateway, alice, "search")
        assert made.status == 201, made.text
        ids.append(made.json()["cloning_operation"]["id"])
        done = wait_for("the operation to succeed",
                        lambda: (g := ts(TS_GET, gateway, alice, "search", ids[-1]).json())["status"]
                        in ("succeeded", "failed") and g, timeout=90)  # fmt: skip
        assert done["status"] == "succeeded", done
        operation_shaped(done)
        assert done["target_cluster_reference_id"] == alice.kubectl.get(
            "cloningoperation", ids[-1])["status"]["targetCluster"]  # fmt: skip
        assert done["completed_at"] >= done["created_at"]
        assert done["target_region"] == "virginia"
        assert done["source_region"] == "us-east-1"  # where its volume, and so its pod, is
    page = ts(TS_LIST.replace("?per_page=1", "?per_page=10"), gateway, alice, "search").json()
    assert [o["id"] for o in page["cloning_operations"]] == ids[::-1]
    assert page["total"] == 2
    second = ts(TS_LIST.replace("?per_page=1", "?per_page=1&page=2"), gateway, alice, "search")
    assert [o["id"] for o in second.json()["cloning_operations"]] == [ids[0]]

    # One made with kubectl (any name) is listed too, in creation order.
    alice.kubectl.apply(operation("by-hand", "search"))
    wait_for("by-hand to succeed",
             lambda: ts(TS_GET, gateway, alice, "search", "by-hand").json()["status"] == "succeeded",
             timeout=90)  # fmt: skip
    page = ts(TS_LIST.replace("?per_page=1", "?per_page=2"), gateway, alice, "search").json()
    assert [o["id"] for o in page["cloning_operations"]] == ["by-hand", ids[1]]
    assert page["total"] == 3


# --- Bridge ------------------------------------------------------------------------


def clone_objects(kubectl: Kubectl) -> list[str]:
    return sorted(o["metadata"]["name"] for o in kubectl.items("cloneobjects"))


def test_bridge_batch_is_created_and_polled_with_the_seeds_curls(
    gateway: GatewayProcess, alice: Caller, operator: OperatorProcess
) -> None:
    kubectl = alice.kubectl
    for name in ("1", "3"):
        kubectl("create", "configmap", name, f"--from-literal=source={name}")

    made = bridge(BRIDGE_CREATE, gateway, alice, BRIDGE_BODY)
    assert made.status == 201, made.text
    assert set(made.json()) == {"clone_objects"}
    first, second = made.json()["clone_objects"]
    for obj in (first, second):
        object_shaped(obj)
        assert obj["state"] == "pending"
    assert (first["source_id"], second["source_id"]) == ("1", "3")
    assert (first["destination_id"], second["destination_id"]) == ("sub-clone-1", "sub-clone-2")
    assert first["source_type"] == first["destination_type"] == "ConfigMap"
    assert second["id"] == first["id"] + 1
    assert first["parameters"]["labels"] == {"subdomain": "sub-clone-1"}

    for obj in (first, second):
        shown = wait_for(f"clone object {obj['id']} to be created",
                         lambda o=obj: (r := bridge(BRIDGE_SHOW, gateway, alice, object_id=o["id"])
                                        ).json()["clone_objects"][0]["state"] == "created" and r)  # fmt: skip
        assert shown.status == 200
        assert set(shown.json()) == {"clone_objects"}
        object_shaped(shown.json()["clone_objects"][0])
        assert shown.json()["clone_objects"][0]["error_messages"] == []
    copy = kubectl.get("configmap", "sub-clone-1")
    assert copy["data"] == {"source": "1"}
    assert copy["metadata"]["labels"]["subdomain"] == "sub-clone-1"

    listed = bridge(BRIDGE_LIST, gateway, alice)
    assert listed.status == 200
    assert set(listed.json()) == {"meta", "clone_objects"}
    assert [o["id"] for o in listed.json()["clone_objects"]] == [second["id"], first["id"]]
    assert listed.json()["meta"] == {"page": 1, "per_page": 10, "total": 2}
    tag = listed.headers["etag"]
    again = bridge(BRIDGE_LIST, gateway, alice, extra=f"-H 'If-None-Match: {tag}'")
    assert (again.status, again.text, again.headers["etag"]) == (304, "", tag)

    # Mixed source types: 400, nothing created.
    before = clone_objects(kubectl)
    mixed = {"clone_objects": [BRIDGE_BODY["clone_objects"][0] | {"options": {}},
                               {"source_id": "1", "source_type": "Secret", "options": {}}]}  # fmt: skip
    refused = bridge(BRIDGE_CREATE, gateway, alice, mixed)
    assert refused.status == 400, refused.text
    assert "source_types need to be identical" in refused.json()["message"]
    # An existing destination (sub-clone-1 now exists) beside a valid item: 409, nothing created.
    clash = {"clone_objects": [{"source_id": 3, "source_type": "ConfigMap", "options": {"name": "fresh"}},
                               {"source_id": 1, "source_type": "ConfigMap", "options": {"name": "sub-clone-1"}}]}  # fmt: skip
    conflict = bridge(BRIDGE_CREATE, gateway, alice, clash)
    assert conflict.status == 409, conflict.text
    assert "sub-clone-1 already exists" in conflict.json()["message"]
    # Options the CloneObject does not know, and an unknown source: 400.
    unknown = {
        "clone_objects": [
            {"source_id": 1, "source_type": "ConfigMap", "options": {"subdomain": "x"}}
        ]
    }
    assert bridge(BRIDGE_CREATE, gateway, alice, unknown).status == 400
    missing = {"clone_objects": [{"source_id": 9, "source_type": "ConfigMap", "options": {}}]}
    assert bridge(BRIDGE_CREATE, gateway, alice, missing).status == 400
    assert clone_objects(kubectl) == before
    assert kubectl.get("configmap", "fresh") is None
    assert bridge(BRIDGE_SHOW, gateway, alice, object_id=999999).status == 404


# --- Auth --------------------------------------------------------------------------


def test_tokens_decide_who_sees_and_does_what(
    gateway: GatewayProcess, alice: Caller, admin: Kubectl, other_namespace: str
) -> None:
    alice.kubectl("create", "configmap", "1", "--from-literal=a=b")
    made = bridge(
        BRIDGE_CREATE,
        gateway,
        alice,
        {"clone_objects": [{"source_id": 1, "source_type": "ConfigMap"}]},
    )
    assert made.status == 201, made.text
    object_id = made.json()["clone_objects"][0]["id"]

    nobody = Caller(alice.namespace, "", alice.kubectl)
    for response in (bridge(BRIDGE_LIST.replace('-H "Authorization: Bearer $TOKEN" ', ""), gateway, nobody),
                     ts(TS_LIST.replace('-H "X-TYPESENSE-CLOUD-MANAGEMENT-API-KEY: YOUR-API-KEY"', ""),
                        gateway, nobody, "x")):  # fmt: skip
        assert response.status == 401, response.text
    forged = Caller(alice.namespace, "not-a-token", alice.kubectl)
    assert bridge(BRIDGE_LIST, gateway, forged).status == 401
    assert ts(TS_LIST, gateway, forged, "x").status == 401
    # A JWT that names a namespace but that the API server did not sign.
    header, _, _ = alice.token.split(".")
    fake = Caller(alice.namespace, f"{header}.eyJzdWIiOiJ4In0.c2ln", alice.kubectl)
    assert bridge(BRIDGE_LIST, gateway, fake).status == 401

    bob = make_caller(admin, alice.namespace, "bob", rights=False)
    for response in (bridge(BRIDGE_LIST, gateway, bob), bridge(BRIDGE_SHOW, gateway, bob, object_id=object_id),
                     ts(TS_LIST, gateway, bob, "x"),
                     bridge(BRIDGE_CREATE, gateway, bob, {"clone_objects": [{"source_id": 1, "source_type": "ConfigMap"}]})):  # fmt: skip
        assert response.status == 403, response.text
        assert "bob" in response.text
        assert "forbidden" in response.text
    assert len(clone_objects(alice.kubectl)) == 1

    # A show reads the object by name (get) and, refused that, selects it by label (list):
    # a caller who may only list still sees it, as the list would show it to them.
    dave = make_caller(admin, alice.namespace, "dave", rights=False)
    dave.kubectl(
        "create", "role", "dave-list", "--verb=list", "--resource=cloneobjects.cloning.dev"
    )
    dave.kubectl("create", "rolebinding", "dave-list", "--role=dave-list",
                 f"--serviceaccount={alice.namespace}:dave")  # fmt: skip
    shown = wait_for("dave's list right",
                     lambda: (r := bridge(BRIDGE_SHOW, gateway, dave, object_id=object_id)).status == 200
                     and r)  # fmt: skip
    assert shown.json()["clone_objects"][0]["id"] == object_id

    carol = make_caller(admin, other_namespace, "carol")
    theirs = bridge(BRIDGE_LIST, gateway, carol)
    assert theirs.status == 200
    assert theirs.json()["clone_objects"] == []
    assert bridge(BRIDGE_SHOW, gateway, carol, object_id=object_id).status == 404
    # Naming alice's namespace explicitly does not help: RBAC says no.
    assert bridge(BRIDGE_LIST.replace("clone_objects", f"clone_objects?namespace={alice.namespace}"),
                  gateway, carol).status == 403  # fmt: skip


@pytest.fixture
def other_namespace(admin: Kubectl) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    admin("create", "namespace", name)
    yield name
    admin("delete", "namespace", name, "--wait=false", check=False)


def test_concurrent_posts_through_two_replicas_get_distinct_ids(
    gateway: GatewayProcess, alice: Caller
) -> None:
    alice.kubectl("create", "configmap", "settings", "--from-literal=a=b")
    second = GatewayProcess(gateway.kubeconfig, GATEWAY_NAMESPACE, "gateway-2")
    try:
        body = {"clone_objects": [{"source_id": "settings", "source_type": "ConfigMap"}]}
        replicas = [gateway, second]

        def post(i: int) -> Response:
            return bridge(BRIDGE_CREATE, replicas[i % 2], alice, body)

        with ThreadPoolExecutor(max_workers=50) as pool:
            answers = list(pool.map(post, range(50)))
    finally:
        second.stop()
    assert [a.status for a in answers] == [201] * 50, [a.text for a in answers if a.status != 201]
    ids = [a.json()["clone_objects"][0]["id"] for a in answers]
    assert len(set(ids)) == 50
    labels = [
        o["metadata"]["labels"]["cloning.dev/object-id"]
        for o in alice.kubectl.items("cloneobjects")
    ]
    assert sorted(int(v) for v in labels) == sorted(ids)


def test_openapi_document_docs_page_and_metrics(gateway: GatewayProcess, alice: Caller) -> None:
    document = curl(f"curl {gateway.url}/openapi.json")
    assert document.status == 200
    paths = document.json()["paths"]
    assert set(paths) == {
        "/api/v1/clusters/{cluster}/cloning-operations",
        "/api/v1/clusters/{cluster}/cloning-operations/{operation_id}",
        "/api/admin/clone_objects",
        "/api/admin/clone_objects/{object_id}",
    }
    assert set(document.json()["components"]["securitySchemes"]) == {"ApiKey", "Bearer"}
    assert curl(f"curl {gateway.url}/docs").status == 200

    assert bridge(BRIDGE_SHOW, gateway, alice, object_id=424242).status == 404
    metrics = curl(f"curl {gateway.url}/metrics").text
    assert (
        'clone_operator_api_requests_total{method="GET",route="/api/admin/clone_objects/{object_id}",'
        'status="404"}' in metrics
    )
    assert (
        'clone_operator_api_request_duration_seconds_bucket{le="0.1",method="GET",'
        'route="/api/admin/clone_objects/{object_id}"}' in metrics
    )


def test_https_when_given_a_certificate(gateway: GatewayProcess, alice: Caller) -> None:
    cert = webhook_certs.self_signed(["127.0.0.1"])
    secure = GatewayProcess(
        gateway.kubeconfig, GATEWAY_NAMESPACE, "gateway-tls", tls=(cert.certfile, cert.keyfile)
    )
    try:
        assert secure.url.startswith("https://")
        listed = bridge(BRIDGE_LIST, secure, alice, extra=f"--cacert {cert.certfile}")
        assert listed.status == 200, listed.text
        assert set(listed.json()) == {"meta", "clone_objects"}
    finally:
        secure.stop()


@pytest.mark.parametrize("chunked", [False, True], ids=["sized", "chunked"])
def test_an_unauthenticated_50_mib_body_is_refused_within_a_second(
    gateway: GatewayProcess, chunked: bool
) -> None:
    """No token and 50 MiB: refused 413 before the body is read (sized) or as soon as it
    passes the limit (chunked), the connection closed, and the gateway holds none of it."""
    before = rss_kib(gateway.proc.pid)
    refusal = stream_body(gateway.port, "/api/admin/clone_objects", 50 * 2**20, chunked)
    grown = rss_kib(gateway.proc.pid) - before
    assert refusal.head.startswith("HTTP/1.1 413 "), refusal
    assert "connection: close" in refusal.head.lower()
    assert refusal.seconds < 1, refusal
    assert refusal.sent < 50 * 2**20  # it stopped reading: the client could not send it all
    assert grown < 10 * 1024, f"the gateway's RSS grew by {grown} KiB"
    assert gateway.healthy()

    # Methods a client invents are one series, `other`; the refusal is counted too.
    assert curl(f"curl -X BREW-{os.getpid()} {gateway.url}/api/admin/clone_objects").status == 405
    metrics = curl(f"curl {gateway.url}/metrics").text
    assert f"BREW-{os.getpid()}" not in metrics
    assert 'clone_operator_api_requests_total{method="other",' in metrics
    assert (
        'clone_operator_api_requests_total{method="POST",route="unmatched",status="413"}' in metrics
    )
