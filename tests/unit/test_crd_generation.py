"""The CRDs generated from the pydantic models: structural, complete, bounded and committed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from clone_operator.api import cloneobjects, cloningoperations, crds
from clone_operator.api.cloningoperations import CopyMethod, Phase

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "crds"
GENERATED = {r.kind: crds.crd(r) for r in crds.RESOURCES}
KINDS = sorted(GENERATED)
SCALAR_TYPES = {"string", "integer", "number", "boolean"}
FORBIDDEN_KEYS = {
    "$ref",
    "$defs",
    "definitions",
    "anyOf",
    "allOf",
    "oneOf",
    "not",
    "title",
    "const",
}
BOUNDED_FORMATS = {"date-time", "date", "duration"}


def root_schema(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = GENERATED[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def version(kind: str) -> dict[str, Any]:
    v: dict[str, Any] = GENERATED[kind]["spec"]["versions"][0]
    return v


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with a readable path (`.spec.x`, `[]` for items, `{}` for map values)."""
    yield path or ".", schema
    for name, sub in (schema.get("properties") or {}).items():
        yield from nodes(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}{{}}")


def contains_none(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(contains_none(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_none(v) for v in value)
    return False


def resolve(kind: str, json_path: str) -> dict[str, Any]:
    node = root_schema(kind)
    for part in json_path.lstrip(".").split("."):
        node = node["properties"][part]
    return node


# --- structural schemas ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_node_has_a_type_or_preserves_unknown_fields(kind: str) -> None:
    untyped = [
        p
        for p, n in nodes(root_schema(kind))
        if "type" not in n and not n.get("x-kubernetes-preserve-unknown-fields")
    ]
    assert untyped == []


@pytest.mark.parametrize("kind", KINDS)
def test_no_non_structural_keywords(kind: str) -> None:
    bad = [(p, sorted(FORBIDDEN_KEYS & n.keys())) for p, n in nodes(root_schema(kind))]
    assert [b for b in bad if b[1]] == []


@pytest.mark.parametrize("kind", KINDS)
def test_no_null_defaults_or_nullable(kind: str) -> None:
    for path, node in nodes(root_schema(kind)):
        assert "nullable" not in node, path
        if "default" in node:
            assert not contains_none(node["default"]), path


@pytest.mark.parametrize("kind", KINDS)
def test_preserve_unknown_fields_only_on_objects(kind: str) -> None:
    for path, node in nodes(root_schema(kind)):
        if node.get("x-kubernetes-preserve-unknown-fields"):
            assert node["type"] == "object", path
            assert "additionalProperties" not in node, path


@pytest.mark.parametrize("kind", KINDS)
def test_list_types_are_consistent(kind: str) -> None:
    for path, node in nodes(root_schema(kind)):
        list_type = node.get("x-kubernetes-list-type")
        if list_type is None:
            continue
        assert node["type"] == "array", path
        if list_type == "set":
            assert node["items"]["type"] in SCALAR_TYPES, path
        if list_type == "map":
            keys = node["x-kubernetes-list-map-keys"]
            item = node["items"]
            for key in keys:
                assert key in item.get("required", []) or "default" in item["properties"][key]


@pytest.mark.parametrize("kind", KINDS)
def test_required_fields_exist(kind: str) -> None:
    for path, node in nodes(root_schema(kind)):
        for name in node.get("required", []):
            assert name in node.get("properties", {}), f"{path}.{name}"


@pytest.mark.parametrize("kind", KINDS)
def test_root_shape(kind: str) -> None:
    root = root_schema(kind)
    assert root["type"] == "object"
    assert root["required"] == ["spec"]
    assert root["properties"]["metadata"] == {"type": "object"}
    assert set(root["properties"]) == {"apiVersion", "kind", "metadata", "spec", "status"}
    assert version(kind)["subresources"] == {"status": {}}
    assert version(kind)["name"] == "v1alpha1"
    assert version(kind)["served"] is True
    assert version(kind)["storage"] is True


@pytest.mark.parametrize("kind", KINDS)
def test_descriptions_are_single_line_and_present_on_top_level_fields(kind: str) -> None:
    for path, node in nodes(root_schema(kind)):
        if "description" in node:
            assert "\n" not in node["description"], path
    for part in ("spec", "status"):
        for name, node in root_schema(kind)["properties"][part]["properties"].items():
            assert node.get("description"), f"{part}.{name} has no description"


# --- names, columns, fields ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "plural", "short_names"),
    [
        ("CloningOperation", "cloningoperations", ["cop", "cloneop"]),
        ("CloneObject", "cloneobjects", ["clo"]),
    ],
)
def test_names_follow_the_design(kind: str, plural: str, short_names: list[str]) -> None:
    crd = GENERATED[kind]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{plural}.cloning.dev"
    assert crd["spec"]["group"] == "cloning.dev"
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"] == {
        "kind": kind,
        "listKind": f"{kind}List",
        "plural": plural,
        "singular": kind.lower(),
        "shortNames": short_names,
        "categories": ["cloning"],
    }


