"""A requester as an attacker is: a ServiceAccount with a token-only kubeconfig (an
admin client certificate beside it would authenticate first), given roles one by one.
Used by the requester-rights and hostile-input e2e modules (fixture: `requester`)."""

from __future__ import annotations

from dataclasses import dataclass

from tests.e2e.kube import Kubectl, wait_for


@dataclass(frozen=True)
class Requester:
    """A ServiceAccount in `home`, its token-only kubectl, and the roles it is given."""

    name: str
    home: str
    admin: Kubectl
    kubectl: Kubectl

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.home}:{self.name}"

    def allow(self, namespace: str, verbs: str, resource: str) -> None:
        """Grant verbs (`get,create`) on one resource (`secrets`, `statefulsets.apps`)."""
        role = (
            f"{self.name}-{verbs.replace(',', '-')}-{resource.replace('.', '-').replace('/', '-')}"
        )
        admin = self.admin.in_namespace(namespace)
        admin("create", "role", role, f"--verb={verbs}", f"--resource={resource}")
        admin("create", "rolebinding", role, f"--role={role}",
              f"--serviceaccount={self.home}:{self.name}")  # fmt: skip
        wait_for(
            f"{self.name} to be allowed to {verbs} {resource} in {namespace}",
            lambda: all(self.can_i(v, resource, namespace) for v in verbs.split(",")),
        )

    def may_clone_a_cluster(self, snapshots: bool) -> None:
        """The rights a cluster clone needs in its home, and `create volumesnapshots` if
        `snapshots`."""
        self.allow(self.home, "get,create", "statefulsets.apps")
        for resource in ("services", "persistentvolumeclaims", "configmaps", "secrets"):
            self.allow(self.home, "get,create", resource)
        if snapshots:
            self.allow(self.home, "create", "volumesnapshots.snapshot.storage.k8s.io")

    def can_i(self, verb: str, resource: str, namespace: str) -> bool:
        kind, _, sub = resource.partition("/")  # `pods/exec`: a subresource
        asked = [kind, f"--subresource={sub}"] if sub else [resource]
        answer = self.kubectl("auth", "can-i", verb, *asked, "-n", namespace, check=False)
        return answer.stdout.strip() == "yes"
