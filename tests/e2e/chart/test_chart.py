"""The Helm chart on the real local cluster: lint, install, upgrade, test, uninstall, RBAC.

Real `helm`, real `kubectl`, a real kube-apiserver with RBAC on. kwok makes any
pod Running/Ready without pulling its image, so the operator Deployment becomes
available with any `image.tag`; the operator *process* is exercised separately
(test_operator_with_sa_token.py), with the chart's ServiceAccount token.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.chart.helm import CHART, ROOT, Helm, Release, can_i
from tests.e2e.kube import Kubectl, wait_for

pytestmark = pytest.mark.e2e


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def env_of(deployment: dict[str, Any]) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    # The API server drops `value: ""`; a value from a Secret is named by its reference.
    return {
        e["name"]: e.get("value", "")
        if "valueFrom" not in e
        else f"secret:{e['valueFrom']['secretKeyRef']['name']}/{e['valueFrom']['secretKeyRef']['key']}"
        for e in container["env"]
    }


# --- static: lint, schema, CRDs ------------------------------------------------


def test_helm_lint_passes(helm: Helm) -> None:
    result = helm("lint", "--strict", str(CHART))
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(
    ("flag", "value", "complaint"),
    [
        ("--set", "operater.logFormat=json", "additional properties 'operater' not allowed"),
        ("--set", "operator.logFormt=json", "additional properties 'logFormt' not allowed"),
        ("--set", "operator.logFormat=yaml", "logFormat"),
        ("--set", "operator.maxInProgress=0", "maxInProgress"),
        ("--set", "operator.maxInProgressPerNamespace=0", "maxInProgressPerNamespace"),
        ("--set", "operator.maxTimeoutSeconds=86401", "maxTimeoutSeconds"),
        ("--set-json", 'watchNamespaces=["Not_A_Namespace"]', "watchNamespaces"),
    ],
)
def test_schema_rejects_typos_and_bad_values(
    helm: Helm, flag: str, value: str, complaint: str
) -> None:
    result = helm("template", "x", str(CHART), flag, value, check=False)
    assert result.returncode != 0
    assert complaint in result.stderr


def test_every_value_is_documented() -> None:
    """Each key in values.yaml has a comment right above it, and the schema knows it."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    undocumented = []
    # (indent, documented?) of the keys enclosing the current line.
    ancestors: list[tuple[int, bool]] = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.startswith("- "):
            continue
        indent = len(line) - len(stripped)
        while ancestors and ancestors[-1][0] >= indent:
            ancestors.pop()
        documented = lines[i - 1].strip().startswith("#")
        # A block value documented as a whole (e.g. `resources`) covers its children.
        if not documented and not stripped.endswith(":") and not any(d for _, d in ancestors):
            undocumented.append(stripped.split(":", 1)[0])
        ancestors.append((indent, documented))
    assert undocumented == []

    def walk(vals: dict[str, Any], node: dict[str, Any], path: str) -> None:
        assert node.get("additionalProperties") is False, f"{path or '.'} allows unknown keys"
        for key, value in vals.items():
            assert key in node["properties"], f"{path}.{key} missing from the schema"
            child = node["properties"][key]
            if isinstance(value, dict) and child.get("properties"):
                walk(value, child, f"{path}.{key}")

    walk(values, schema, "")


