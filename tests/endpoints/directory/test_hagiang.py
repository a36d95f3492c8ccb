"""The sample Hà Giang directory (config/hagiang.yaml) and the Directory API on it."""

from __future__ import annotations

import unicodedata

import pytest

from endpoints.directory import Directory, Kind, Link, Tier, UnknownEndpointError

COMMUNES_PER_DISTRICT = {
    "hg-hoang-su-phi": 25,
    "hg-vi-xuyen": 24,
    "hg-meo-vac": 18,
    "hg-dong-van": 18,
    "hg-yen-minh": 17,
    "hg-quang-binh": 16,
    "hg-bac-me": 14,
    "hg-quan-ba": 13,
    "hg-bac-quang": 23,
    "hg-xin-man": 19,
    "hg-tp-ha-giang": 8,
}


def test_loads_211_endpoints_in_four_tiers(hg: Directory) -> None:
    assert hg.name == "Hà Giang"
    assert len(hg) == 211
    counts = {tier: len(hg.by_tier(tier)) for tier in Tier}
    assert counts == {Tier.CENTRAL: 1, Tier.PROVINCE: 4, Tier.DISTRICT: 11, Tier.COMMUNE: 195}


def test_single_central_root_and_provincial_endpoints(hg: Directory) -> None:
    assert [ep.id for ep in hg.roots()] == ["tw"]
    assert hg.get("tw").name == "Trung ương"
    names = {ep.name for ep in hg.children("tw")}
    assert names == {"Tỉnh ủy Hà Giang", "UBND tỉnh Hà Giang", "Sở Thông tin và Truyền thông", "Sở Tài chính"}


def test_districts_hang_under_the_provincial_peoples_committee(hg: Directory) -> None:
    assert {ep.id for ep in hg.children("hg-ubnd")} == set(COMMUNES_PER_DISTRICT)
    assert all(ep.parent == "hg-ubnd" for ep in hg.by_tier("district"))


@pytest.mark.parametrize(("district", "count"), sorted(COMMUNES_PER_DISTRICT.items()))
def test_commune_count_per_district(hg: Directory, district: str, count: int) -> None:
    children = hg.children(district)
    assert len(children) == count
    assert all(ep.tier is Tier.COMMUNE for ep in children)


def test_diacritics_are_kept_as_nfc_text(hg: Directory) -> None:
    assert hg.get("hg-meo-vac").name == "Huyện Mèo Vạc"
    assert hg.get("hg-dv-lung-cu").name == "Xã Lũng Cú"
    assert hg.get("hg-hsp-ngam-dang-vai").name == "Xã Ngàm Đăng Vài"
    assert all(unicodedata.is_normalized("NFC", ep.name) for ep in hg)
    assert hg.get("hg-meo-vac").to_dict()["name"].encode("utf-8") == "Huyện Mèo Vạc".encode("utf-8")


def test_commune_names_are_unique_within_a_district(hg: Directory) -> None:
    for district in COMMUNES_PER_DISTRICT:
        names = [ep.name for ep in hg.children(district)]
        assert len(names) == len(set(names)), district


def test_links_and_kinds(hg: Directory) -> None:
    communes = hg.by_tier("commune")
    assert {ep.kind for ep in communes} == {Kind.ROOM_TERMINAL}
    mobile = [ep for ep in communes if ep.link is Link.MOBILE]
    assert len(mobile) == 15
    assert all(ep.link is Link.FIBRE for ep in hg if ep.tier is not Tier.COMMUNE)
    assert hg.get("hg-dv-dong-van").link is Link.FIBRE  # district-seat township
    assert hg.get("hg-dv-ma-le").link is Link.THIN  # tier default
    assert hg.get("tw").kind is Kind.STUDIO


def test_credentials_default_to_slug_and_id_and_are_unique(hg: Directory) -> None:
    assert hg.get("hg-meo-vac").credential == "hagiang/hg-meo-vac"
    assert len({ep.credential for ep in hg}) == 211


def test_preorder_parent_before_children_in_file_order(hg: Directory) -> None:
    order = [ep.id for ep in hg]
    pos = {ep_id: i for i, ep_id in enumerate(order)}
    assert order[:2] == ["tw", "hg-tu"]
    assert all(pos[ep.parent] < pos[ep.id] for ep in hg if ep.parent)
    dv = order.index("hg-dong-van")
    assert order[dv + 1 : dv + 4] == ["hg-dv-dong-van", "hg-dv-pho-bang", "hg-dv-lung-cu"]


def test_ancestors_nearest_first(hg: Directory) -> None:
    assert [ep.id for ep in hg.ancestors("hg-mv-pa-vi")] == ["hg-meo-vac", "hg-ubnd", "tw"]
    assert hg.ancestors("tw") == []


def test_subtree_includes_itself_and_is_contiguous(hg: Directory) -> None:
    tree = hg.subtree("hg-meo-vac")
    assert tree[0].id == "hg-meo-vac"
    assert len(tree) == 19
    assert {ep.id for ep in tree[1:]} == {ep.id for ep in hg.children("hg-meo-vac")}
    assert len(hg.subtree("hg-ubnd")) == 1 + 11 + 195
    assert [ep.id for ep in hg.subtree("hg-mv-pa-vi")] == ["hg-mv-pa-vi"]


def test_district_of(hg: Directory) -> None:
    assert hg.district_of("hg-mv-pa-vi").id == "hg-meo-vac"
    assert hg.district_of("hg-meo-vac").id == "hg-meo-vac"
    assert hg.district_of("hg-ubnd") is None
    assert hg.district_of("tw") is None


def test_unknown_id_names_the_id(hg: Directory) -> None:
    assert "xyz" not in hg
    for call in (hg.get, hg.children, hg.ancestors, hg.subtree, hg.district_of):
        with pytest.raises(UnknownEndpointError, match="unknown endpoint id 'xyz'"):
            call("xyz")


def test_by_tier_rejects_unknown_tier(hg: Directory) -> None:
    with pytest.raises(ValueError, match="unknown tier 'hamlet': use central, province, district or commune"):
        hg.by_tier("hamlet")


def test_tier_rank_and_parent_tier() -> None:
    assert [t.rank for t in Tier] == [0, 1, 2, 3]
    assert Tier.COMMUNE.above is Tier.DISTRICT
    assert Tier.CENTRAL.above is None
