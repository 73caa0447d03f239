"""No confused deputy: a clone needs its requester's own rights, asked as an attacker would.

Every request here is made by a ServiceAccount through a kubeconfig that holds
only its token (an admin client certificate beside it would authenticate
first). The ValidatingAdmissionPolicies in crds/ run in the API server, so the
refusals hold whether the operator and its webhook are up or down.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.clones import source_cluster, wait_phase
from tests.e2e.harness import OperatorProcess
from tests.e2e.kube import Kubectl, ready_replicas, wait_for
from tests.e2e.manifests import clone_object, operation, statefulset
from tests.e2e.requesters import Requester

pytestmark = pytest.mark.e2e

REQUESTED_BY = "cloning.dev/requested-by"


def refused(requester: Requester, manifest: dict[str, Any], missing: str, *also: str) -> str:
    """Apply as the requester; assert the API server refused it (403), naming the first
    `missing` permission after 'cannot', and mentioning each of `also`."""
    result = requester.kubectl.apply(manifest, check=False)
    assert result.returncode != 0, f"{manifest['metadata']['name']} was admitted"
    assert "Error from server (Forbidden)" in result.stderr, result.stderr
    for fragment in (f'User "{requester.username}" cannot {missing};', *also):
        assert fragment in result.stderr, result.stderr
    kind = manifest["kind"].lower()
    assert requester.kubectl.get(kind, manifest["metadata"]["name"]) is None
    return result.stderr


def secret_source(kubectl: Kubectl) -> None:
    kubectl("create", "secret", "generic", "db-password", "--from-literal=password=hunter2")


def steal(other: str) -> dict[str, Any]:
    """The attacker's manifest from the issue: the source Secret into another namespace."""
    return clone_object("steal", "Secret", "db-password", name="loot", namespace=other)


def test_a_secret_is_cloned_only_by_who_may_read_it_and_write_there(
    requester: Requester, kubectl: Kubectl, other_namespace: str, operator: OperatorProcess
) -> None:
    secret_source(kubectl)
    requester.allow(other_namespace, "get", "secrets")
    assert not requester.can_i("get", "secrets", kubectl.namespace or "")
    assert not requester.can_i("create", "secrets", other_namespace)

    refused(
        requester,
        steal(other_namespace),
        f'get secrets "db-password" in the namespace "{kubectl.namespace}"',
        f'create secrets in the namespace "{other_namespace}"',
    )
    assert kubectl.in_namespace(other_namespace).get("secret", "loot") is None

    requester.allow(kubectl.namespace or "", "get", "secrets")
    message = refused(
        requester, steal(other_namespace), f'create secrets in the namespace "{other_namespace}"'
    )
    assert "cannot get secrets" not in message  # only what is still missing

    requester.allow(other_namespace, "create", "secrets")
    requester.kubectl.apply(steal(other_namespace))
    wait_for("steal to be Created", lambda: state_of(kubectl, "steal") == "Created")
    loot = kubectl.in_namespace(other_namespace).get("secret", "loot")
    assert loot["data"]["password"] == "aHVudGVyMg=="


def state_of(kubectl: Kubectl, name: str) -> str | None:
    obj = kubectl.get("cloneobject", name) or {}
    return (obj.get("status") or {}).get("state")


def test_a_configmap_is_not_written_where_the_requester_may_not_create(
    requester: Requester, kubectl: Kubectl, other_namespace: str, operator: OperatorProcess
) -> None:
    kubectl("create", "configmap", "settings", "--from-literal=mode=fast")
    requester.allow(kubectl.namespace or "", "get", "configmaps")
    manifest = clone_object("copy", "ConfigMap", "settings", namespace=other_namespace)
    refused(requester, manifest, f'create configmaps in the namespace "{other_namespace}"')
    assert (
        kubectl.in_namespace(other_namespace).items("configmap", "-l", "cloning.dev/clone-object")
        == []
    )

    requester.allow(other_namespace, "create", "configmaps")
    requester.kubectl.apply(manifest)
    wait_for("copy to be Created", lambda: state_of(kubectl, "copy") == "Created")


