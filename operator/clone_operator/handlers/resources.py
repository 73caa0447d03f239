"""The two custom resources: every watch event starts (or wakes) the resource's engine task."""

from __future__ import annotations

from typing import Any

import kopf

from clone_operator.api.common import GROUP, VERSION
from clone_operator.engine import lifecycle


def route(door: lifecycle.FrontDoor) -> None:
    """Created, changed (a cancel), or seen at startup: make sure its engine runs."""

    async def changed(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        lifecycle.resource_changed(memo.ctx, door, type, dict(body))

    kopf.on.event(GROUP, VERSION, door.plural, id=f"{door.plural}-changed")(changed)


for door in lifecycle.FRONT_DOORS:
    route(door)