@pytest.mark.parametrize("kind", KINDS)
def test_printer_columns_point_at_real_fields(kind: str) -> None:
    columns = version(kind)["additionalPrinterColumns"]
    assert columns[-1] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    names = [c["name"] for c in columns]
    assert len(names) == len(set(names))
    for column in columns[:-1]:
        node = resolve(kind, column["jsonPath"])
        assert column["type"] == node["type"] == "string", column


def test_operation_columns_show_phase_source_target_and_readiness() -> None:
    columns = {c["name"]: c for c in version("CloningOperation")["additionalPrinterColumns"]}
    assert columns["Phase"]["jsonPath"] == ".status.phase"
    assert columns["Source"]["jsonPath"] == ".spec.sourceCluster"
    assert columns["Target"]["jsonPath"] == ".status.targetCluster"
    assert columns["Ready"]["jsonPath"] == ".status.ready"
    for wide in ("Region", "Version", "Reason"):
        assert columns[wide]["priority"] == 1
    for default in ("Phase", "Source", "Target", "Ready", "Age"):
        assert "priority" not in columns[default]


def test_clone_object_columns_show_kind_source_destination_and_state() -> None:
    paths = [c["jsonPath"] for c in version("CloneObject")["additionalPrinterColumns"]]
    assert paths[:4] == [
        ".spec.source.kind",
        ".spec.source.name",
        ".status.destination.name",
        ".status.state",
    ]


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("CloningOperation", [".spec.sourceCluster", ".status.phase"]),
        ("CloneObject", [".spec.source.kind", ".status.state"]),
    ],
)
def test_selectable_fields(kind: str, fields: list[str]) -> None:
    selectable = version(kind)["selectableFields"]
    assert selectable == [{"jsonPath": f} for f in fields]
    for field in fields:
        assert resolve(kind, field)["type"] in SCALAR_TYPES


# --- values, defaults, enums -----------------------------------------------------------------------


def test_operation_spec_defaults_and_enums() -> None:
    spec = root_schema("CloningOperation")["properties"]["spec"]
    props = spec["properties"]
    assert spec["required"] == ["sourceCluster"]
    assert props["copyMethod"]["enum"] == [m.value for m in CopyMethod]
    assert props["copyMethod"]["default"] == "Auto"
    assert props["cancel"] == {**props["cancel"], "type": "boolean", "default": False}
    assert props["timeoutSeconds"]["minimum"] == 30
    assert props["targetName"]["maxLength"] == 52
    assert props["notificationEmailAddresses"]["maxItems"] == 20


def test_status_phase_enum_is_the_phase_enum() -> None:
    phase = root_schema("CloningOperation")["properties"]["status"]["properties"]["phase"]
    assert phase["type"] == "string"
    assert phase["enum"] == [p.value for p in Phase]
    state = root_schema("CloneObject")["properties"]["status"]["properties"]["state"]
    assert state["enum"] == [s.value for s in cloneobjects.State]


def test_timestamps_are_date_time_strings() -> None:
    status = root_schema("CloningOperation")["properties"]["status"]["properties"]
    for name in ("createdAt", "startedAt", "updatedAt", "completedAt"):
        assert (status[name]["type"], status[name]["format"]) == ("string", "date-time")


def test_clone_object_source_kind_rule_lists_every_supported_kind() -> None:
    kind = resolve("CloneObject", ".spec.source.kind")
    rule = kind["x-kubernetes-validations"][0]["rule"]
    for k in cloneobjects.SourceKind:
        assert f"'{k.value}'" in rule


