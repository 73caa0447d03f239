"""The one way the engine writes on a requester's behalf.

Every create, patch and delete of a clone's objects, and every exec of a consistency
hook, goes through `Writes`, which
compares the object with what admission checked for the requester
(`reconcile.writes`) before anything is sent: a copy whose kind an override
changed, a name that is not the destination's, another namespace — all refused
with `OutsideAdmitted`, and the resource ends Failed with nothing written. A test
(tests/unit/test_write_funnel.py) proves that no other engine code writes a
clone's objects. (The operator's own objects — its resources' status, locks,
Events, leader election — are written directly.)
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass

from clone_operator.k8s.api import JSON, Kube
from clone_operator.kube.streams import Result
from clone_operator.reconcile import writes
from clone_operator.reconcile.writes import Admitted, OutsideAdmitted


@dataclass(frozen=True)
class Writes:
    """The engine's client for one resource's clone: reads as they are, writes checked."""

    kube: Kube
    admitted: tuple[Admitted, ...]

    def check(self, *objects: JSON) -> None:
        """Raise OutsideAdmitted for the first object the requester may not have made."""
        for obj in objects:
            why = writes.refusal(self.admitted, obj)
            if why is not None:
                raise OutsideAdmitted(why)

    async def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> JSON | None:
        return await self.kube.get(api_version, kind, namespace, name)

    async def create(self, obj: JSON, dry_run: bool = False) -> JSON:
        self.check(obj)
        return await self.kube.create(obj, dry_run=dry_run)

    async def merge_patch(self, obj: JSON, patch: JSON, subresource: str | None = None) -> JSON:
        self.check(obj)
        return await self.kube.merge_patch(obj, patch, subresource=subresource)

    async def json_patch(self, obj: JSON, operations: builtins.list[JSON]) -> JSON:
        self.check(obj)
        return await self.kube.json_patch(obj, operations)

    async def delete(self, obj: JSON, *, uid: str) -> bool:
        """Delete that very object (uid precondition), if admitted."""
        self.check(obj)
        return await self.kube.delete(obj, uid=uid)

    async def exec(
        self,
        namespace: str,
        pod: str,
        container: str | None,
        command: builtins.list[str],
        wait_seconds: float,
    ) -> Result:
        """Run a consistency hook in a pod, if admitted (the source's own pods, when the
        hooks were admitted with the requester's `create pods/exec`)."""
        self.check(writes.exec_target(namespace, pod))
        return await self.kube.exec(namespace, pod, container, command, wait_seconds)

    async def release_content(self, snapshot: JSON, content: JSON, patch: JSON) -> JSON:
        """Patch the (cluster-scoped) VolumeSnapshotContent bound to an admitted snapshot
        (`deletionPolicy: Delete`, so the storage's snapshot goes with ours): the content
        is not named from the destination, so it is admitted through its snapshot, and
        only when it points back at that very snapshot (name, namespace and uid)."""
        self.check(snapshot)
        ref = (content.get("spec") or {}).get("volumeSnapshotRef") or {}
        meta = snapshot["metadata"]
        if (
            (ref.get("namespace"), ref.get("name"), ref.get("uid"))
            != (
                meta.get("namespace"),
                meta.get("name"),
                meta.get("uid"),
            )
            or set(patch) != {"spec"}
            or set(patch["spec"]) != {"deletionPolicy"}
        ):
            raise OutsideAdmitted(
                f"VolumeSnapshotContent {content['metadata']['name']} is not bound to "
                f"{meta.get('namespace')}/{meta.get('name')}; nothing was written"
            )
        body = {
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshotContent",
            **content,
        }
        return await self.kube.merge_patch(body, patch)
