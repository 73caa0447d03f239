"""Operator settings, read from the environment (the Helm chart's values set them).

Every variable is prefixed `CLONE_OPERATOR_`; lists and maps are JSON, e.g.
`CLONE_OPERATOR_REGION_ALIASES='{"oregon": "us-west-2"}'`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from clone_operator import __version__

REGION_LABEL = "topology.kubernetes.io/region"


class WebhookMode(StrEnum):
    """Where the admission webhook is served."""

    OFF = "off"  # no webhook: the operator enforces every rule itself
    LOCAL = "local"  # https://127.0.0.1:<port> (a local control plane on this machine)
    SERVICE = "service"  # in-cluster, behind the Service named by webhookHost


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class SmtpSecurity(StrEnum):
    """How the SMTP connection is protected."""

    STARTTLS = "starttls"  # plain connect, then STARTTLS (required); usually port 587
    TLS = "tls"  # implicit TLS from the first byte; usually port 465
    NONE = "none"  # no TLS at all: only for a relay on a trusted network (or tests)


class Settings(BaseSettings):
    """How this operator instance behaves; immutable for the process's life."""

    model_config = SettingsConfigDict(env_prefix="CLONE_OPERATOR_", frozen=True)

    region_aliases: dict[str, str] = {}
    """Friendly region names mapped to `topology.kubernetes.io/region` values,
    e.g. `{"oregon": "us-west-2"}`."""
    allowed_regions: list[str] = []
    """When not empty, the only target regions accepted (aliases or label values)."""
    max_in_progress: Annotated[int, Field(ge=1)] = 10
    """Cluster-wide limit of clones InProgress (CloningOperations, and CloneObjects of a
    StatefulSet); the rest wait in Pending."""
    max_in_progress_per_namespace: Annotated[int, Field(ge=1)] | None = None
    """At most this many of those slots per namespace (the oldest waiter of a namespace
    below its share goes first). Unset: half of maxInProgress, rounded up, so a namespace
    whose clones never get ready leaves at least the other half to the others; set it to
    maxInProgress for a cluster with one tenant."""
    max_timeout_seconds: Annotated[int, Field(ge=30, le=86400)] = 21600
    """The longest spec.timeoutSeconds accepted: an operation asking more fails at once
    (TimeoutTooLong, nothing made), and one already InProgress is bounded by it too.
    Bounds how long a clone whose pods never get ready holds its slot. (Below 1800, the
    CRD's default timeoutSeconds, an operation must ask for a shorter one.)"""
    unschedulable_grace_seconds: Annotated[int, Field(ge=0)] = 60
    """How long a target pod may stay unschedulable before the operation fails."""
    cluster_domain: Annotated[
        str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    ] = "cluster.local"
    """The cluster's DNS domain (the kubelet's `clusterDomain`): a clone's references to
    its source's pods and Service are recognised with it (`….svc.<clusterDomain>`)."""
    snapshot_deadline_seconds: Annotated[int, Field(ge=5)] = 600
    """How long the snapshots of a snapshot copy may take to be cut and ready, from when
    each was taken; then the clone fails (StorageRefused) instead of waiting out its
    timeout. (CloudNativePG waits 10 minutes for the same.)"""
    mover_image: Annotated[str, Field(min_length=1, max_length=512)] = (
        f"ghcr.io/clone-operator/clone-operator-mover:{__version__}"
    )
    """The data mover's image (`make mover-image`: rsync and stunnel from Debian), run by
    the `Transfer` copy method on both sides of each volume."""
    mover_bandwidth_kib: Annotated[int, Field(ge=0)] = 0
    """Each transfer's bandwidth limit in KiB/s (rsync's --bwlimit); 0: unlimited. Bounds
    what a clone takes of a link between regions."""
    transfer_stall_seconds: Annotated[int, Field(ge=10)] = 300
    """A Transfer that moves no new byte for this long fails (TransferStalled): a mover
    that cannot be scheduled, pull its image or reach its peer ends the clone with the
    pods' own words instead of waiting out its timeout."""
    object_timeout_seconds: Annotated[int, Field(ge=30)] = 1800
    """How long a CloneObject's PVC (to bind) or cluster (to get ready) may take, counted
    from when it went InProgress; then it fails with reason Timeout."""
    namespaces: list[str] = []
    """Namespaces to watch; empty means every namespace (cluster-wide RBAC)."""
    leader_election: bool = True
    """Elect one leader among the replicas (a Lease); only the leader acts. Off: this
    instance acts at once, alone (never run two like that)."""
    leader_election_lease: str = "clone-operator"
    """Name of the Lease the replicas compete for."""
    leader_election_namespace: str = ""
    """Namespace of that Lease; empty: the pod's own (its ServiceAccount's), or
    `default` outside a cluster."""
    leader_election_lease_seconds: Annotated[float, Field(gt=0)] = 15.0
    """How long a leader's lease lasts without renewal; others wait that long."""
    leader_election_renew_deadline_seconds: Annotated[float, Field(gt=0)] = 10.0
    """A leader that could not renew for this long stops acting (shorter than the lease)."""
    leader_election_retry_seconds: Annotated[float, Field(gt=0)] = 2.0
    """How often the leader renews and the others try (jittered)."""
    webhook_mode: WebhookMode = WebhookMode.OFF
    """`off`, `local` (127.0.0.1, for a local cluster) or `service` (in-cluster)."""
    webhook_port: Annotated[int, Field(ge=1, le=65535)] = 9443
    """Port the webhook listens on (and, in `service` mode, the Service's port)."""
    webhook_host: str = "clone-operator-webhook.clone-operator.svc"
    """In `service` mode: the Service's DNS name that the API server calls."""
    webhook_cert_dir: str = ""
    """A mounted TLS secret (tls.crt, tls.key, ca.crt, e.g. from cert-manager);
    empty: a self-signed certificate is made at startup."""
    webhook_cert_secret: str = ""
    """In `service` mode without a mounted certificate: the Secret, in the webhook
    Service's namespace, through which replicas share one self-signed certificate
    (they must: they share one caBundle). Empty: each replica makes its own (one
    replica only)."""
    webhook_client_ca: str = ""
    """PEM (or the path of a PEM file) of the CA that signs the API server's client
    certificate for webhooks (its `--admission-control-config-file`): a review whose
    client presents a certificate it signed is the API server's, and is answered in
    full (the source's containers, other operations, regions). Any other caller,
    and every caller when empty (managed clusters), is answered from the request
    alone: nothing is read for it, so it learns nothing it did not send, and the
    operator's own checks put the details in the resource's status."""
    log_format: LogFormat = LogFormat.TEXT
    """`text` for people, `json` for log pipelines."""
    health_port: Annotated[int, Field(ge=0, le=65535)] = 8080
    """Port of the liveness endpoint (`/healthz`); 0 disables it."""
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = 8081
    """Port of the monitoring endpoint: Prometheus `/metrics` and readiness `/readyz`;
    0 disables it."""
    metrics_host: str = "0.0.0.0"
    """Address the monitoring endpoint binds to."""
    smtp_host: str = ""
    """SMTP server for the outcome emails of CloningOperations; empty disables notifications
    (each recipient is then recorded as `Disabled` in status.notifications)."""
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 587
    """SMTP server port."""
    smtp_security: SmtpSecurity = SmtpSecurity.STARTTLS
    """`starttls`, `tls` (implicit) or `none`."""
    smtp_from: str = "clone-operator@localhost"
    """The From address of the outcome emails (and the SMTP envelope sender)."""
    smtp_username: str = ""
    """SMTP user; empty: no authentication. The Helm chart reads it from a Secret."""
    smtp_password: SecretStr = SecretStr("")
    """SMTP password (from the same Secret); never logged."""
    smtp_timeout_seconds: Annotated[float, Field(gt=0)] = 30.0
    """Timeout of each SMTP command (connect, MAIL, RCPT, DATA)."""
    smtp_max_attempts: Annotated[int, Field(ge=1, le=100)] = 8
    """Attempts per recipient before a transient failure (4xx, connection refused) becomes
    `Failed`."""
    smtp_retry_seconds: Annotated[float, Field(gt=0)] = 5.0
    """First retry delay; it doubles after every failed attempt ..."""
    smtp_max_retry_seconds: Annotated[float, Field(gt=0)] = 300.0
    """... up to this delay."""

    @property
    def namespace_share(self) -> int:
        """The slots one namespace may hold (`max_in_progress_per_namespace`)."""
        share = self.max_in_progress_per_namespace or -(-self.max_in_progress // 2)
        return min(share, self.max_in_progress)