def test_a_volume_is_cloned_only_by_who_may_read_the_source_claim(
    requester: Requester, kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
    )
    requester.allow(kubectl.namespace or "", "create", "persistentvolumeclaims")
    manifest = clone_object("volume", "PersistentVolumeClaim", "data")
    refused(
        requester,
        manifest,
        f'get persistentvolumeclaims "data" in the namespace "{kubectl.namespace}"',
    )
    assert [c["metadata"]["name"] for c in kubectl.items("pvc")] == ["data"]

    requester.allow(kubectl.namespace or "", "get", "persistentvolumeclaims")
    requester.kubectl.apply(manifest)
    wait_for("volume to be Created", lambda: state_of(kubectl, "volume") == "Created", timeout=90)


def test_a_cluster_is_cloned_only_by_who_may_create_statefulsets(
    requester: Requester, kubectl: Kubectl, operator: OperatorProcess
) -> None:
    source_cluster(kubectl, "db", replicas=1)
    home = kubectl.namespace or ""
    requester.allow(home, "get", "statefulsets.apps")
    requester.allow(home, "create", "services")
    requester.allow(home, "create", "persistentvolumeclaims")
    requester.allow(home, "get,create", "configmaps")
    requester.allow(home, "get,create", "secrets")
    manifest = operation("db-clone", "db")
    refused(requester, manifest, f'create statefulsets.apps in the namespace "{home}"')
    assert [s["metadata"]["name"] for s in kubectl.items("statefulset")] == ["db"]

    requester.allow(home, "create", "statefulsets.apps")
    requester.kubectl.apply(manifest)
    assert wait_phase(kubectl, "db-clone", {"Succeeded", "Failed"})["phase"] == "Succeeded"


def test_a_cluster_clone_never_copies_a_secret_its_requester_cannot_read(
    requester: Requester, kubectl: Kubectl, operator: OperatorProcess
) -> None:
    """A clone gets its own copies of the Secrets its source mounts: the attacker, who may
    create StatefulSets and CloningOperations but not read Secrets, must not get one."""
    home = kubectl.namespace or ""
    secret_source(kubectl)
    service, sts = statefulset("vault", replicas=1)
    sts["spec"]["template"]["spec"]["volumes"] = [
        {"name": "pw", "secret": {"secretName": "db-password"}}
    ]
    kubectl.apply([service, sts])
    wait_for("source vault ready", lambda: ready_replicas(kubectl, "vault") == 1, timeout=90)
    for resource in ("statefulsets.apps", "services", "persistentvolumeclaims", "configmaps"):
        requester.allow(home, "get,create", resource)
    requester.allow(home, "create", "secrets")
    assert not requester.can_i("get", "secrets", home)
    manifest = operation("heist", "vault", targetName="heist")
    refused(
        requester,
        manifest,
        f'get secrets in the namespace "{home}"',
        f'cloning a cluster needs: get statefulsets.apps "vault" in the namespace "{home}"',
    )
    assert kubectl.items("secrets", "-l", "cloning.dev/cluster") == []
    assert kubectl.get("statefulset", "heist") is None

    requester.allow(home, "get", "secrets")
    requester.kubectl.apply(manifest)
    assert wait_phase(kubectl, "heist", {"Succeeded", "Failed"})["phase"] == "Succeeded"
    copy = kubectl.get("secret", "heist-db-password")
    assert copy["data"]["password"] == "aHVudGVyMg=="
    assert kubectl.get("statefulset", "heist")["spec"]["template"]["spec"]["volumes"] == [
        {"name": "pw", "secret": {"secretName": "heist-db-password", "defaultMode": 420}}
    ]


def test_refusals_hold_with_the_operator_and_its_webhook_down(
    webhook: OperatorProcess,
    requester: Requester,
    kubectl: Kubectl,
    other_namespace: str,
) -> None:
    webhook.stop()  # its webhook configurations stay registered, failing open
    home = kubectl.namespace or ""
    secret_source(kubectl)
    source_cluster(kubectl, "db", replicas=1)
    requester.allow(other_namespace, "get", "secrets")
    refused(
        requester, steal(other_namespace), f'get secrets "db-password" in the namespace "{home}"'
    )
    refused(
        requester,
        clone_object("copy", "ConfigMap", "absent", namespace=other_namespace),
        f'get configmaps "absent" in the namespace "{home}"',
        f'cloning a ConfigMap needs: get configmaps "absent" in the namespace "{home}", '
        f'create configmaps in the namespace "{other_namespace}"',
    )
    refused(
        requester,
        clone_object("volume", "PersistentVolumeClaim", "data-db-0"),
        f'get persistentvolumeclaims "data-db-0" in the namespace "{home}"',
    )
    refused(
        requester,
        operation("db-clone", "db"),
        f'get statefulsets.apps "db" in the namespace "{home}"',
        f'create statefulsets.apps in the namespace "{home}"',
    )
    assert kubectl.in_namespace(other_namespace).get("secret", "loot") is None
    assert [s["metadata"]["name"] for s in kubectl.items("statefulset")] == ["db"]


