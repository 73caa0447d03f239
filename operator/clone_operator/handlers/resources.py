"""The two custom resources: every watch event starts (or wakes) the resource's engine task."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

import kopf

from clone_operator.api import cloneobjects, cloningoperations
from clone_operator.api.common import GROUP, VERSION
from clone_operator.engine import objects, operations
from clone_operator.engine.context import Context

Run = Callable[[Context, str, str, str, logging.Logger], Coroutine[Any, Any, None]]


def route(plural: str, run: Run, log: logging.Logger) -> None:
    """Created, changed (a cancel), or seen at startup: make sure its engine runs."""

    async def changed(
        type: str | None,
        body: kopf.Body,
        uid: str,
        name: str,
        namespace: str | None,
        memo: kopf.Memo,
        **_: Any,
    ) -> None:
        ctx: Context = memo.ctx
        ctx.follow(type, dict(body), uid, lambda: run(ctx, str(namespace), name, uid, log), log)

    kopf.on.event(GROUP, VERSION, plural, id=f"{plural}-changed")(changed)


route(cloningoperations.PLURAL, operations.run, logging.getLogger("clone_operator.operations"))
route(cloneobjects.PLURAL, objects.run, logging.getLogger("clone_operator.objects"))
