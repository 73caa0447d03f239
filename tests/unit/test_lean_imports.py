"""kubernetes_asyncio's generated models are not loaded by the operator, yet still there
for whoever asks (clone_operator/lean_imports.py). Each check runs in a fresh
interpreter: this one has imported everything already."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


def run_fresh(code: str) -> dict[str, object]:
    """Run `code` in a new interpreter, as the image runs the operator (no sync client);
    it prints one JSON object."""
    prelude = "import sys, json; sys.modules['kubernetes'] = None\n"
    done = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_operator_imports_no_generated_model_or_api_class() -> None:
    result = run_fresh(
        """
        import clone_operator.cli, clone_operator.handlers, clone_operator.k8s.api
        from clone_operator import lean_imports as lean
        loaded = [m for m in sys.modules if m.startswith("kubernetes_asyncio.")]
        print(json.dumps({
            "deferred": [lean.is_deferred(p) for p in lean.DEFERRED],
            "models": sum(m.startswith("kubernetes_asyncio.client.models.") for m in loaded),
            "apis": sum(m.startswith("kubernetes_asyncio.client.api.") for m in loaded),
        }))
        """
    )
    assert result["deferred"] == [True, True, True]
    assert result["models"] == 2  # V1ObjectMeta and V1OwnerReference, for kopf
    assert result["apis"] == 0


def test_kopf_gets_the_real_metadata_classes() -> None:
    result = run_fresh(
        """
        import clone_operator, kopf
        from kopf._cogs.helpers import thirdparty
        from kubernetes_asyncio.client.models import v1_object_meta
        print(json.dumps({"same": thirdparty.V1ObjectMetaAsync is v1_object_meta.V1ObjectMeta}))
        """
    )
    assert result["same"] is True


def test_anything_else_asked_of_the_packages_loads_them_whole() -> None:
    result = run_fresh(
        """
        import clone_operator
        from clone_operator import lean_imports as lean
        from kubernetes_asyncio.client import V1Pod, CoreV1Api
        import kubernetes_asyncio
        pod = V1Pod(metadata=kubernetes_asyncio.client.V1ObjectMeta(name="p")).to_dict()
        print(json.dumps({
            "pod": pod,
            "api": CoreV1Api.__name__,
            "watch": kubernetes_asyncio.watch.Watch.__name__,
            "client_deferred": lean.is_deferred("kubernetes_asyncio.client"),
        }))
        """
    )
    assert result["pod"]["metadata"]["name"] == "p"  # type: ignore[index]
    assert result["api"] == "CoreV1Api"
    assert result["watch"] == "Watch"
    assert result["client_deferred"] is False


def test_a_missing_name_is_still_an_attribute_error() -> None:
    result = run_fresh(
        """
        import clone_operator, kubernetes_asyncio.client
        try:
            kubernetes_asyncio.client.NoSuchThing
        except AttributeError as error:
            print(json.dumps({"error": str(error)}))
        """
    )
    assert "has no attribute 'NoSuchThing'" in str(result["error"])


def test_nothing_is_deferred_once_the_packages_were_imported() -> None:
    result = run_fresh(
        """
        import kubernetes_asyncio.client
        from clone_operator import lean_imports as lean
        print(json.dumps({"again": lean.defer_generated_code(),
                          "deferred": lean.is_deferred("kubernetes_asyncio.client")}))
        """
    )
    assert result == {"again": False, "deferred": False}
