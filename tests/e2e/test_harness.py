"""The e2e harness itself, checked without a cluster (no `e2e` marker: `make test-unit` runs it)."""

from __future__ import annotations

import json

from tests.cluster import realnode
from tests.e2e.incluster import chart_values, fullname


def test_settings_become_chart_values_and_extra_env() -> None:
    args = chart_values(
        "clone-operator:0123456789ab",
        {
            "CLONE_OPERATOR_MAX_IN_PROGRESS": "50",
            "CLONE_OPERATOR_SMTP_HOST": "127.0.0.1",
            "CLONE_OPERATOR_SMTP_TIMEOUT_SECONDS": "20",
            "CLONE_OPERATOR_METRICS_HOST": "127.0.0.1",
            "CLONE_OPERATOR_WEBHOOK_MODE": "local",
            "CLONE_OPERATOR_WEBHOOK_CLIENT_CA": "/cache/webhook-client/ca.crt",
        },
    )
    pairs = list(zip(args[::2], args[1::2], strict=True))
    assert ("--set-json", "operator.maxInProgress=50") in pairs
    # The test SMTP server on this machine, as the pod reaches it.
    assert ("--set-string", f"notifications.smtp.host={realnode.GATEWAY}") in pairs
    assert ("--set", "webhook.enabled=true") in pairs
    assert ("--set", "image.pullPolicy=Never") in pairs
    # The API server's client CA: a file here, its PEM in the chart.
    assert ("--set-file", "webhook.clientCA=/cache/webhook-client/ca.crt") in pairs
    assert ("--set", "image.repository=clone-operator") in pairs
    assert ("--set", "image.tag=0123456789ab") in pairs
    extra = json.loads(next(v for f, v in pairs if v.startswith("extraEnv="))[9:])
    # Where the process listens is the chart's business; the rest is extraEnv.
    assert extra == [{"name": "CLONE_OPERATOR_SMTP_TIMEOUT_SECONDS", "value": "20"}]


def test_fullname_is_the_charts() -> None:
    """The Deployment and Lease names the harness and `make deploy` wait on."""
    assert fullname("e2e") == "e2e-clone-operator"
    assert fullname("clone-operator") == "clone-operator"
