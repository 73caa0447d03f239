"""Region names: node label values, operator aliases, an allow-list, and the source's majority."""

from __future__ import annotations

import itertools

import pytest

from clone_operator.reconcile.regions import RegionTable, UnknownRegion, majority_region

NODES = frozenset({"us-west-2", "us-east-1", "eu-west-1"})
ALIASES = {"oregon": "us-west-2", "virginia": "us-east-1"}


def resolves(table: RegionTable, name: str) -> bool:
    try:
        table.resolve(name)
    except UnknownRegion:
        return False
    return True


def test_node_label_values_are_region_names_by_default() -> None:
    table = RegionTable(node_regions=NODES, aliases={})
    for region in NODES:
        assert table.resolve(region) == region
    assert table.valid_names() == ["eu-west-1", "us-east-1", "us-west-2"]


def test_aliases_resolve_to_label_values() -> None:
    table = RegionTable(node_regions=NODES, aliases=ALIASES)
    assert table.resolve("oregon") == "us-west-2"
    assert table.resolve("virginia") == "us-east-1"
    assert table.resolve("us-west-2") == "us-west-2"
    assert table.display("us-west-2") == "us-west-2"


def test_unknown_region_message_lists_the_valid_names_sorted() -> None:
    table = RegionTable(node_regions=NODES, aliases=ALIASES)
    with pytest.raises(UnknownRegion) as err:
        table.resolve("mars-1")
    message = str(err.value)
    assert "'mars-1'" in message
    assert message.endswith("valid regions: eu-west-1, oregon, us-east-1, us-west-2, virginia")


def test_unknown_region_without_any_labelled_node_says_so() -> None:
    table = RegionTable(node_regions=frozenset(), aliases={})
    with pytest.raises(UnknownRegion, match="no node has a region label"):
        table.resolve("us-west-2")


def test_region_names_are_case_sensitive_like_labels() -> None:
    table = RegionTable(node_regions=NODES, aliases=ALIASES)
    with pytest.raises(UnknownRegion):
        table.resolve("US-WEST-2")


def test_allowed_list_restricts_label_values() -> None:
    table = RegionTable(node_regions=NODES, aliases={}, allowed=frozenset({"us-west-2"}))
    assert table.resolve("us-west-2") == "us-west-2"
    with pytest.raises(UnknownRegion, match=r"valid regions: us-west-2$"):
        table.resolve("eu-west-1")
    assert table.valid_names() == ["us-west-2"]


def test_allowing_a_label_value_allows_its_alias() -> None:
    table = RegionTable(node_regions=NODES, aliases=ALIASES, allowed=frozenset({"us-west-2"}))
    assert table.resolve("oregon") == "us-west-2"
    with pytest.raises(UnknownRegion):
        table.resolve("virginia")


def test_allowed_alias_resolves() -> None:
    table = RegionTable(node_regions=NODES, aliases=ALIASES, allowed=frozenset({"oregon"}))
    assert table.resolve("oregon") == "us-west-2"
    with pytest.raises(UnknownRegion):
        table.resolve("eu-west-1")


def test_an_alias_to_a_region_without_nodes_is_refused() -> None:
    table = RegionTable(node_regions=NODES, aliases={"tokyo": "ap-northeast-1"})
    with pytest.raises(UnknownRegion):
        table.resolve("tokyo")


CANDIDATES = sorted(NODES | set(ALIASES) | {"tokyo", "ap-northeast-1", "mars-1"})

TABLES = {
    "plain": pytest.param(RegionTable(NODES, ALIASES), id="plain"),
    "allowed-label": pytest.param(
        RegionTable(NODES, ALIASES, frozenset({"us-east-1"})), id="allowed-label"
    ),
    "alias-without-nodes": pytest.param(
        RegionTable(NODES, {**ALIASES, "tokyo": "ap-northeast-1"}), id="alias-without-nodes"
    ),
    "allowed-alias": pytest.param(
        RegionTable(NODES, ALIASES, frozenset({"oregon"})), id="allowed-alias"
    ),
}


@pytest.mark.parametrize("table", TABLES.values())
def test_every_listed_name_resolves(table: RegionTable) -> None:
    listed = table.valid_names()
    assert listed, "a table with labelled nodes lists something"
    assert [n for n in listed if not resolves(table, n)] == []


@pytest.mark.parametrize(
    "table",
    [
        pytest.param(RegionTable(NODES, ALIASES), id="plain"),
        pytest.param(RegionTable(NODES, ALIASES, frozenset({"oregon"})), id="allowed-alias"),
        pytest.param(RegionTable(NODES, ALIASES, frozenset({"us-west-2"})), id="allowed-label"),
    ],
)
def test_every_name_that_resolves_is_listed(table: RegionTable) -> None:
    accepted = [n for n in CANDIDATES if resolves(table, n)]
    assert set(accepted) <= set(table.valid_names())


def test_majority_region_picks_the_most_common() -> None:
    assert majority_region(["a", "b", "b", None, "c"]) == "b"


def test_majority_region_without_known_regions_is_none() -> None:
    assert majority_region([]) is None
    assert majority_region([None, None, ""]) is None


def test_majority_region_ignores_unknown_pods() -> None:
    assert majority_region([None, None, None, "eu-west-1"]) == "eu-west-1"


def test_majority_region_breaks_ties_deterministically() -> None:
    regions = ["us-west-2", "eu-west-1", "us-west-2", "eu-west-1", "ap-south-1"]
    results = {majority_region(p) for p in itertools.permutations(regions)}
    assert results == {"eu-west-1"}
