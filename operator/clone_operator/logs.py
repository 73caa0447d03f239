"""Log formats: `text` for people, `json` (one JSON object per line) for log pipelines."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and the object it is about.

    The engine's ObjectLog puts `object_namespace`/`object_name` into each record;
    kopf's per-object loggers carry `k8s_ref`: both become `namespace`/`name` (and
    `kind`/`uid` when kopf knows them). json.dumps does the quoting, so messages
    with quotes, newlines or tracebacks stay valid JSON.
    """

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict):
            for key in ("kind", "namespace", "name", "uid"):
                if ref.get(key):
                    line[key] = ref[key]
        namespace = getattr(record, "object_namespace", None)
        name = getattr(record, "object_name", None)
        if namespace:
            line["namespace"] = namespace
        if name:
            line["name"] = name
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)
