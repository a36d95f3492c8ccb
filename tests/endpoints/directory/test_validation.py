"""Every kind of mistake in a directory file: file name, exact line and the key words of the message."""

from __future__ import annotations

from pathlib import Path

import pytest

from endpoints.directory import Directory, DirectoryError, Endpoint, Kind, Link, Tier, load_directory, parse_directory

# A valid 4-tier chain in block style: each key on its own line, so tests can aim at exact lines.
GOOD = """\
version: 1
name: "Thử nghiệm"
endpoints:
  - id: tw
    name: "Trung ương"
    tier: central
    kind: studio
    link: fibre
  - id: hg-ubnd
    parent: tw
    name: "UBND tỉnh"
    tier: province
    kind: room_terminal
    link: fibre
  - id: hg-meo-vac
    parent: hg-ubnd
    name: "Mèo Vạc"
    tier: district
    kind: room_terminal
    link: fibre
  - id: hg-mv-pa-vi
    parent: hg-meo-vac
    name: "Xã Pả Vi"
    tier: commune
    kind: room_terminal
    link: thin
"""


def edited(
    replace: dict[int, str] | None = None, insert: dict[int, str] | None = None, drop: tuple[int, ...] = ()
) -> str:
    """GOOD with lines replaced or dropped, and text inserted before a line; numbers are GOOD's."""
    replace, insert = replace or {}, insert or {}
    out: list[str] = []
    for n, line in enumerate(GOOD.splitlines(), start=1):
        if n in insert:
            out.append(insert[n])
        if n not in drop:
            out.append(replace.get(n, line))
    if len(GOOD.splitlines()) + 1 in insert:  # appending after the last line
        out.append(insert[len(GOOD.splitlines()) + 1])
    return "\n".join(out) + "\n"


def mistake(tmp_path: Path, text: str, line: int, *words: str) -> DirectoryError:
    """Load text from a file and check the first error's file, line, str() form and key words."""
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DirectoryError) as info:
        load_directory(path)
    err = info.value
    assert (err.file, err.line) == (str(path), line), str(err)
    assert str(err) == f"{path}:{line}: {err.message}"
    for word in words:
        assert word in err.message, err.message
    return err


def test_good_file_loads() -> None:
    d = parse_directory(GOOD)
    assert [ep.id for ep in d] == ["tw", "hg-ubnd", "hg-meo-vac", "hg-mv-pa-vi"]
    assert d.get("hg-meo-vac").name == "Mèo Vạc"
    assert d.get("hg-mv-pa-vi").credential == "hg-mv-pa-vi"  # no slug: the bare id


def test_malformed_yaml_uses_the_parser_mark(tmp_path: Path) -> None:
    mistake(tmp_path, edited({17: "    name: Mèo: Vạc"}), 17, "malformed YAML", "mapping values are not allowed")


def test_malformed_yaml_bad_indentation(tmp_path: Path) -> None:
    mistake(tmp_path, edited({18: "   tier: district"}), 18, "malformed YAML")


def test_empty_file(tmp_path: Path) -> None:
    mistake(tmp_path, "", 1, "empty")
    mistake(tmp_path, "# only a comment\n", 1, "empty")


def test_not_a_mapping(tmp_path: Path) -> None:
    mistake(tmp_path, "- tw\n- hg-ubnd\n", 1, "the file must be a mapping", "got a list")


def test_unknown_top_level_key(tmp_path: Path) -> None:
    mistake(
        tmp_path,
        edited(insert={3: "province: hagiang"}),
        3,
        "unknown key 'province'",
        "version, name, slug, defaults or endpoints",
    )


def test_unknown_item_key(tmp_path: Path) -> None:
    err = mistake(tmp_path, edited(insert={20: "    colour: red"}), 20, "unknown key 'colour'", "endpoint 'hg-meo-vac'")
    assert "id, name, tier, kind, link, parent, credential or sip" in err.message


def test_duplicate_key_in_item(tmp_path: Path) -> None:
    mistake(tmp_path, edited(insert={21: "    name: again"}), 21, "duplicate key 'name'", "first at line 17")


