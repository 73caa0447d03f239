"""A volume copy's progress in its owner's status: per volume (snapshot cut and ready,
restore size, Bound), the point in time, and the stage conditions `SnapshotsTaken`
and `VolumesReady`. Pure; the same for both front doors (a CloningOperation, and a
CloneObject of a StatefulSet or a PersistentVolumeClaim), whose statuses share these
fields.
"""

from __future__ import annotations

from typing import TypeVar

from clone_operator.api.cloneobjects import CloneObjectStatus
from clone_operator.api.cloningoperations import (
    TRANSFER_FIELDS,
    CloningOperationStatus,
    VolumeStatus,
)
from clone_operator.reconcile import transfer
from clone_operator.reconcile.conditions import Reason, set_condition

S = TypeVar("S", CloningOperationStatus, CloneObjectStatus)


def cut_progress(
    status: S,
    volumes: list[VolumeStatus],
    point_in_time: str | None,
    now: str,
    generation: int | None,
) -> S | None:
    """The status with a snapshot copy's per-volume progress, its point in time once
    every snapshot is cut, and the `SnapshotsTaken` condition; None when unchanged. A
    volume's `bound`, when known, is kept (the snapshot does not tell it)."""
    known = {v.name: v for v in status.volumes}
    volumes = [_kept(v, known.get(v.name)) for v in volumes]
    cut = bool(volumes) and all(v.cut_at for v in volumes)
    ready = cut and all(v.snapshot_ready for v in volumes)
    if volumes == status.volumes and point_in_time == status.point_in_time:
        return None
    message = (
        f"{sum(1 for v in volumes if v.cut_at)}/{len(volumes)} snapshots cut, "
        f"{sum(1 for v in volumes if v.snapshot_ready)}/{len(volumes)} ready"
    )
    conditions = set_condition(
        status.conditions,
        "SnapshotsTaken",
        ready,
        Reason.SNAPSHOTS_TAKEN.value if ready else "Cutting",
        message,
        now,
        generation,
    )
    return status.model_copy(
        update={
            "volumes": volumes,
            "point_in_time": point_in_time if cut else None,
            "conditions": conditions,
            "updated_at": now,
        }
    )


def _kept(new: VolumeStatus, old: VolumeStatus | None) -> VolumeStatus:
    """A volume's new figures, keeping what this look did not tell (`bound`, a Transfer's
    progress) from the status as written."""
    if old is None:
        return new
    kept = {
        field: getattr(old, field)
        for field in ("bound", *TRANSFER_FIELDS)
        if getattr(new, field) is None and getattr(old, field) is not None
    }
    return new.model_copy(update=kept) if kept else new


def stages_ended(before: S, after: S) -> list[str]:
    """The copy stages this status write ends (`cut`: every snapshot cut and ready;
    `volumes`: every target volume Bound), each once: their metric is observed then."""

    def cut(status: S) -> bool:
        return bool(status.volumes) and all(v.cut_at and v.snapshot_ready for v in status.volumes)

    def bound(status: S) -> bool:
        return bool(status.volumes) and all(v.bound for v in status.volumes)

    return [
        stage
        for stage, done in (("cut", cut), ("volumes", bound))
        if done(after) and not done(before)
    ]


def volumes_bound(
    status: S,
    bound: dict[str, tuple[str, bool]],
    now: str,
    generation: int | None,
) -> S | None:
    """The status with each target volume's `bound`, and the `VolumesReady` condition;
    None when unchanged."""
    known = {v.name: v for v in status.volumes}
    volumes = [
        known[name].model_copy(update={"bound": is_bound})
        if name in known
        else VolumeStatus(name=name, source=source, bound=is_bound)
        for name, (source, is_bound) in sorted(bound.items())
    ]
    volumes += [v for v in status.volumes if v.name not in bound]
    if volumes == status.volumes:
        return None
    ready = bool(volumes) and all(v.bound for v in volumes)
    count = sum(1 for v in volumes if v.bound)
    conditions = set_condition(
        status.conditions,
        "VolumesReady",
        ready,
        Reason.VOLUMES_READY.value if ready else "Provisioning",
        f"{count}/{len(volumes)} target volumes Bound",
        now,
        generation,
    )
    return status.model_copy(
        update={"volumes": volumes, "conditions": conditions, "updated_at": now}
    )


def copy_progress(
    status: S,
    volumes: list[VolumeStatus] | None,
    point_in_time: str | None,
    bound: dict[str, tuple[str, bool]] | None,
    now: str,
    generation: int | None,
) -> S | None:
    """Both of the above, as one status write (None: nothing looked at changed it)."""
    updated = status
    if volumes is not None:
        updated = cut_progress(updated, volumes, point_in_time, now, generation) or updated
    if bound is not None:
        updated = volumes_bound(updated, bound, now, generation) or updated
    if isinstance(updated, CloningOperationStatus):
        moved = transfer.summary(updated.volumes)
        if moved != updated.transfer:
            updated = updated.model_copy(update={"transfer": moved})
    return None if updated == status else updated
