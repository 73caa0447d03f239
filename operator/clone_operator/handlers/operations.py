"""CloningOperation: every watch event wakes (or starts) the operation's engine task."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from clone_operator.api.cloningoperations import PLURAL
from clone_operator.api.common import GROUP, VERSION
from clone_operator.engine import operations as engine

log = logging.getLogger("clone_operator.operations")


@kopf.on.event(GROUP, VERSION, PLURAL)
async def operation_changed(
    type: str | None,
    body: kopf.Body,
    uid: str,
    name: str,
    namespace: str | None,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """Created, changed (a cancel), or seen at startup: make sure its engine runs."""
    ctx = memo.ctx
    ctx.follow(type, dict(body), uid, lambda: engine.run(ctx, str(namespace), name, uid, log), log)