def test_every_spec_field_but_cancel_is_immutable() -> None:
    spec = root_schema("CloningOperation")["properties"]["spec"]
    rules = [r["rule"] for r in spec["x-kubernetes-validations"]]
    immutable = {m.group(1) for r in rules for m in [re.match(r"^has\(self\.(\w+)\) ==", r)] if m}
    assert immutable == set(spec["properties"]) - {"cancel"}


@pytest.mark.parametrize("kind", KINDS)
def test_field_paths_of_rules_exist(kind: str) -> None:
    for path, node in nodes(root_schema(kind)):
        for rule in node.get("x-kubernetes-validations", []):
            if "fieldPath" in rule:
                target = node
                for part in rule["fieldPath"].lstrip(".").split("."):
                    target = target["properties"][part]
                assert target, (path, rule)
            assert ("message" in rule) or ("messageExpression" in rule), (path, rule)


# --- CEL cost: everything a rule can reach is bounded ---------------------------------------------


def unbounded_under(schema: dict[str, Any], path: str) -> list[str]:
    out = []
    for p, node in nodes(schema, path):
        t = node.get("type")
        string_ok = "maxLength" in node or "enum" in node or node.get("format") in BOUNDED_FORMATS
        is_map = isinstance(node.get("additionalProperties"), dict)
        if (
            (t == "string" and not string_ok)
            or (t == "array" and "maxItems" not in node)
            or (t == "object" and is_map and "maxProperties" not in node)
        ):
            out.append(p)
    return out


def unbounded_reachable_by_rules(kind: str) -> list[str]:
    found: set[str] = set()
    for path, node in nodes(root_schema(kind)):
        if path == ".":
            continue  # root rules: see test_root_rules_only_touch_bounded_fields
        if node.get("x-kubernetes-validations"):
            found.update(unbounded_under(node, "" if path == "." else path))
    return sorted(found)


KNOWN_UNBOUNDED: dict[str, list[str]] = {"CloningOperation": [], "CloneObject": []}


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("CloningOperation"),
        "CloneObject",
    ],
)
def test_every_string_and_array_reachable_by_a_rule_is_bounded(kind: str) -> None:
    assert unbounded_reachable_by_rules(kind) == []


@pytest.mark.parametrize("kind", KINDS)
def test_no_other_unbounded_field_is_reachable_by_a_rule(kind: str) -> None:
    """Regression guard: no unbounded field beyond the known list (now empty)."""
    assert set(unbounded_reachable_by_rules(kind)) <= set(KNOWN_UNBOUNDED[kind])


def test_root_rules_only_touch_bounded_fields() -> None:
    root = root_schema("CloningOperation")
    referenced = {
        m
        for rule in root["x-kubernetes-validations"]
        for text in (rule["rule"], rule.get("messageExpression", ""))
        for m in re.findall(r"(?:self|oldSelf)\.(\w+\.\w+)", text)
    }
    assert referenced == {"spec.cancel", "status.phase"}
    assert resolve("CloningOperation", ".spec.cancel")["type"] == "boolean"
    assert "enum" in resolve("CloningOperation", ".status.phase")


# --- committed files ------------------------------------------------------------------------------


def test_committed_crds_equal_the_generator_output() -> None:
    for name, text in crds.rendered_files().items():
        path = CRD_DIR / name
        assert path.exists(), f"{path} missing; run `make crds`"
        assert path.read_text() == text, f"{path} is stale; run `make crds`"


def test_generated_yaml_parses_back_to_the_crd() -> None:
    for resource in crds.RESOURCES:
        assert yaml.safe_load(crds.render(crds.crd(resource))) == crds.crd(resource)


def test_generator_check_mode_detects_stale_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert crds.main([str(tmp_path), "--write"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(crds.rendered_files())
    assert crds.main([str(tmp_path), "--check"]) == 0
    stale = tmp_path / "cloning.dev_cloneobjects.yaml"
    stale.write_text(stale.read_text() + "# edited\n")
    assert crds.main([str(tmp_path), "--check"]) == 1
    assert "cloning.dev_cloneobjects.yaml" in capsys.readouterr().err


def test_resources_cover_both_kinds() -> None:
    assert [r.kind for r in crds.RESOURCES] == [cloningoperations.KIND, cloneobjects.KIND]
