"""CloneObject: one daemon per CloneObject until it is finalized."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from clone_operator.api.cloneobjects import PLURAL
from clone_operator.api.common import GROUP, VERSION
from clone_operator.engine import objects as engine

log = logging.getLogger("clone_operator.objects")


def not_finalized(status: kopf.Status, **_: Any) -> bool:
    return not status.get("finalized")


@kopf.daemon(GROUP, VERSION, PLURAL, when=not_finalized, backoff=1.0, cancellation_timeout=5.0)
async def clone_object(
    name: str, namespace: str | None, uid: str, memo: kopf.Memo, **_: Any
) -> None:
    await engine.run(memo.ctx, str(namespace), name, uid, log)


@kopf.on.event(GROUP, VERSION, PLURAL)
def clone_object_changed(uid: str, memo: kopf.Memo, **_: Any) -> None:
    memo.ctx.wakeups.poke(uid)
