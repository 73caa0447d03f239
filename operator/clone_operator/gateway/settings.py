"""Gateway settings, read from `CLONE_OPERATOR_API_*` variables (the chart's `api:` values)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class ApiSettings(BaseSettings):
    """How one gateway process behaves; immutable for the process's life."""

    model_config = SettingsConfigDict(env_prefix="CLONE_OPERATOR_API_", frozen=True)

    host: str = "0.0.0.0"
    """Address to listen on."""
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    """Port to listen on (plain HTTP unless a certificate is given)."""
    tls_cert_file: str = ""
    """PEM certificate (chain) to serve HTTPS with; empty: plain HTTP."""
    tls_key_file: str = ""
    """PEM private key of that certificate."""
    namespace: str = ""
    """Namespace of the gateway's own id counters (ConfigMaps). Default: the pod's namespace,
    or `default` outside a cluster."""
    max_batch: Annotated[int, Field(ge=1, le=500)] = 100
    """Most clone objects one Bridge POST may create."""
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024
    """Largest request body accepted; a larger one is answered 413 before it is read
    (Content-Length) or as soon as it passes this size (chunked), before any auth."""
    max_buffered_bytes: Annotated[int, Field(ge=1024)] = 32 * 1024 * 1024
    """Request bodies buffered at once, over all requests; a body that would pass it is
    answered 503 (many slow uploads cannot multiply `max_body_bytes`)."""
    request_timeout_seconds: Annotated[float, Field(gt=0)] = 30.0
    """Timeout of each call to the API server."""

    def counter_namespace(self) -> str:
        if self.namespace:
            return self.namespace
        path = SERVICE_ACCOUNT_DIR / "namespace"
        return path.read_text().strip() if path.exists() else "default"
