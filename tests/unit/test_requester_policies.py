"""The admission policies that make a clone subject to its requester's own RBAC."""

from __future__ import annotations

import yaml

from clone_operator.api import crds, policies
from clone_operator.api.cloneobjects import SourceKind
from clone_operator.api.policies import REQUIRED_RIGHTS, Right, Where


def test_every_cloneable_kind_needs_get_on_its_source_and_create_at_the_destination() -> None:
    assert set(REQUIRED_RIGHTS) == set(SourceKind)
    for kind, rights in REQUIRED_RIGHTS.items():
        [read] = [r for r in rights if r.where is Where.SOURCE]
        assert read.verb == "get"
        assert read.group == ("apps" if kind is SourceKind.STATEFUL_SET else "")
        creates = {r.resource for r in rights if r.where is Where.DESTINATION}
        assert {r.verb for r in rights if r.where is Where.DESTINATION} == {"create"}
        assert read.resource in creates  # a copy is of the source's own kind


def test_a_cluster_clone_needs_everything_the_clone_makes() -> None:
    creates = {
        (r.group, r.resource)
        for r in REQUIRED_RIGHTS[SourceKind.STATEFUL_SET]
        if r.where is Where.DESTINATION
    }
    assert creates == {
        ("apps", "statefulsets"),
        ("", "services"),
        ("", "persistentvolumeclaims"),
        ("", "configmaps"),
        ("", "secrets"),
    }


def test_a_cluster_clone_needs_to_read_the_config_it_copies() -> None:
    """The clone copies the ConfigMaps and Secrets its source's template names; which
    ones the policy cannot know, so it asks for reading any in the namespace."""
    reads = {
        (r.verb, r.resource, r.where)
        for r in REQUIRED_RIGHTS[SourceKind.STATEFUL_SET]
        if r.where is not Where.DESTINATION
    }
    assert reads == {
        ("get", "statefulsets", Where.SOURCE),
        ("get", "configmaps", Where.NAMESPACE),
        ("get", "secrets", Where.NAMESPACE),
    }
    [operation] = [p for p in policies.POLICIES if p.kind == "CloningOperation"]
    assert (
        "'resource': 'secrets', 'subresource': '', 'namespace': string(request.namespace), "
        "'name': ''" in operation.required
    )


def test_rights_read_as_kubectl_auth_can_i() -> None:
    get_sts = Right("get", "apps", "statefulsets", Where.SOURCE)
    assert get_sts.can_i("a", "db") == "kubectl auth can-i get statefulsets.apps/db -n a"
    create_secret = Right("create", "", "secrets", Where.DESTINATION)
    assert create_secret.can_i("b") == "kubectl auth can-i create secrets -n b"


def test_policies_fail_closed_deny_and_guard_only_the_main_resource() -> None:
    for definition in policies.POLICIES:
        policy = policies.policy(definition)["spec"]
        assert policy["failurePolicy"] == "Fail"
        [rule] = policy["matchConstraints"]["resourceRules"]
        assert rule["resources"] == [definition.plural]  # never the status subresource
        assert rule["operations"] == ["CREATE", "UPDATE"]
        assert {v["reason"] for v in policy["validations"]} == {"Forbidden"}
        binding = policies.binding(definition)["spec"]
        assert binding == {"policyName": definition.name, "validationActions": ["Deny"]}


def test_each_kind_is_listed_in_the_cloneobject_policy_with_its_source_name() -> None:
    [cloneobject] = [p for p in policies.POLICIES if p.kind == "CloneObject"]
    for kind in SourceKind:
        assert f"'{kind.value}': [" in cloneobject.required
    assert cloneobject.required.count("'name': string(object.spec.source.name)") == len(SourceKind)


def test_policies_are_written_beside_the_crds_as_readable_yaml() -> None:
    files = crds.rendered_files()
    for definition in policies.POLICIES:
        text = files[f"cloning.dev_{definition.plural}.policy.yaml"]
        assert yaml.safe_load(text) == policies.policy(definition)
        assert "expression: |-" in text  # multi-line CEL as a block, not a quoted line
        binding = files[f"cloning.dev_{definition.plural}.policy-binding.yaml"]
        assert yaml.safe_load(binding) == policies.binding(definition)


def test_hooks_need_the_right_to_exec_and_auto_then_the_right_to_snapshot() -> None:
    """A hook is an exec into the source's pods on the requester's behalf: the policy asks
    `create pods/exec` in the namespace when spec.consistency is set; Auto with hooks
    copies only by snapshot, so it asks `create volumesnapshots` too."""
    [exec_right] = policies.HOOK_RIGHTS
    assert (exec_right.verb, exec_right.resource, exec_right.subresource) == (
        "create",
        "pods",
        "exec",
    )
    assert exec_right.can_i("shop") == "kubectl auth can-i create pods --subresource=exec -n shop"
    [operation] = [p for p in policies.POLICIES if p.kind == "CloningOperation"]
    assert "has(object.spec.consistency) ? [" in operation.required
    assert "'resource': 'pods', 'subresource': 'exec'" in operation.required
    assert (
        "has(object.spec.consistency) && object.spec.?copyMethod.orValue('Auto') == 'Auto'"
        in operation.required
    )
    [clone_object] = [p for p in policies.POLICIES if p.kind == "CloneObject"]
    assert "pods" not in clone_object.required  # no hooks there