def test_missing_item_key(tmp_path: Path) -> None:
    mistake(tmp_path, edited(drop=(23,)), 21, "missing required key 'name'", "endpoint 'hg-mv-pa-vi'")


def test_missing_kind_without_default_says_so(tmp_path: Path) -> None:
    mistake(tmp_path, edited(drop=(25,)), 21, "missing required key 'kind'", "no default for tier commune")


def test_missing_top_level_key(tmp_path: Path) -> None:
    mistake(tmp_path, edited(drop=(2,)), 1, "missing required key 'name' at the top level")


def test_wrong_type_name(tmp_path: Path) -> None:
    mistake(
        tmp_path, edited({17: "    name: 42"}), 17, "'name' of endpoint 'hg-meo-vac' must be a string", "got an integer"
    )


def test_wrong_type_endpoints(tmp_path: Path) -> None:
    mistake(tmp_path, "version: 1\nname: x\nendpoints:\n  tw: {}\n", 4, "'endpoints' must be a list", "got a mapping")


def test_wrong_type_item(tmp_path: Path) -> None:
    mistake(tmp_path, edited(insert={4: "  - tw"}), 4, "endpoint #1 must be a mapping", "got a string")


def test_wrong_type_version(tmp_path: Path) -> None:
    mistake(tmp_path, edited({1: 'version: "1"'}), 1, "'version' must be an integer", "got a string")


def test_unknown_version(tmp_path: Path) -> None:
    mistake(tmp_path, edited({1: "version: 2"}), 1, "unknown version 2", "reads version 1")


def test_bad_id(tmp_path: Path) -> None:
    mistake(tmp_path, edited({21: "  - id: HG_Pa_Vi"}), 21, "bad id 'HG_Pa_Vi'", "a-z, 0-9 and '-'")
    mistake(tmp_path, edited({21: "  - id: x"}), 21, "bad id 'x'", "2-64 characters")


def test_bad_enum_tier(tmp_path: Path) -> None:
    mistake(
        tmp_path,
        edited({24: "    tier: hamlet"}),
        24,
        "unknown tier 'hamlet'",
        "central, province, district or commune",
    )


def test_bad_enum_kind_and_link(tmp_path: Path) -> None:
    mistake(tmp_path, edited({25: "    kind: tv"}), 25, "unknown kind 'tv'", "room_terminal, laptop or studio")
    mistake(tmp_path, edited({26: "    link: satellite"}), 26, "unknown link 'satellite'", "fibre, thin or mobile")


def test_empty_name(tmp_path: Path) -> None:
    mistake(tmp_path, edited({23: '    name: "   "'}), 23, "'name' of endpoint 'hg-mv-pa-vi' must not be empty")


def test_duplicate_id_says_where_the_first_was(tmp_path: Path) -> None:
    mistake(tmp_path, edited({21: "  - id: hg-meo-vac"}), 21, "duplicate id 'hg-meo-vac'", "first defined at line 15")


def test_unknown_parent(tmp_path: Path) -> None:
    err = mistake(
        tmp_path, edited({22: "    parent: hg-meo-vc"}), 22, "unknown parent 'hg-meo-vc'", "endpoint 'hg-mv-pa-vi'"
    )
    assert "did you mean 'hg-meo-vac'" in err.message


def test_cycle_names_its_members(tmp_path: Path) -> None:
    mistake(
        tmp_path, edited({16: "    parent: hg-mv-pa-vi"}), 16, "parent cycle", "hg-meo-vac -> hg-mv-pa-vi -> hg-meo-vac"
    )


def test_self_parent_is_a_cycle(tmp_path: Path) -> None:
    mistake(tmp_path, edited({22: "    parent: hg-mv-pa-vi"}), 22, "parent cycle: hg-mv-pa-vi -> hg-mv-pa-vi")


def test_bad_tier_order(tmp_path: Path) -> None:
    mistake(
        tmp_path,
        edited({22: "    parent: hg-ubnd"}),
        22,
        "commune 'hg-mv-pa-vi' cannot be a child of province 'hg-ubnd': a commune's parent must be a district",
    )


