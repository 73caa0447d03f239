"""Admission webhook: refuse at `kubectl apply` what the CRD's CEL cannot express.

Only CREATE of the main resource is reviewed, never the status subresource, so
the operator's own status patches never pass through it. Its failurePolicy is
Ignore: when the webhook is down, requests are admitted and the operator
enforces the same rules itself (the operation then ends Failed with a reason).

It also records who asked: the mutating half writes the API server's
authenticated user name into `cloning.dev/requested-by`. It cannot be forged:
the ValidatingAdmissionPolicies (api/policies.py), run by the API server after
every mutation, refuse any other value and any later change. Authorization
itself (may the requester read the source and create the clone?) is never the
webhook's job: the policies decide it, and they fail closed.

Only a review the API server sent (its client certificate, signed by
`webhook.clientCA`) is judged with reads; any other is admitted unread (see
reconcile/admission.py): the port is reachable, and a review's body is the
caller's to forge.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import kopf

from clone_operator import webhook_certs
from clone_operator.api import cloneobjects, cloningoperations, policies
from clone_operator.api.common import GROUP, VERSION
from clone_operator.engine import admission, storage
from clone_operator.k8s.api import Kube
from clone_operator.reconcile import admission as rules
from clone_operator.services import certificates
from clone_operator.settings import Settings, WebhookMode

CONFIGURATION_NAME = "clone-operator.cloning.dev"


async def configure(settings: kopf.OperatorSettings, config: Settings, kube: Kube) -> None:
    """Serve the webhook and let kopf keep the ValidatingWebhookConfiguration current."""
    if config.webhook_mode is WebhookMode.OFF:
        return
    if config.webhook_mode is WebhookMode.LOCAL:
        addr, host = "127.0.0.1", "127.0.0.1"
    else:
        addr, host = "0.0.0.0", config.webhook_host
    hosts = [host, addr] if addr != "0.0.0.0" else [host]
    cert_dir = Path(config.webhook_cert_dir) if config.webhook_cert_dir else None
    if cert_dir is not None and (cert_dir / "tls.crt").exists():
        cert = webhook_certs.mounted(cert_dir)
    elif config.webhook_cert_secret and addr == "0.0.0.0":
        namespace = host.split(".")[1]  # <service>.<namespace>.svc
        pair = await certificates.shared(kube, namespace, config.webhook_cert_secret, hosts)
        cert = webhook_certs.write(pair)
    else:
        cert = webhook_certs.self_signed(hosts)
    server_class = WebhookServer if addr != "0.0.0.0" else ServiceWebhookServer
    settings.admission.server = server_class(
        addr=addr,
        port=config.webhook_port,
        host=host,
        certfile=str(cert.certfile),
        pkeyfile=str(cert.keyfile),
        cadata=cert.ca,
        verify_cadata=webhook_certs.client_ca(config.webhook_client_ca),
    )
    settings.admission.managed = CONFIGURATION_NAME


class WebhookServer(kopf.WebhookServer):
    """kopf's webhook server, trusting only the given client CA.

    kopf's own TLS context is `ssl.create_default_context`, which also trusts the
    system's CAs: any publicly issued client certificate would then pass for the API
    server's. Each (re)start gets a bare context; kopf loads the serving certificate
    and `verify_cadata` into it, and asks for (never requires) a client certificate.
    """

    def _build_ssl(self) -> tuple[bytes | None, ssl.SSLContext | None]:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        return super()._build_ssl()


class ServiceWebhookServer(WebhookServer):
    """kopf's webhook server, published to the API server as a Service reference.

    kopf publishes `url: https://<host>:<port>`; the API server would resolve
    that name through its own DNS, which knows nothing of cluster Services. A
    `service:` reference (from `host`, `<name>.<namespace>.svc`) is routed by
    the API server itself to the Service's endpoints.
    """

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        name, _, rest = (self.host or "").partition(".")
        namespace = rest.split(".")[0]
        async for published in super().__call__(fn):
            config = kopf.WebhookClientConfig(
                service=kopf.WebhookClientConfigService(
                    namespace=namespace, name=name, port=self.port, path=""
                )
            )
            if "caBundle" in published:
                config["caBundle"] = published["caBundle"]
            yield config


def register(config: Settings) -> None:
    """Register the validation handler, only when a webhook is served: kopf refuses to
    start with admission handlers and no server."""
    if config.webhook_mode is WebhookMode.OFF:
        return
    kopf.on.validate(
        GROUP,
        VERSION,
        cloningoperations.PLURAL,
        id="cloningoperation",
        operations=["CREATE"],
        ignore_failures=True,
    )(validate_operation)
    for plural in (cloningoperations.PLURAL, cloneobjects.PLURAL):
        kopf.on.mutate(
            GROUP,
            VERSION,
            plural,
            id=f"requester-{plural}",
            operations=["CREATE"],
            ignore_failures=True,
        )(record_requester)


async def validate_operation(
    spec: kopf.Spec,
    meta: kopf.Meta,
    body: kopf.Body,
    namespace: str | None,
    name: str | None,
    memo: kopf.Memo,
    resource: kopf.Resource,
    sslpeer: dict[str, Any],
    operation: str | None = None,  # kopf passes it, but never filters handlers by it
    **_: Any,
) -> None:
    review = rules.Review(
        operation=operation or "",
        plural=resource.plural,
        namespace=namespace,
        from_api_server=rules.from_api_server(sslpeer, bool(memo.ctx.settings.webhook_client_ca)),
    )
    if not rules.may_read(review):
        return  # answered from the request alone: the operator judges it, into its status
    problems = await admission.check_operation(
        memo.ctx, str(namespace), name or "", meta.get("uid"), dict(spec), dict(body)
    )
    if problems:
        raise kopf.AdmissionError("; ".join(problems), code=422)


async def record_requester(
    patch: kopf.Patch,
    userinfo: kopf.UserInfo,
    spec: kopf.Spec,
    namespace: str | None,
    resource: kopf.Resource,
    memo: kopf.Memo,
    sslpeer: dict[str, Any],
    **_: Any,
) -> None:
    """Annotate the new resource with its creator, and, for `Auto` in a review the API
    server sent, what Auto may use on its behalf, asked with its groups (the policies
    keep both honest)."""
    username = userinfo.get("username")
    if not username:
        return
    annotations = patch.setdefault("metadata", {}).setdefault("annotations", {})
    annotations[policies.REQUESTED_BY] = username
    cluster = resource.plural == cloningoperations.PLURAL
    method = spec.get("copyMethod") if cluster else (spec.get("options") or {}).get("copyMethod")
    trusted = rules.from_api_server(sslpeer, bool(memo.ctx.settings.webhook_client_ca))
    if (method or "Auto") != "Auto" or not namespace or not trusted:
        return  # (a forged review learns nothing of anyone's rights)
    rights = await storage.auto_rights(memo.ctx.kube, dict(userinfo), namespace, cluster)
    if rights:
        annotations[policies.REQUESTER_MAY_CREATE] = ",".join(rights)