def test_chart_crds_are_the_generated_ones(helm: Helm) -> None:
    check = subprocess.run(
        [str(ROOT / "hack" / "sync-chart-crds.sh"), "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    shipped = (
        "CustomResourceDefinition",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    )
    rendered = {
        (d["kind"], d["metadata"]["name"]): d
        for kind in shipped
        for d in by_kind(helm.template(), kind)
        # The release's own policy on webhook configurations is a template, not generated.
        if not d["metadata"]["name"].endswith("-webhook-configurations")
    }
    generated = {
        (d["kind"], d["metadata"]["name"]): d
        for f in sorted((ROOT / "crds").glob("*.yaml"))
        for d in yaml.safe_load_all(f.read_text())
        if d
    }
    resources = ("cloningoperations.cloning.dev", "cloneobjects.cloning.dev")
    assert (
        set(rendered)
        == set(generated)
        == {("CustomResourceDefinition", name) for name in resources}
        | {
            (kind, f"{name}-requester")
            for name in resources
            for kind in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
        }
    )
    for key, document in rendered.items():
        assert document["spec"] == generated[key]["spec"]
        assert document["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    without = helm.template("--set", "crds.enabled=false")
    for kind in shipped:
        assert [d["metadata"]["name"] for d in by_kind(without, kind)] == (
            [] if kind == "CustomResourceDefinition" else ["clone-operator-webhook-configurations"]
        )


def test_rendered_deployment_is_secure_by_default(helm: Helm) -> None:
    (deployment,) = by_kind(helm.template(), "Deployment")
    spec = deployment["spec"]
    # Two replicas, one leader: a rolling update never leaves the webhook unserved.
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    anti = spec["template"]["spec"]["affinity"]["podAntiAffinity"]
    [preferred] = anti["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    (budget,) = by_kind(helm.template(), "PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1
    single = by_kind(
        helm.template("--set", "replicaCount=1", "--set", "leaderElection.enabled=false"),
        "Deployment",
    )[0]["spec"]
    assert (single["replicas"], single["strategy"]) == (1, {"type": "Recreate"})
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["args"] == ["run"]
    sc = container["securityContext"]
    assert sc["runAsUser"] == 65532
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["resources"]["limits"]
    assert container["resources"]["requests"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert env_of(deployment) == {
        "CLONE_OPERATOR_REGION_ALIASES": "{}",
        "CLONE_OPERATOR_ALLOWED_REGIONS": "[]",
        "CLONE_OPERATOR_MAX_IN_PROGRESS": "10",
        "CLONE_OPERATOR_MAX_TIMEOUT_SECONDS": "21600",
        "CLONE_OPERATOR_UNSCHEDULABLE_GRACE_SECONDS": "60",
        "CLONE_OPERATOR_CLUSTER_DOMAIN": "cluster.local",
        "CLONE_OPERATOR_MOVER_IMAGE": "ghcr.io/clone-operator/clone-operator-mover:0.1.0",
        "CLONE_OPERATOR_MOVER_BANDWIDTH_KIB": "0",
        "CLONE_OPERATOR_TRANSFER_STALL_SECONDS": "300",
        "CLONE_OPERATOR_NAMESPACES": "[]",
        "CLONE_OPERATOR_LEADER_ELECTION": "true",
        "CLONE_OPERATOR_LEADER_ELECTION_LEASE": deployment["metadata"]["name"],
        "CLONE_OPERATOR_LEADER_ELECTION_NAMESPACE": deployment["metadata"]["namespace"],
        "CLONE_OPERATOR_LOG_FORMAT": "text",
        "CLONE_OPERATOR_HEALTH_PORT": "8080",
        "CLONE_OPERATOR_METRICS_PORT": "8081",
        "CLONE_OPERATOR_SMTP_HOST": "",
        "CLONE_OPERATOR_SMTP_PORT": "587",
        "CLONE_OPERATOR_SMTP_SECURITY": "starttls",
        "CLONE_OPERATOR_SMTP_FROM": "clone-operator@localhost",
        "CLONE_OPERATOR_SMTP_MAX_ATTEMPTS": "8",
        "CLONE_OPERATOR_WEBHOOK_MODE": "service",
        "CLONE_OPERATOR_WEBHOOK_PORT": "9443",
        "CLONE_OPERATOR_WEBHOOK_HOST": f"{deployment['metadata']['name']}-webhook.{deployment['metadata']['namespace']}.svc",
        "CLONE_OPERATOR_WEBHOOK_CERT_SECRET": f"{deployment['metadata']['name']}-webhook-cert",
    }


def test_operator_settings_parse_the_rendered_env(
    helm: Helm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The env the chart renders is what the operator's Settings actually accept."""
    from clone_operator.settings import Settings

    (deployment,) = by_kind(
        helm.template(
            "--set-json",
            'operator.regionAliases={"oregon": "us-west-2"}',
            "--set-json",
            'operator.allowedRegions=["oregon", "us-east-1"]',
            "--set-json",
            'watchNamespaces=["team-a", "team-b"]',
            "--set",
            "operator.maxInProgress=3",
            "--set",
            "operator.maxInProgressPerNamespace=2",
            "--set",
            "operator.maxTimeoutSeconds=3600",
            "--set",
            "operator.logFormat=json",
            "--set",
            "operator.healthPort=9090",
        ),
        "Deployment",
    )
    for name, value in env_of(deployment).items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.region_aliases == {"oregon": "us-west-2"}
    assert settings.allowed_regions == ["oregon", "us-east-1"]
    assert settings.namespaces == ["team-a", "team-b"]
    assert settings.max_in_progress == 3
    assert settings.namespace_share == 2
    assert settings.max_timeout_seconds == 3600
    assert settings.log_format == "json"
    assert settings.health_port == 9090


def test_extra_env_reaches_every_other_setting(helm: Helm, monkeypatch: pytest.MonkeyPatch) -> None:
    """A setting without a value of its own is reachable through `extraEnv`."""
    from clone_operator.settings import Settings

    (deployment,) = by_kind(
        helm.template(
            "--set-json",
            'extraEnv=[{"name": "CLONE_OPERATOR_OBJECT_TIMEOUT_SECONDS", "value": "3600"}]',
        ),
        "Deployment",
    )
    env = env_of(deployment)
    assert env["CLONE_OPERATOR_OBJECT_TIMEOUT_SECONDS"] == "3600"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Settings().object_timeout_seconds == 3600


def test_the_values_table_is_generated_from_values_yaml() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "chart-values.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout


# --- install, test, upgrade, uninstall ------------------------------------------


def test_install_helm_test_upgrade_uninstall(
    release: Release, kubectl: Kubectl, namespace: str
) -> None:
    # CRDs stay out of this release: the shared session applies them itself.
    installed = release.install(**{"crds.enabled": "false"})
    assert "STATUS: deployed" in installed.stdout
    assert "kubectl get cloning" in installed.stdout  # NOTES.txt says what to do next

    deployment = kubectl.get("deployment", release.fullname)
    assert deployment["status"]["availableReplicas"] == 2
    env = env_of(deployment)
    assert (
        env["CLONE_OPERATOR_LEADER_ELECTION_NAMESPACE"],
        env["CLONE_OPERATOR_LEADER_ELECTION_LEASE"],
    ) == (
        namespace,
        release.fullname,
    )
    assert env_of(deployment)["CLONE_OPERATOR_LOG_FORMAT"] == "text"
    assert kubectl.get("serviceaccount", release.fullname) is not None

    # The Service selects exactly the operator's pods (both replicas), on the health and
    # metrics ports.
    pods = kubectl.items(
        "pods",
        "-l",
        f"app.kubernetes.io/instance={release.name},app.kubernetes.io/name=clone-operator",
    )
    assert len(pods) == 2

    def endpoints() -> list[str] | None:
        slices = kubectl.items(
            "endpointslices", "-l", f"kubernetes.io/service-name={release.fullname}"
        )
        addresses = [
            ep["targetRef"]["name"]
            for s in slices
            for ep in s.get("endpoints") or []
            if ep.get("conditions", {}).get("ready")
        ]
        ports = [p["port"] for s in slices for p in s.get("ports") or []]
        return addresses if addresses and sorted(ports) == [8080, 8081] else None

    assert sorted(wait_for("the health Service's endpoints", endpoints, timeout=60)) == sorted(
        p["metadata"]["name"] for p in pods
    )

    # helm test: a Job calling /healthz through that Service. kwok completes
    # Job pods without running them, so here this proves the hook objects are
    # valid and admitted and that helm judges them; on kind it really calls.
    tested = release.helm("test", release.name, "--namespace", namespace, "--timeout", "90s")
    assert "Phase:          Succeeded" in tested.stdout

    upgraded = release.upgrade(**{"operator.logFormat": "json", "operator.maxInProgress": "7"})
    assert "STATUS: deployed" in upgraded.stdout
    env = env_of(kubectl.get("deployment", release.fullname))
    assert env["CLONE_OPERATOR_LOG_FORMAT"] == "json"
    assert env["CLONE_OPERATOR_MAX_IN_PROGRESS"] == "7"
    history = release.helm("history", release.name, "--namespace", namespace, "-o", "json")
    assert [h["revision"] for h in json.loads(history.stdout)] == [1, 2]

    release.uninstall()
    assert kubectl.get("deployment", release.fullname) is None
    assert kubectl.get("serviceaccount", release.fullname) is None


def test_uninstall_keeps_crds_and_user_resources(
    release: Release, admin: Kubectl, kubectl: Kubectl, namespace: str, crds: None
) -> None:
    names = ["cloningoperations.cloning.dev", "cloneobjects.cloning.dev"]
    policies = [f"{name}-requester" for name in names]
    shipped = [("crd", n) for n in names] + [
        (kind, p)
        for p in policies
        for kind in ("validatingadmissionpolicy", "validatingadmissionpolicybinding")
    ]
    # CRDs and policies applied with kubectl (the session's `crds` fixture) are
    # adopted the way Helm documents: its ownership label and annotations.
    for kind, name in shipped:
        admin("label", kind, name, "app.kubernetes.io/managed-by=Helm", "--overwrite")
        admin(
            "annotate",
            kind,
            name,
            f"meta.helm.sh/release-name={release.name}",
            f"meta.helm.sh/release-namespace={namespace}",
            "--overwrite",
        )
    try:
        release.install()
        assert {
            d["metadata"]["name"] for d in by_kind(release.manifest(), "CustomResourceDefinition")
        } == set(names)
        assert {
            d["metadata"]["name"] for d in by_kind(release.manifest(), "ValidatingAdmissionPolicy")
        } == {*policies, f"{release.fullname}-webhook-configurations"}
        for kind, name in shipped:
            annotations = admin.get(kind, name)["metadata"]["annotations"]
            assert annotations["helm.sh/resource-policy"] == "keep"
        op = {
            "apiVersion": "cloning.dev/v1alpha1",
            "kind": "CloningOperation",
            "metadata": {"name": "users-op"},
            "spec": {"sourceCluster": "no-such-source"},
        }
        kubectl.apply(op)
        uid = kubectl.get("cloningoperation", "users-op")["metadata"]["uid"]

        uninstalled = release.helm("uninstall", release.name, "--namespace", namespace, "--wait")
        release.installed = False
        assert "kept due to the resource policy" in uninstalled.stdout + uninstalled.stderr
        for kind, name in shipped:
            assert admin.get(kind, name) is not None
        kept = kubectl.get("cloningoperation", "users-op")
        assert kept is not None
        assert kept["metadata"]["uid"] == uid
    finally:
        # Whatever happened, leave the session's CRDs in place for other tests.
        admin("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))


# --- RBAC: sufficient and not excessive ------------------------------------------

# (verb, resource) the operator must be able to do in a watched namespace.
MUST = [
    ("get", "cloningoperations.cloning.dev"),
    ("watch", "cloningoperations.cloning.dev"),
    ("patch", "cloningoperations.cloning.dev"),
    ("patch", "cloningoperations.cloning.dev/status"),
    ("patch", "cloneobjects.cloning.dev/status"),
    ("list", "cloneobjects.cloning.dev"),
    ("create", "statefulsets.apps"),
    ("delete", "statefulsets.apps"),
    ("create", "persistentvolumeclaims"),
    ("create", "services"),
    ("create", "configmaps"),
    ("create", "secrets"),
    ("watch", "pods"),
    ("create", "pods"),  # a Transfer's movers, admitted with the requester's create pods
    ("delete", "pods"),
    ("get", "pods/log"),  # their progress
    ("create", "events"),
    ("create", "events.events.k8s.io"),
    ("create", "leases.coordination.k8s.io"),
    ("delete", "leases.coordination.k8s.io"),
]
# ... and must never be able to do, anywhere.
MUST_NOT = [
    ("delete", "cloningoperations.cloning.dev"),
    ("create", "cloningoperations.cloning.dev"),
    ("update", "statefulsets.apps"),
    ("update", "cloningoperations.cloning.dev"),  # patched, never replaced
    ("update", "cloneobjects.cloning.dev/status"),
    ("update", "pods"),
    ("patch", "pods"),
    ("update", "leases.coordination.k8s.io"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("create", "deployments.apps"),
    ("delete", "persistentvolumes"),
    # Read only by name, or listed by label: never watched (nor leases listed).
    ("watch", "secrets"),
    ("watch", "configmaps"),
    ("watch", "services"),
    ("list", "leases.coordination.k8s.io"),
]
CLUSTER_MUST_NOT = [
    ("delete", "nodes"),
    ("patch", "nodes"),
    ("create", "clusterroles.rbac.authorization.k8s.io"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "namespaces"),
    ("delete", "namespaces"),
    ("list", "namespaces"),
    ("get", "nodes"),  # watched for their regions, never read one by one
    # The webhook configuration it manages may be patched; any other may not.
    ("patch", "validatingwebhookconfigurations.admissionregistration.k8s.io/someone-elses"),
    ("delete", "validatingwebhookconfigurations.admissionregistration.k8s.io"),
    ("create", "certificatesigningrequests.certificates.k8s.io"),
]


def sa_name(release: Release) -> str:
    return f"system:serviceaccount:{release.namespace}:{release.fullname}"


def test_clusterwide_rbac_is_sufficient_and_not_excessive(
    release: Release, admin: Kubectl, other_namespace: str
) -> None:
    release.install(**{"crds.enabled": "false"})
    sa = sa_name(release)
    for ns in (release.namespace, other_namespace):
        missing = [(v, r) for v, r in MUST if not can_i(admin, sa, v, r, ns)]
        assert missing == [], f"in {ns}"
    assert can_i(admin, sa, "list", "nodes")
    assert can_i(admin, sa, "watch", "nodes")
    assert can_i(admin, sa, "watch", "customresourcedefinitions.apiextensions.k8s.io")
    assert can_i(admin, sa, "get", "namespaces", other_namespace)
    granted = [(v, r) for v, r in MUST_NOT if can_i(admin, sa, v, r, other_namespace)]
    granted += [(v, r) for v, r in CLUSTER_MUST_NOT if can_i(admin, sa, v, r)]
    assert granted == []
    # The whole rule set, as the API server resolves it, is exactly the chart's.
    listing = admin("auth", "can-i", "--list", f"--as={sa}", "-n", other_namespace).stdout
    assert "*" not in {line.split()[0] for line in listing.splitlines()[1:] if line.strip()}


def test_namespaced_rbac_acts_only_in_listed_namespaces(
    release: Release, admin: Kubectl, other_namespace: str
) -> None:
    watched = release.namespace
    release.install(**{"crds.enabled": "false", "watchNamespaces": json.dumps([watched])})
    sa = sa_name(release)
    kinds = {d["kind"] for d in release.manifest()}
    assert {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"} <= kinds
    env = env_of(admin.in_namespace(watched).get("deployment", release.fullname))
    assert json.loads(env["CLONE_OPERATOR_NAMESPACES"]) == [watched]

    missing = [(v, r) for v, r in MUST if not can_i(admin, sa, v, r, watched)]
    assert missing == []
    for ns in (other_namespace, "kube-system", "default"):
        leaked = [(v, r) for v, r in MUST if can_i(admin, sa, v, r, ns)]
        assert leaked == [], f"in {ns}"
    assert not can_i(admin, sa, "get", "secrets", "kube-system")
    assert not can_i(admin, sa, "list", "secrets")  # across all namespaces
    assert not can_i(admin, sa, "list", "cloningoperations.cloning.dev")  # across all namespaces
    # The cluster-scoped reads stay: node regions and the CRDs kopf scans.
    assert can_i(admin, sa, "list", "nodes")
    assert can_i(admin, sa, "watch", "nodes")
    assert can_i(admin, sa, "list", "customresourcedefinitions.apiextensions.k8s.io")
    assert can_i(admin, sa, "get", "namespaces", watched)
    assert not can_i(admin, sa, "get", "namespaces", other_namespace)
    # kopf lists/watches Namespace objects when given a namespace list.
    assert can_i(admin, sa, "watch", "namespaces")
    cluster_must_not = [vr for vr in CLUSTER_MUST_NOT if vr != ("list", "namespaces")]
    granted = [(v, r) for v, r in cluster_must_not if can_i(admin, sa, v, r)]
    assert granted == []


def test_namespaced_install_into_a_missing_namespace_fails_clearly(
    release: Release,
) -> None:
    missing = f"absent-{uuid.uuid4().hex[:6]}"
    with pytest.raises(AssertionError, match=f'namespaces "{missing}" not found'):
        release.install(**{"crds.enabled": "false", "watchNamespaces": json.dumps([missing])})


def test_checkov_passes_on_the_rendered_chart(helm: Helm, tmp_path: Path) -> None:
    """The scanner `make chart-lint` runs is clean, and catches a weakened pod."""
    checkov = ROOT / ".venv" / "bin" / "checkov"
    if not checkov.exists():
        pytest.fail("checkov is not installed: `.venv/bin/pip install -e '.[dev]'`")
    good = tmp_path / "good"
    good.mkdir()
    helm(
        "template", "clone-operator", str(CHART), "-n", "clone-operator", "--output-dir", str(good)
    )
    config = str(ROOT / ".checkov.yaml")
    ok = subprocess.run(
        [str(checkov), "--config-file", config, "-d", str(good)], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stdout[-3000:]

    # The same render with the container's protections removed must fail.
    bad = tmp_path / "bad"
    bad.mkdir()
    docs = helm.template("-n", "clone-operator")
    (deployment,) = by_kind(docs, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"] = {"readOnlyRootFilesystem": False}
    (bad / "deployment.yaml").write_text(yaml.safe_dump(deployment))
    weak = subprocess.run(
        [str(checkov), "--config-file", config, "-d", str(bad)], capture_output=True, text=True
    )
    assert weak.returncode != 0
    assert "CKV_K8S_22" in weak.stdout  # read-only root filesystem
    assert "CKV_K8S_20" in weak.stdout  # allowPrivilegeEscalation


def test_user_roles_aggregate_into_edit_only_with_the_rights_policies(helm: Helm) -> None:
    """The cloner role can join `edit` because the policies bound every clone to
    its requester's own rights; without those policies it must stay apart."""

    def roles(*args: str) -> dict[str, dict[str, Any]]:
        docs = helm.template("-n", "clone-operator", *args)
        return {d["metadata"]["name"].rsplit("-", 1)[-1]: d for d in by_kind(docs, "ClusterRole")}

    with_policies = roles()
    assert {"ValidatingAdmissionPolicy"} <= {d["kind"] for d in helm.template("-n", "x")}
    cloner, viewer = with_policies["cloner"], with_policies["viewer"]
    assert cloner["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert viewer["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    [custom, status] = cloner["rules"]
    assert custom["resources"] == ["cloningoperations", "cloneobjects"]
    assert status["verbs"] == ["get"]  # status is the operator's to write
    assert all(r["apiGroups"] == ["cloning.dev"] for r in cloner["rules"] + viewer["rules"])

    without = roles("--set", "crds.enabled=false")
    for role in (without["cloner"], without["viewer"]):
        assert not any("aggregate-to" in key for key in role["metadata"]["labels"])
    assert "cloner" not in roles("--set", "rbac.userRoles=false")


def test_webhook_certificate_secret_rights_are_for_that_secret_only(helm: Helm) -> None:
    """Replicas share a self-signed certificate through one Secret: rights on that name only."""
    roles = {r["metadata"]["name"]: r for r in by_kind(helm.template(), "Role")}
    role = roles["clone-operator-webhook-cert"]
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["clone-operator-webhook-cert"],
            "verbs": ["get", "update"],
        },
    ]
    # With cert-manager issuing the certificate, neither the Secret's rights nor its name.
    with_cert_manager = helm.template("--set", "webhook.certManager.enabled=true")
    assert "clone-operator-webhook-cert" not in {
        r["metadata"]["name"] for r in by_kind(with_cert_manager, "Role")
    }
    (deployment,) = by_kind(with_cert_manager, "Deployment")
    assert "CLONE_OPERATOR_WEBHOOK_CERT_SECRET" not in env_of(deployment)


def test_the_webhook_port_can_be_narrowed_to_the_api_servers_addresses(helm: Helm) -> None:
    """`networkPolicy.webhookFrom` limits who reaches the webhook port (every peer by
    default); the local cluster enforces no NetworkPolicy, so it is checked as rendered."""

    def webhook_rule(*args: str) -> dict[str, Any]:
        policies = by_kind(helm.template(*args), "NetworkPolicy")
        [policy] = [p for p in policies if p["metadata"]["name"] == "clone-operator"]
        [rule] = [r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == "webhook"]
        return rule

    assert "from" not in webhook_rule()
    peers = [{"ipBlock": {"cidr": "10.0.0.0/24"}}]
    narrowed = webhook_rule("--set-json", f"networkPolicy.webhookFrom={json.dumps(peers)}")
    assert narrowed == {"ports": [{"port": "webhook", "protocol": "TCP"}], "from": peers}


def test_the_webhook_client_ca_is_passed_only_when_given(helm: Helm, tmp_path: Path) -> None:
    (deployment,) = by_kind(helm.template(), "Deployment")
    assert "CLONE_OPERATOR_WEBHOOK_CLIENT_CA" not in env_of(deployment)
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    (deployment,) = by_kind(helm.template("--set-file", f"webhook.clientCA={ca}"), "Deployment")
    assert env_of(deployment)["CLONE_OPERATOR_WEBHOOK_CLIENT_CA"] == ca.read_text()


def test_the_operator_may_create_no_other_webhook_configuration(
    release: Release, admin: Kubectl
) -> None:
    """RBAC cannot limit `create` by name; the chart's policy does: the operator's token
    may create its own webhook configurations, and refuses to register any other."""
    release.install(**{"crds.enabled": "false"})
    sa = sa_name(release)

    def create(kind: str, name: str) -> subprocess.CompletedProcess[str]:
        manifest = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
                    "metadata": {"name": name}, "webhooks": []}  # fmt: skip
        return admin("create", "--dry-run=server", f"--as={sa}", "-f", "-",
                     stdin=json.dumps(manifest), check=False)  # fmt: skip

    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        assert can_i(admin, sa, "create", f"{kind.lower()}s.admissionregistration.k8s.io")
        refused = wait_for(
            f"the policy to refuse another {kind}",
            lambda k=kind: (r := create(k, "anything-else")).returncode != 0 and r,
        )
        assert "may create only the webhook configurations named" in refused.stderr
        allowed = create(kind, "clone-operator.cloning.dev")
        assert allowed.returncode == 0, allowed.stderr
    # Anyone else (here the admin) is not this policy's concern.
    assert admin("create", "--dry-run=server", "-f", "-", check=False, stdin=json.dumps(
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
         "metadata": {"name": "anything-else"}, "webhooks": []})).returncode == 0  # fmt: skip