def test_root_must_be_central(tmp_path: Path) -> None:
    mistake(tmp_path, edited(drop=(16,)), 15, "missing required key 'parent'", "only central endpoints are roots")


def test_central_cannot_have_a_parent(tmp_path: Path) -> None:
    text = edited(
        insert={27: '  - {id: tw-2, name: "B", tier: central, kind: studio, link: fibre, parent: hg-meo-vac}'}
    )
    mistake(
        tmp_path, text, 27, "central 'tw-2' cannot be a child of district 'hg-meo-vac'", "central endpoints are roots"
    )


def test_several_central_roots_are_allowed() -> None:
    d = parse_directory(edited(insert={27: '  - {id: tw-2, name: "Bộ B", tier: central, kind: studio, link: fibre}'}))
    assert [ep.id for ep in d.roots()] == ["tw", "tw-2"]
    assert [ep.id for ep in d][-1] == "tw-2"


def test_empty_endpoint_list(tmp_path: Path) -> None:
    mistake(tmp_path, "version: 1\nname: x\nendpoints: []\n", 3, "'endpoints' is empty")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(GOOD.replace("Mèo Vạc", "Meo Vac è").encode("utf-8").replace("è".encode(), b"\xe8"))
    with pytest.raises(DirectoryError) as info:
        load_directory(path)
    assert (info.value.file, info.value.line) == (str(path), 17)
    assert "not valid UTF-8" in info.value.message


def test_all_mistakes_are_collected_in_file_order(tmp_path: Path) -> None:
    text = edited({26: "    link: satellite", 17: "    name: 42", 10: "    parent: nowhere-x"})
    err = mistake(tmp_path, text, 10, "unknown parent 'nowhere-x'")
    assert [e.line for e in err.errors] == [10, 17, 26]
    assert err.report().count("bad.yaml:") == 3


def test_children_of_a_broken_item_are_not_blamed_again(tmp_path: Path) -> None:
    err = mistake(tmp_path, edited({18: "    tier: town"}), 18, "unknown tier 'town'")
    assert len(err.errors) == 1


def test_defaults_fill_kind_and_link_per_tier() -> None:
    text = edited(insert={3: "defaults:\n  commune: {kind: laptop, link: mobile}"}, drop=(25, 26))
    ep = parse_directory(text).get("hg-mv-pa-vi")
    assert (ep.kind, ep.link) == (Kind.LAPTOP, Link.MOBILE)


def test_bad_default_value(tmp_path: Path) -> None:
    text = edited(insert={3: "defaults:\n  commune: {kind: laptop, link: cable}"})
    mistake(tmp_path, text, 4, "'defaults.commune.link'", "unknown link 'cable'")
    text = edited(insert={3: "defaults:\n  hamlet: {kind: laptop}"})
    mistake(tmp_path, text, 4, "unknown key 'hamlet' in 'defaults'", "central, province, district or commune")


def test_credential_reference_rules(tmp_path: Path) -> None:
    d = parse_directory(edited(insert={3: "slug: hagiang", 27: "    credential: shared/pa-vi"}))
    assert d.get("tw").credential == "hagiang/tw"
    assert d.get("hg-mv-pa-vi").credential == "shared/pa-vi"
    text = edited(insert={3: "slug: hagiang", 27: "    credential: hagiang/tw"})
    mistake(tmp_path, text, 28, "credential 'hagiang/tw' of endpoint 'hg-mv-pa-vi' is already used by endpoint 'tw'")


def test_programmatic_directory_runs_the_same_checks() -> None:
    tw = Endpoint("tw", "Trung ương", Tier.CENTRAL, Kind.STUDIO, Link.FIBRE, None, "tw")
    commune = Endpoint("hg-x", "Xã X", Tier.COMMUNE, Kind.ROOM_TERMINAL, Link.THIN, "tw", "hg-x")
    assert len(Directory("ok", [tw])) == 1
    with pytest.raises(DirectoryError) as info:
        Directory("bad", [tw, commune])
    assert str(info.value) == (
        "<endpoints>:2: commune 'hg-x' cannot be a child of central 'tw': a commune's parent must be a district"
    )
