"""Operator settings, read from the environment (the Helm chart's values set them).

Every variable is prefixed `CLONE_OPERATOR_`; lists and maps are JSON, e.g.
`CLONE_OPERATOR_REGION_ALIASES='{"oregon": "us-west-2"}'`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REGION_LABEL = "topology.kubernetes.io/region"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class Settings(BaseSettings):
    """How this operator instance behaves; immutable for the process's life."""

    model_config = SettingsConfigDict(env_prefix="CLONE_OPERATOR_", frozen=True)

    region_aliases: dict[str, str] = {}
    """Friendly region names mapped to `topology.kubernetes.io/region` values,
    e.g. `{"oregon": "us-west-2"}`."""
    allowed_regions: list[str] = []
    """When not empty, the only target regions accepted (aliases or label values)."""
    max_in_progress: Annotated[int, Field(ge=1)] = 10
    """Cluster-wide limit of InProgress operations; the rest wait in Pending."""
    unschedulable_grace_seconds: Annotated[int, Field(ge=0)] = 60
    """How long a target pod may stay unschedulable before the operation fails."""
    object_timeout_seconds: Annotated[int, Field(ge=30)] = 1800
    """How long a CloneObject's PVC or cluster may take to become usable."""
    namespaces: list[str] = []
    """Namespaces to watch; empty means every namespace (cluster-wide RBAC)."""
    log_format: LogFormat = LogFormat.TEXT
    """`text` for people, `json` for log pipelines."""
    health_port: Annotated[int, Field(ge=0, le=65535)] = 8080
    """Port of the liveness endpoint (`/healthz`); 0 disables it."""
