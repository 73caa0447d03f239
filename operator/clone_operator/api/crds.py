"""Generate the CustomResourceDefinitions from the pydantic models.

`python -m clone_operator.api.crds --write crds/` regenerates `crds/*.yaml`
(the CRDs and, beside them, the admission policies of api/policies.py);
`--check` fails when they are stale. Pure data manipulation, no API calls.
"""

from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from clone_operator.api import cloneobjects, cloningoperations, policies
from clone_operator.api.common import GROUP, VERSION

# JSON-schema keywords that a structural OpenAPI v3 schema keeps.
_KEPT = {
    "type",
    "description",
    "properties",
    "required",
    "items",
    "enum",
    "default",
    "pattern",
    "format",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "maxProperties",
    "additionalProperties",
}


@dataclass(frozen=True)
class ResourceDefinition:
    """Everything that makes one CRD besides the models' own schemas."""

    kind: str
    plural: str
    short_names: list[str]
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str
    printer_columns: list[dict[str, Any]]
    selectable_fields: list[str]
    root_validations: list[dict[str, Any]] = field(default_factory=list)


RESOURCES = [
    ResourceDefinition(
        kind=cloningoperations.KIND,
        plural=cloningoperations.PLURAL,
        short_names=["cop", "cloneop"],
        spec=cloningoperations.CloningOperationSpec,
        status=cloningoperations.CloningOperationStatus,
        description="CloningOperation clones a stateful cluster (a StatefulSet, its governing "
        "Service and its PersistentVolumeClaims) into a new, independent cluster, optionally on "
        "another server version or in another region. At most one operation per source cluster "
        "is Pending or InProgress at a time; cancel it with spec.cancel while it is Pending.",
        printer_columns=cloningoperations.PRINTER_COLUMNS,
        selectable_fields=cloningoperations.SELECTABLE_FIELDS,
        root_validations=cloningoperations.ROOT_VALIDATIONS,
    ),
    ResourceDefinition(
        kind=cloneobjects.KIND,
        plural=cloneobjects.PLURAL,
        short_names=["clo"],
        spec=cloneobjects.CloneObjectSpec,
        status=cloneobjects.CloneObjectStatus,
        description="CloneObject clones one object (StatefulSet, PersistentVolumeClaim, "
        "ConfigMap, Secret or Service) into a new destination with options applied. The "
        "destination is never overwritten and outlives the CloneObject.",
        printer_columns=cloneobjects.PRINTER_COLUMNS,
        selectable_fields=cloneobjects.SELECTABLE_FIELDS,
    ),
]


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Turn a pydantic JSON schema node into a structural OpenAPI v3 schema node."""
    if "$ref" in schema:
        target = defs[schema["$ref"].split("/")[-1]]
        merged = {**copy.deepcopy(target), **{k: v for k, v in schema.items() if k != "$ref"}}
        return structural(merged, defs)
    if "anyOf" in schema:  # Optional[X]: an omitted field, never an explicit null
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"unsupported union in schema: {schema}")
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        return structural({**options[0], **rest}, defs)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "const":
            out["enum"] = [value]
        elif key == "default":
            if value is not None:
                out["default"] = _without_nulls(value)
        elif key.startswith("x-kubernetes-") or key in _KEPT:
            out[key] = value
    if "properties" in out:
        out["properties"] = {k: structural(v, defs) for k, v in out["properties"].items()}
        out.setdefault("type", "object")
    if "items" in out:
        out["items"] = structural(out["items"], defs)
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = structural(out["additionalProperties"], defs)
    if (
        out.get("type") == "object"
        and "properties" not in out
        and out.get("additionalProperties") is True
    ):
        del out["additionalProperties"]
        out["x-kubernetes-preserve-unknown-fields"] = True
    if out.get("x-kubernetes-preserve-unknown-fields"):
        out["type"] = "object"
        out.pop("additionalProperties", None)
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if "description" in out:
        out["description"] = " ".join(out["description"].split())
    return out


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return structural(raw, defs)


def crd(resource: ResourceDefinition) -> dict[str, Any]:
    """The CustomResourceDefinition of one resource, as a plain dict."""
    spec_schema = model_schema(resource.spec)
    status_schema = model_schema(resource.status)
    root: dict[str, Any] = {
        "type": "object",
        "description": resource.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
    }
    if resource.root_validations:
        root["x-kubernetes-validations"] = resource.root_validations
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{resource.plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "clone-operator"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": resource.kind,
                "listKind": f"{resource.kind}List",
                "plural": resource.plural,
                "singular": resource.kind.lower(),
                "shortNames": resource.short_names,
                "categories": ["cloning"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": resource.printer_columns,
                    "selectableFields": [{"jsonPath": p} for p in resource.selectable_fields],
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (the policies' CEL) as readable `|` blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def render(document: dict[str, Any]) -> str:
    header = "# Generated from operator/clone_operator/api by `make crds`; do not edit.\n"
    return header + yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True
    )


def rendered_files() -> dict[str, str]:
    """File name → text of everything `kubectl apply -f crds/` installs (one object a file)."""
    files = {f"{GROUP}_{r.plural}.yaml": render(crd(r)) for r in RESOURCES}
    for p in policies.POLICIES:
        files[f"{GROUP}_{p.plural}.policy.yaml"] = render(policies.policy(p))
        files[f"{GROUP}_{p.plural}.policy-binding.yaml"] = render(policies.binding(p))
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the CRDs from the models.")
    parser.add_argument("directory", type=Path, nargs="+")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = []
    for directory in args.directory:
        for name, text in rendered_files().items():
            path = directory / name
            if args.write:
                directory.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
            elif not path.exists() or path.read_text() != text:
                stale.append(str(path))
    if stale:
        print("stale CRDs (run `make crds`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