def test_the_requester_is_recorded_and_cannot_be_forged(
    webhook: OperatorProcess,
    requester: Requester,
    kubectl: Kubectl,
) -> None:
    home = kubectl.namespace or ""
    kubectl("create", "configmap", "settings", "--from-literal=mode=fast")
    requester.allow(home, "get", "configmaps")
    requester.allow(home, "create", "configmaps")

    # Webhook up: whatever the creator writes, the record is the API server's user name.
    forged = clone_object("forged", "ConfigMap", "settings")
    forged["metadata"]["annotations"] = {REQUESTED_BY: "system:admin"}
    requester.kubectl.apply(forged)
    recorded = kubectl.get("cloneobject", "forged")["metadata"]["annotations"][REQUESTED_BY]
    assert recorded == requester.username

    rewrite = kubectl(
        "annotate", "cloneobject", "forged", f"{REQUESTED_BY}=someone-else", "--overwrite",
        check=False,
    )  # fmt: skip
    assert rewrite.returncode != 0
    assert "records who created this resource" in rewrite.stderr
    removal = kubectl("annotate", "cloneobject", "forged", f"{REQUESTED_BY}-", check=False)
    assert "records who created this resource" in removal.stderr

    # Webhook down: nothing is recorded, and a forged record is refused by the policy.
    webhook.stop()
    forged["metadata"]["name"] = "forged-while-down"
    result = requester.kubectl.apply(forged, check=False)
    assert f"{REQUESTED_BY}] must be omitted or be your own user name" in result.stderr
    assert kubectl.get("cloneobject", "forged-while-down") is None
    requester.kubectl.apply(clone_object("unrecorded", "ConfigMap", "settings"))
    unrecorded = kubectl.get("cloneobject", "unrecorded")["metadata"]
    assert REQUESTED_BY not in (unrecorded.get("annotations") or {})
    late = kubectl("annotate", "cloneobject", "unrecorded", f"{REQUESTED_BY}=x", check=False)
    assert "records who created this resource" in late.stderr  # cannot be added later


MAY_CREATE = "cloning.dev/requester-may-create"


def test_what_auto_may_use_is_asked_with_groups_and_cannot_be_forged(
    webhook: OperatorProcess,
    requester: Requester,
    kubectl: Kubectl,
) -> None:
    """`Auto` picks a snapshot (or a Transfer) only for a requester who may create what it
    makes: asked at admission with the requester's groups (a right held only through a
    group counts), and checked by the policy's authorizer (a claim cannot be forged)."""
    home = kubectl.namespace or ""
    kubectl("create", "configmap", "settings", "--from-literal=mode=fast")
    requester.allow(home, "get", "configmaps")
    requester.allow(home, "create", "configmaps")
    kubectl("create", "role", "snapshots", "--verb=create",
            "--resource=volumesnapshots.snapshot.storage.k8s.io")  # fmt: skip
    kubectl("create", "rolebinding", "snapshots", "--role=snapshots",
            f"--group=system:serviceaccounts:{home}")  # fmt: skip

    requester.kubectl.apply(clone_object("grouped", "ConfigMap", "settings"))
    annotations = kubectl.get("cloneobject", "grouped")["metadata"]["annotations"]
    assert annotations[MAY_CREATE] == "volumesnapshots"  # its group's right, not pods

    webhook.stop()
    forged = clone_object("forged-claim", "ConfigMap", "settings")
    forged["metadata"]["annotations"] = {MAY_CREATE: "volumesnapshots,pods"}
    result = requester.kubectl.apply(forged, check=False)
    assert f"{MAY_CREATE}] must be omitted or list only what you may create" in result.stderr
    assert kubectl.get("cloneobject", "forged-claim") is None
    late = kubectl("annotate", "cloneobject", "grouped", f"{MAY_CREATE}=pods", "--overwrite",
                   check=False)  # fmt: skip
    assert "records what the creator could create" in late.stderr
