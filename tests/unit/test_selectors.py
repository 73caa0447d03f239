"""Label selectors evaluated in memory, as the API server would evaluate them."""

from __future__ import annotations

from typing import Any

import pytest

from clone_operator.builders import selectors

LABELS = {"app": "search", "tier": "backend"}


@pytest.mark.parametrize(
    ("selector", "selected"),
    [
        ({"matchLabels": {"app": "search"}}, True),
        ({"matchLabels": {"app": "search", "tier": "backend"}}, True),
        ({"matchLabels": {"app": "other"}}, False),
        ({"matchLabels": {"missing": "x"}}, False),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["search"]}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["x", "y"]}]}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}, False),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["search"]}]}, False),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["other"]}]}, True),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, False),
        (
            {
                "matchLabels": {"app": "search"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["frontend"]}],
            },
            False,
        ),
        (
            {
                "matchLabels": {"app": "search"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["backend"]}],
            },
            True,
        ),
    ],
)
def test_matches_label_selector(selector: dict[str, Any], selected: bool) -> None:
    assert selectors.matches(selector, LABELS) is selected


@pytest.mark.parametrize(
    "selector", [None, {}, {"matchLabels": {}}, {"matchLabels": None, "matchExpressions": []}]
)
def test_an_empty_selector_selects_nothing(selector: dict[str, Any] | None) -> None:
    assert selectors.matches(selector, LABELS) is False


def test_service_selector_turns_a_map_into_a_label_selector() -> None:
    assert selectors.service_selector({"app": "search"}) == {"matchLabels": {"app": "search"}}
    assert selectors.service_selector(None) == {"matchLabels": {}}
    assert selectors.matches(selectors.service_selector({"app": "search"}), LABELS)
    assert not selectors.matches(selectors.service_selector(None), LABELS)


def test_service_selector_copies_the_map() -> None:
    source = {"app": "search"}
    out = selectors.service_selector(source)
    out["matchLabels"]["app"] = "changed"
    assert source == {"app": "search"}


def test_keys_of_lists_every_key_a_selector_mentions() -> None:
    selector = {
        "matchLabels": {"app": "search"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["backend"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    }
    assert selectors.keys_of(selector) == {"app", "tier", "canary"}
    assert selectors.keys_of(None) == set()
    assert selectors.keys_of({}) == set()
