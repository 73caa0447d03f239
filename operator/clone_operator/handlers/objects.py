"""CloneObject: every watch event wakes (or starts) the CloneObject's engine task."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from clone_operator.api.cloneobjects import PLURAL
from clone_operator.api.common import GROUP, VERSION
from clone_operator.engine import objects as engine

log = logging.getLogger("clone_operator.objects")


@kopf.on.event(GROUP, VERSION, PLURAL)
async def clone_object_changed(
    type: str | None,
    body: kopf.Body,
    uid: str,
    name: str,
    namespace: str | None,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """Created, changed, or seen at startup: make sure its engine runs."""
    ctx = memo.ctx
    ctx.follow(type, dict(body), uid, lambda: engine.run(ctx, str(namespace), name, uid, log), log)
