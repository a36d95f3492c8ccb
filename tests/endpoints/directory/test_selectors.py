"""Selectors on the real Hà Giang tree, and selector parsing without a directory."""

from __future__ import annotations

import pytest

from endpoints.directory import Directory, Tier
from endpoints.selectors import Selector, SelectorError, parse_selector, parse_selectors, validate_selectors


def ids(endpoints) -> list[str]:
    return [ep.id for ep in endpoints]


def test_all_communes_of_meo_vac(hg: Directory) -> None:
    found = hg.select("tier:commune@hg-meo-vac")
    assert len(found) == 18
    assert ids(found) == ids(hg.children("hg-meo-vac"))


def test_whole_tiers(hg: Directory) -> None:
    assert len(hg.select("tier:district")) == 11
    assert len(hg.select(["tier:commune"])) == 195
    assert ids(hg.select("tier:central")) == ["tw"]
    assert len(hg.select("all")) == 211


def test_ep_and_bare_id(hg: Directory) -> None:
    assert ids(hg.select("ep:hg-meo-vac")) == ["hg-meo-vac"]
    assert ids(hg.select("hg-meo-vac")) == ["hg-meo-vac"]


def test_tree_includes_its_root(hg: Directory) -> None:
    found = hg.select("tree:hg-dong-van")
    assert found[0].id == "hg-dong-van"
    assert len(found) == 19


def test_union_is_in_preorder_without_duplicates(hg: Directory) -> None:
    found = hg.select(["tree:hg-meo-vac", "tier:province", "ep:hg-mv-pa-vi", "tw", "tier:commune@hg-meo-vac"])
    assert len(found) == 1 + 4 + 19
    assert len(set(ids(found))) == len(found)
    assert ids(found) == [ep.id for ep in hg if ep.id in set(ids(found))]
    assert ids(found)[:3] == ["tw", "hg-tu", "hg-ubnd"]


def test_subtraction_applies_after_all_additions(hg: Directory) -> None:
    found = hg.select(["-tree:hg-dong-van", "tier:commune"])
    assert len(found) == 195 - 18
    assert not any(ep.parent == "hg-dong-van" for ep in found)


def test_province_wide_briefing_without_central(hg: Directory) -> None:
    assert len(hg.select(["all", "-ep:tw"])) == 210
    assert len(hg.select("tree:hg-ubnd, -tier:commune@hg-hoang-su-phi")) == 1 + 11 + 195 - 25


def test_tier_anchor_at_or_below_tier(hg: Directory) -> None:
    assert ids(hg.select("tier:commune@hg-mv-pa-vi")) == ["hg-mv-pa-vi"]
    assert len(hg.select("tier:commune@hg-ubnd")) == 195
    with pytest.raises(SelectorError, match="tier:province@hg-meo-vac.*no province below district 'hg-meo-vac'"):
        hg.select("tier:province@hg-meo-vac")


@pytest.mark.parametrize(
    ("items", "words"),
    [
        ("tree:hg-nowhere", ["'tree:hg-nowhere'", "unknown endpoint id 'hg-nowhere'"]),
        (["all", "-ep:xyz"], ["'-ep:xyz'", "unknown endpoint id 'xyz'"]),
        ("tier:commune@hg-x", ["unknown endpoint id 'hg-x'"]),
    ],
)
def test_unknown_ids_are_selector_errors(hg: Directory, items, words: list[str]) -> None:
    with pytest.raises(SelectorError) as info:
        hg.select(items)
    for word in words:
        assert word in str(info.value)
    assert isinstance(info.value, ValueError)


def test_validate_selectors_checks_ids_against_the_directory(hg: Directory) -> None:
    parsed = validate_selectors(hg, ["tier:commune@hg-meo-vac", "-ep:hg-mv-pa-vi"])
    assert [str(s) for s in parsed] == ["tier:commune@hg-meo-vac", "-ep:hg-mv-pa-vi"]
    with pytest.raises(SelectorError, match="unknown endpoint id 'hg-mv-nowhere'"):
        validate_selectors(hg, ["all", "-ep:hg-mv-nowhere"])


def test_parse_selector_without_directory() -> None:
    assert parse_selector("tier:commune@hg-meo-vac") == Selector("tier", "hg-meo-vac", Tier.COMMUNE)
    assert parse_selector(" -tree:hg-dong-van ") == Selector("tree", "hg-dong-van", exclude=True)
    assert parse_selector("hg-meo-vac") == Selector("ep", "hg-meo-vac")
    assert parse_selector("all") == Selector("all")
    assert [str(s) for s in parse_selectors("all, -tier:commune")] == ["all", "-tier:commune"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", ["empty selector"]),
        ("-", ["'-'", "empty selector"]),
        ("node:tw", ["'node:tw'", "unknown prefix 'node:'", "ep:, tree:, tier: or all"]),
        ("tier:hamlet", ["'tier:hamlet'", "unknown tier 'hamlet'", "central, province, district or commune"]),
        ("tier:commune@", ["'tier:commune@'", "names no endpoint id"]),
        ("ep:", ["'ep:'", "names no endpoint id"]),
        ("tree:HG_X", ["'tree:HG_X'", "'HG_X' is not a valid endpoint id"]),
    ],
)
def test_parse_errors_name_the_selector(text: str, words: list[str]) -> None:
    with pytest.raises(SelectorError) as info:
        parse_selector(text)
    for word in words:
        assert word in str(info.value)


def test_list_errors() -> None:
    with pytest.raises(SelectorError, match="empty selector list"):
        parse_selectors([])
    with pytest.raises(SelectorError, match="only subtractions"):
        parse_selectors(["-tree:hg-dong-van"])
    with pytest.raises(SelectorError, match="must be a string"):
        parse_selectors([42])  # type: ignore[list-item]
