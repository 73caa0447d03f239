"""kubernetes_asyncio without its generated API classes and models (32 MiB at start).

The operator speaks JSON (`k8s/api.py`). From kubernetes_asyncio it uses only
`Configuration` and `ApiClient`'s authenticated pool (the credentials are found by
`kube.endpoint`), never a model or a typed API class. Yet `import kubernetes_asyncio.client` runs a package `__init__`
that imports all of them (about 1,000 modules), and kopf imports it whenever the package
is installed. At 1,000 clones in flight that was a fifth of the operator's memory.

`defer_generated_code()` registers the three packages whose `__init__` does that
(`kubernetes_asyncio`, `.client`, `.client.models`) as the real packages (same spec, same
`__path__`) with their `__init__` not yet run. A name a package does not have yet (PEP
562 `__getattr__`): a submodule is imported alone; so are the few names kopf and the
loaders import from the package (FROM_OWN_MODULE); anything else runs the package's
`__init__` then, so code that does want `kubernetes_asyncio.client.V1Pod` still gets it.

It must run before kubernetes_asyncio is imported, by kopf or anyone
(`clone_operator/__init__`); if it already was, or the library's layout is not the one
expected, it does nothing and everything still works, only with the larger import.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from importlib.abc import Loader
from types import ModuleType
from typing import Any

DEFERRED = ("kubernetes_asyncio", "kubernetes_asyncio.client", "kubernetes_asyncio.client.models")
"""Outermost first: a package's parent must be registered before it."""

FROM_OWN_MODULE: dict[str, dict[str, str]] = {
    "kubernetes_asyncio.client": {
        # What k8s/api.py (and kubernetes_asyncio.config, if anyone loads it) imports:
        "ApiClient": "kubernetes_asyncio.client.api_client",
        "Configuration": "kubernetes_asyncio.client.configuration",
        # What kopf imports from it (for isinstance checks on objects it is given):
        "V1ObjectMeta": "kubernetes_asyncio.client.models.v1_object_meta",
        "V1OwnerReference": "kubernetes_asyncio.client.models.v1_owner_reference",
    },
}
"""Names taken from the one module that defines them, without the package's `__init__`."""


def defer_generated_code() -> bool:
    """Register the deferred packages; True if they were (False: already imported, or not
    installed, or laid out differently: then the usual import happens). Imports nothing."""
    if any(name in sys.modules for name in DEFERRED):
        return False
    for name in DEFERRED:
        try:
            # (find_spec imports a dotted name's parent: registered on the previous turn)
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            spec = None
        if spec is None or spec.loader is None or spec.submodule_search_locations is None:
            for registered in DEFERRED:
                sys.modules.pop(registered, None)
            return False
        package = importlib.util.module_from_spec(spec)
        package.__getattr__ = _on_first_miss(package, spec.loader)  # type: ignore[method-assign]
        sys.modules[name] = package
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, package)
    return True


def is_deferred(package_name: str) -> bool:
    """True while that package's `__init__` has not run (for tests and diagnostics)."""
    package = sys.modules.get(package_name)
    return package is not None and "__getattr__" in vars(package)


def _on_first_miss(package: ModuleType, loader: Loader) -> Any:
    """A name the package does not have yet: one of its submodules, or a name from
    FROM_OWN_MODULE, is imported alone; anything else runs the package's `__init__`."""
    own_modules = FROM_OWN_MODULE.get(package.__name__, {})

    def __getattr__(attribute: str) -> Any:  # noqa: N807 (PEP 562's name)
        namespace = vars(package)
        if "__getattr__" in namespace:
            if attribute in own_modules:
                value = getattr(importlib.import_module(own_modules[attribute]), attribute)
                namespace[attribute] = value
                return value
            submodule = f"{package.__name__}.{attribute}"
            if not attribute.startswith("__") and importlib.util.find_spec(submodule):
                return importlib.import_module(submodule)  # (which binds it here)
            del namespace["__getattr__"]  # once: the real __init__ defines everything
            loader.exec_module(package)
        try:
            return namespace[attribute]
        except KeyError:
            raise AttributeError(
                f"module {package.__name__!r} has no attribute {attribute!r}"
            ) from None

    return __getattr__
