"""ValidatingAdmissionPolicies: the requester's own RBAC decides what may be cloned.

The operator holds wide rights; a user who may create a CloneObject or a
CloningOperation must not gain them (no confused deputy). So creating one is
allowed only when its *creator* may read the source and create what the clone
makes, asked of the API server's authorizer about the requesting user. The
policies run inside the API server (`failurePolicy: Fail`): they hold when the
operator and its webhook are down, unlike the webhook, which fails open.

Spec is immutable after creation (the CRDs' CEL), so checking CREATE covers the
object's whole life. The same policies keep the requester record
(`cloning.dev/requested-by`, written by the operator's mutating webhook from the
API server's userInfo) unforgeable: on CREATE it may only name the requester,
and it never changes afterwards.

The rights are plain data here (`REQUIRED_RIGHTS`), rendered to CEL by
`policy()`, and written to crds/ with the CRDs by `make crds`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from clone_operator.api import cloneobjects, cloningoperations
from clone_operator.api.cloneobjects import SourceKind
from clone_operator.api.cloningoperations import CopyMethod
from clone_operator.api.common import GROUP, LABEL_PREFIX

REQUESTED_BY = f"{LABEL_PREFIX}requested-by"
REQUESTER_MAY_CREATE = f"{LABEL_PREFIX}requester-may-create"
"""What `Auto` may use on the requester's behalf, asked at admission with every group the
requester had (the mutating webhook's SubjectAccessReviews; a comma list of
AUTO_RIGHTS), and checked again by the policy's own authorizer: a claim the requester
cannot back is refused, so the annotation cannot be forged."""
AUTO_RIGHTS = {"volumesnapshots": "snapshot.storage.k8s.io", "pods": ""}
"""Resource → API group: what `Auto` may pick a method for (Snapshot, Transfer)."""
"""Annotation naming the user who created the resource (set at admission)."""


class Where(StrEnum):
    """Which object or namespace a permission is asked about."""

    SOURCE = "source"  # the named source object, in the resource's namespace
    NAMESPACE = "namespace"  # any name, in the resource's (the source's) namespace
    DESTINATION = "destination"  # any name, in the destination namespace


@dataclass(frozen=True)
class Right:
    """One permission the requester must hold, as `kubectl auth can-i` asks it."""

    verb: str
    group: str
    resource: str
    where: Where
    subresource: str = ""
    """E.g. `exec` of `pods` (RBAC's `pods/exec`)."""

    def can_i(self, namespace: str, name: str = "") -> str:
        """The equivalent `kubectl auth can-i` question (for docs and messages)."""
        qualified = f"{self.resource}.{self.group}" if self.group else self.resource
        target = f"{qualified}/{name}" if name else qualified
        sub = f" --subresource={self.subresource}" if self.subresource else ""
        return f"kubectl auth can-i {self.verb} {target}{sub} -n {namespace}"


def _read(kind: SourceKind) -> Right:
    group = kind.api_version.rpartition("/")[0]
    return Right("get", group, _RESOURCES[kind], Where.SOURCE)


def _create(group: str, resource: str) -> Right:
    return Right("create", group, resource, Where.DESTINATION)


_RESOURCES = {
    SourceKind.STATEFUL_SET: "statefulsets",
    SourceKind.PERSISTENT_VOLUME_CLAIM: "persistentvolumeclaims",
    SourceKind.CONFIG_MAP: "configmaps",
    SourceKind.SECRET: "secrets",
    SourceKind.SERVICE: "services",
}

# What cloning a whole cluster makes: its StatefulSet, governing Service and PVCs, and
# its own copies of the ConfigMaps and Secrets its pod template names. Which ones is
# only known from the source's template at run time, which a policy cannot read: so
# reading them is asked namespace-wide. (Whoever may create a StatefulSet there can
# already mount any of its Secrets in a pod; the policy says so instead of implying it.)
_CLUSTER_CREATES = (
    _create("apps", "statefulsets"),
    _create("", "services"),
    _create("", "persistentvolumeclaims"),
    Right("get", "", "configmaps", Where.NAMESPACE),
    Right("get", "", "secrets", Where.NAMESPACE),
    _create("", "configmaps"),
    _create("", "secrets"),
)


def _rights(kind: SourceKind) -> tuple[Right, ...]:
    if kind is SourceKind.STATEFUL_SET:
        return (_read(kind), *_CLUSTER_CREATES)
    return (_read(kind), _create(_read(kind).group, _RESOURCES[kind]))


REQUIRED_RIGHTS: dict[SourceKind, tuple[Right, ...]] = {kind: _rights(kind) for kind in SourceKind}
"""Per source kind: what the creator of a CloneObject (or, for StatefulSet, a
CloningOperation) must be allowed to do."""

SNAPSHOT_GROUP = "snapshot.storage.k8s.io"
GROUP_SNAPSHOT_GROUP = "groupsnapshot.storage.k8s.io"

METHOD_RIGHTS: dict[CopyMethod, tuple[Right, ...]] = {
    CopyMethod.SNAPSHOT: (_create(SNAPSHOT_GROUP, "volumesnapshots"),),
    CopyMethod.GROUP_SNAPSHOT: (_create(GROUP_SNAPSHOT_GROUP, "volumegroupsnapshots"),),
    CopyMethod.TRANSFER: (_create(SNAPSHOT_GROUP, "volumesnapshots"), _create("", "pods")),
}
"""What an explicit snapshot copy method needs besides its kind's rights: it makes
VolumeSnapshots (or one VolumeGroupSnapshot, whose member snapshots the
snapshot-controller makes); a `Transfer` also runs mover pods (its Services, key Secrets
and temporary PVCs are kinds a cluster clone needs already). `Auto` asks for nothing more than a VolumeClone: the
operator picks a snapshot for it only after asking the API server whether the
requester may create VolumeSnapshots (a SubjectAccessReview, engine.storage), and a
Transfer only after asking whether it may create those and pods."""


HOOK_RIGHTS: tuple[Right, ...] = (Right("create", "", "pods", Where.NAMESPACE, subresource="exec"),)
"""What `spec.consistency` (hooks run in the source's pods) needs: the requester must be
allowed to exec into the pods of the source's namespace, as the hooks do on its behalf.
With hooks, `Auto` copies only by snapshot: so it needs `create volumesnapshots` too."""


def _cel_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _cel_rights(rights: tuple[Right, ...], source_name: str) -> str:
    """A CEL list of permission maps; namespaces and names are CEL expressions."""
    items = []
    for right in rights:
        # string(…): CEL types a map literal by its values; a `dyn` beside string
        # literals (fields of `object`, variables) does not type-check otherwise.
        if right.where is Where.SOURCE:
            namespace, name = "string(request.namespace)", f"string({source_name})"
        elif right.where is Where.NAMESPACE:
            namespace, name = "string(request.namespace)", "''"
        else:
            namespace, name = "string(variables.destination)", "''"
        items.append(
            "{"
            f"'verb': {_cel_string(right.verb)}, 'group': {_cel_string(right.group)}, "
            f"'resource': {_cel_string(right.resource)}, "
            f"'subresource': {_cel_string(right.subresource)}, "
            f"'namespace': {namespace}, 'name': {name}"
            "}"
        )
    return "[\n  " + ",\n  ".join(items) + "\n]"


def _allowed(right: str) -> str:
    """CEL: may the requesting user do what the permission map `right` says?"""
    return (
        f"authorizer.group({right}.group).resource({right}.resource)"
        f".subresource({right}.subresource).namespace({right}.namespace).name({right}.name).check({right}.verb).allowed()"
    )


def _described(right: str) -> str:
    """CEL: 'get secrets "db" in the namespace "a"', as the API server words a 403."""
    return (
        f"{right}.verb + ' ' + {right}.resource"
        f" + ({right}.subresource == '' ? '' : '/' + {right}.subresource)"
        f" + ({right}.group == '' ? '' : '.' + {right}.group)"
        f" + ({right}.name == '' ? '' : ' \"' + {right}.name + '\"')"
        f" + ' in the namespace \"' + {right}.namespace + '\"'"
    )


def _rights_validations(purpose: str) -> list[dict[str, Any]]:
    """One validation per required permission, by position.

    The API server evaluates `messageExpression` without the authorizer (nor any
    variable that uses it), so a message cannot list what is missing; each
    validation checks one permission and its message names it, followed by the
    whole requirement (`variables.needs`, plain text). The API server reports the
    first missing permission.
    """
    most = (
        max(len(rights) for rights in REQUIRED_RIGHTS.values())
        + max(len(rights) for rights in METHOD_RIGHTS.values())
        + len(HOOK_RIGHTS)
        + len(METHOD_RIGHTS[CopyMethod.SNAPSHOT])  # Auto with hooks
    )
    return [
        {
            "expression": f"request.operation != 'CREATE' || size(variables.required) <= {i} ||\n"
            + _allowed(f"variables.required[{i}]"),
            "messageExpression": "'User \"' + request.userInfo.username + '\" cannot ' + "
            f"variables.needs[{i}]\n+ '; ' + {purpose} + ': ' + variables.needs.join(', ')",
            "reason": "Forbidden",
        }
        for i in range(most)
    ]


_RECORDED = f"object.metadata.?annotations[?{_cel_string(REQUESTED_BY)}]"
_RECORDED_BEFORE = f"oldObject.metadata.?annotations[?{_cel_string(REQUESTED_BY)}]"
_CLAIMED = f"object.metadata.?annotations[?{_cel_string(REQUESTER_MAY_CREATE)}]"
_CLAIMED_BEFORE = f"oldObject.metadata.?annotations[?{_cel_string(REQUESTER_MAY_CREATE)}]"
_AUTO_GROUP = " : ".join(
    [f"r == {_cel_string(r)} ? {_cel_string(g)}" for r, g in AUTO_RIGHTS.items()] + ["''"]
)
_REQUESTER_VALIDATIONS = [
    {
        "expression": f"request.operation != 'CREATE' || {_CLAIMED}.orValue('') == '' || "
        f"{_CLAIMED}.orValue('').split(',').all(r, r in "
        f"[{', '.join(_cel_string(r) for r in AUTO_RIGHTS)}] && "
        f"authorizer.group({_AUTO_GROUP}).resource(r).namespace(request.namespace)"
        ".check('create').allowed())",
        "messageExpression": f"'metadata.annotations[{REQUESTER_MAY_CREATE}] must be omitted or "
        f"list only what you may create in the namespace, of: {', '.join(AUTO_RIGHTS)}'",
        "reason": "Forbidden",
    },
    {
        "expression": f"request.operation != 'UPDATE' || "
        f"{_CLAIMED}.orValue('') == {_CLAIMED_BEFORE}.orValue('')",
        "message": f"metadata.annotations[{REQUESTER_MAY_CREATE}] records what the creator "
        "could create; it cannot be added, changed or removed",
        "reason": "Forbidden",
    },
    {
        "expression": f"request.operation != 'CREATE' || "
        f"{_RECORDED}.orValue(request.userInfo.username) == request.userInfo.username",
        "messageExpression": f"'metadata.annotations[{REQUESTED_BY}] must be omitted or be "
        "your own user name, \"' + request.userInfo.username + '\"'",
        "reason": "Forbidden",
    },
    {
        "expression": f"request.operation != 'UPDATE' || "
        f"{_RECORDED}.orValue('') == {_RECORDED_BEFORE}.orValue('')",
        "message": f"metadata.annotations[{REQUESTED_BY}] records who created this resource; "
        "it cannot be added, changed or removed",
        "reason": "Forbidden",
    },
]


@dataclass(frozen=True)
class PolicyDefinition:
    """One policy: which resource it guards and how its required rights are found."""

    plural: str
    kind: str
    destination: str
    """CEL: the namespace the clone is created in."""
    required: str
    """CEL: the list of permission maps the creator must hold."""
    purpose: str
    """CEL: what the request needs, introducing the list of permissions in a refusal."""

    @property
    def name(self) -> str:
        return f"{self.plural}.{GROUP}-requester"


def _with_method_rights(required: str, method: str, cluster: bool = True) -> str:
    """CEL: `required` plus what the copy method (`method`, a CEL string) needs (`cluster`:
    a CloningOperation's, whose methods include Transfer; a CloneObject refuses it)."""
    unnamed = "''"  # the rights of a copy method are asked in the destination namespace
    extra = " + ".join(
        f"({method} == {_cel_string(m.value)} ? {_cel_rights(rights, unnamed)} : [])"
        for m, rights in METHOD_RIGHTS.items()
        if cluster or not m.transfers
    )
    return f"{required} + {extra}"


def _with_hook_rights(required: str) -> str:
    """CEL: `required` plus, when a CloningOperation has hooks, `create pods/exec` (and, for
    `Auto`, which then copies by snapshot only, `create volumesnapshots`)."""
    unnamed = "''"
    auto_snapshot = _cel_rights(METHOD_RIGHTS[CopyMethod.SNAPSHOT], unnamed)
    return (
        f"{required} + (has(object.spec.consistency) ? {_cel_rights(HOOK_RIGHTS, unnamed)} : [])"
        f" + (has(object.spec.consistency) && object.spec.?copyMethod.orValue('Auto') == 'Auto'"
        f" ? {auto_snapshot} : [])"
    )


def _cloneobject_required() -> str:
    by_kind = ",\n".join(
        f"{_cel_string(kind.value)}: {_cel_rights(rights, 'object.spec.source.name')}"
        for kind, rights in REQUIRED_RIGHTS.items()
    )
    return _with_method_rights(
        "{\n" + by_kind + "\n}[object.spec.source.kind]",
        "object.spec.?options.?copyMethod.orValue('Auto')",
        cluster=False,
    )


POLICIES = [
    PolicyDefinition(
        plural=cloneobjects.PLURAL,
        kind=cloneobjects.KIND,
        destination="object.spec.?options.?namespace.orValue(request.namespace)",
        required=_cloneobject_required(),
        purpose="'cloning a ' + object.spec.source.kind + ' needs'",
    ),
    PolicyDefinition(
        plural=cloningoperations.PLURAL,
        kind=cloningoperations.KIND,
        destination="request.namespace",
        required=_with_hook_rights(
            _with_method_rights(
                _cel_rights(REQUIRED_RIGHTS[SourceKind.STATEFUL_SET], "object.spec.sourceCluster"),
                "object.spec.?copyMethod.orValue('Auto')",
            )
        ),
        purpose="'cloning a cluster needs'",
    ),
]


def _admission_object(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "clone-operator"}},
        "spec": spec,
    }


def policy(definition: PolicyDefinition) -> dict[str, Any]:
    """The ValidatingAdmissionPolicy of one resource, as a plain dict."""
    return _admission_object(
        "ValidatingAdmissionPolicy",
        definition.name,
        {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [GROUP],
                        "apiVersions": ["*"],
                        "operations": ["CREATE", "UPDATE"],
                        # The main resource only: the status subresource is the operator's.
                        "resources": [definition.plural],
                    }
                ]
            },
            "variables": [
                {"name": "destination", "expression": definition.destination},
                {"name": "required", "expression": definition.required},
                {"name": "needs", "expression": f"variables.required.map(p,\n  {_described('p')})"},
            ],
            "validations": [*_rights_validations(definition.purpose), *_REQUESTER_VALIDATIONS],
        },
    )


def binding(definition: PolicyDefinition) -> dict[str, Any]:
    """Binds the policy everywhere, denying (not just warning or auditing)."""
    return _admission_object(
        "ValidatingAdmissionPolicyBinding",
        definition.name,
        {"policyName": definition.name, "validationActions": ["Deny"]},
    )
