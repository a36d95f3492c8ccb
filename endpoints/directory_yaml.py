"""Reads the directory YAML (version 1) into placed endpoints, reporting mistakes with file:line.

Format::

    version: 1                 # required, the only version this program reads
    name: "Hà Giang"           # required, display name
    slug: hagiang              # optional; prefixes default credential references
    defaults:                  # optional, per tier: kind and link used when an item omits them
      commune: {kind: room_terminal, link: thin}
    endpoints:                 # required, flat list; parents may appear before or after children
      - {id: tw, name: "Trung ương", tier: central, kind: studio, link: fibre}
      - {id: hg-ubnd, parent: tw, tier: province, ...}
        # optional per item: sip: {uri: ..., ...} for a SIP room system (see endpoints.sip_yaml)

Credential references: an item's ``credential`` if given, else ``<slug>/<id>`` when the file has a
slug, else the bare id. Every credential must be unique (see ``endpoints.tree``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from yaml.nodes import MappingNode, Node

from endpoints.model import (
    CREDENTIAL_PATTERN,
    CREDENTIAL_RULE,
    ID_RULE,
    Endpoint,
    Kind,
    Link,
    Tier,
    is_valid_id,
)
from endpoints.sip_yaml import read_sip
from endpoints.tree import Placed, check_tree
from endpoints.yaml_lines import Problems, Stop, as_int, as_list, as_mapping, as_str, compose, entries, line_of

VERSION = 1
TOP_KEYS = ("version", "name", "slug", "defaults", "endpoints")
ITEM_KEYS = ("id", "name", "tier", "kind", "link", "parent", "credential", "sip")
DEFAULT_KEYS = ("kind", "link")
REQUIRED = ("id", "name", "tier", "kind", "link")
MAX_NAME = 200

Defaults = dict[Tier, dict[str, str]]


@dataclass(frozen=True, slots=True)
class DirectoryFile:
    name: str
    placed: list[Placed]


def read_directory(text: str, filename: str) -> DirectoryFile:
    """Parse and validate a whole file; raises DirectoryError (the first mistake, all in .errors)."""
    problems = Problems(filename)
    result = None
    try:
        result = _read(text, problems)
    except Stop:
        pass
    problems.raise_if_any()
    assert result is not None
    return result


def _read(text: str, problems: Problems) -> DirectoryFile:
    root = as_mapping(compose(text, problems), "the file", problems)
    if root is None:
        raise Stop
    top = {key: value for key, _, value in entries(root, TOP_KEYS, "the top level", problems)}
    for key in ("version", "name", "endpoints"):
        if key not in top:
            problems.add(line_of(root), f"missing required key {key!r} at the top level")
    if "version" not in top:
        raise Stop
    _check_version(top["version"], problems)
    name = _display_name(top["name"], "the directory 'name'", problems) if "name" in top else None
    slug = _slug(top["slug"], problems) if "slug" in top else None
    defaults = _defaults(top["defaults"], problems) if "defaults" in top else {}
    placed, broken = _items(top.get("endpoints"), slug, defaults, problems)
    check_tree(placed, broken, problems)
    return DirectoryFile(name or "", placed)


def _check_version(node: Node, problems: Problems) -> None:
    version = as_int(node, "'version'", problems)
    if version is None:
        raise Stop
    if version != VERSION:
        raise problems.stop(line_of(node), f"unknown version {version}: this program reads version {VERSION}")


def _display_name(node: Node, what: str, problems: Problems) -> str | None:
    """NFC-normalised and stripped: the same Vietnamese name typed on two keyboards compares equal."""
    text = as_str(node, what, problems)
    if text is None:
        return None
    text = unicodedata.normalize("NFC", text).strip()
    if not text:
        problems.add(line_of(node), f"{what} must not be empty")
        return None
    if len(text) > MAX_NAME:
        problems.add(line_of(node), f"{what} is longer than {MAX_NAME} characters")
        return None
    return text


def _slug(node: Node, problems: Problems) -> str | None:
    text = as_str(node, "'slug'", problems)
    if text is not None and not is_valid_id(text):
        problems.add(line_of(node), f"bad slug {text!r}: use {ID_RULE}")
        return None
    return text


def _choice(node: Node, what: str, parse: Callable[[str], object], problems: Problems) -> str | None:
    text = as_str(node, what, problems)
    if text is None:
        return None
    try:
        return str(parse(text))
    except ValueError as exc:
        problems.add(line_of(node), f"{what}: {exc}")
        return None


def _defaults(node: Node, problems: Problems) -> Defaults:
    result: Defaults = {}
    mapping = as_mapping(node, "'defaults'", problems)
    if mapping is None:
        return result
    for key, _, value in entries(mapping, tuple(Tier), "'defaults'", problems):
        tier = Tier(key)
        per_tier = as_mapping(value, f"'defaults.{key}'", problems)
        if per_tier is None:
            continue
        result[tier] = {}
        for field, _, field_node in entries(per_tier, DEFAULT_KEYS, f"'defaults.{key}'", problems):
            parse = Kind.parse if field == "kind" else Link.parse
            chosen = _choice(field_node, f"'defaults.{key}.{field}'", parse, problems)
            if chosen is not None:
                result[tier][field] = chosen
    return result


def _items(
    node: Node | None, slug: str | None, defaults: Defaults, problems: Problems
) -> tuple[list[Placed], set[str]]:
    """Every readable item; ``broken`` collects ids of items that had mistakes of their own."""
    placed: list[Placed] = []
    broken: set[str] = set()
    seq = as_list(node, "'endpoints'", problems) if node is not None else None
    if seq is None:
        return placed, broken
    if not seq.value:
        problems.add(line_of(seq), "'endpoints' is empty: a directory needs at least one central endpoint")
    for index, item in enumerate(seq.value, start=1):
        before = len(problems.found)
        result = _item(item, index, slug, defaults, problems)
        if result is not None and len(problems.found) == before:
            placed.append(result)
        elif isinstance(item, MappingNode):
            broken.update(_peek_id(item))
    return placed, broken


def _peek_id(item: MappingNode) -> list[str]:
    return [v.value for k, v in item.value if getattr(k, "value", None) == "id" and isinstance(v.value, str)]


def _item(node: Node, index: int, slug: str | None, defaults: Defaults, problems: Problems) -> Placed | None:
    mapping = as_mapping(node, f"endpoint #{index}", problems)
    if mapping is None:
        return None
    peek = _peek_id(mapping)
    where = f"endpoint {peek[0]!r}" if peek else f"endpoint #{index}"
    fields = {key: (key_node, value) for key, key_node, value in entries(mapping, ITEM_KEYS, where, problems)}
    sip_field = fields.pop("sip", None)
    sip = read_sip(sip_field[1], line_of(sip_field[0]), where, problems) if sip_field is not None else None
    values = _item_values(fields, where, problems)
    _fill_missing(values, fields, defaults, line_of(mapping), where, problems)
    ok = {key: value for key, value in values.items() if value is not None}
    if any(key not in ok for key in REQUIRED):
        return None
    ep_id = ok["id"]
    credential = ok.get("credential") or (f"{slug}/{ep_id}" if slug else ep_id)
    endpoint = Endpoint(
        ep_id, ok["name"], Tier(ok["tier"]), Kind(ok["kind"]), Link(ok["link"]), ok.get("parent"), credential, sip
    )
    line_for = {key: line_of(value) for key, (_, value) in fields.items()}
    return Placed(
        endpoint,
        line_of(mapping),
        line_for.get("id", line_of(mapping)),
        line_for.get("parent", line_of(mapping)),
        line_for.get("credential", line_of(mapping)),
    )


def _fill_missing(
    values: dict[str, str | None],
    fields: dict[str, tuple[Node, Node]],
    defaults: Defaults,
    line: int,
    where: str,
    problems: Problems,
) -> None:
    """Take absent kind/link from the tier's defaults; report other absent required keys."""
    tier = Tier(values["tier"]) if values.get("tier") else None
    for key in REQUIRED:
        if key in fields:
            continue
        if key in DEFAULT_KEYS and tier is not None and key in defaults.get(tier, {}):
            values[key] = defaults[tier][key]
        elif key in DEFAULT_KEYS and "tier" in fields and tier is None:
            values[key] = None  # the bad tier is already reported; its defaults are unknowable
        else:
            extra = f" (no default for tier {tier!s})" if tier is not None and key in DEFAULT_KEYS else ""
            problems.add(line, f"missing required key {key!r} in {where}{extra}")


def _item_values(fields: dict[str, tuple[Node, Node]], where: str, problems: Problems) -> dict[str, str | None]:
    """Each present key checked on its own: its type, then its syntax or allowed values."""
    values: dict[str, str | None] = {}
    for key, (_, node) in fields.items():
        what = f"{key!r} of {where}"
        if key == "name":
            values[key] = _display_name(node, what, problems)
        elif key in ("tier", "kind", "link"):
            parse = {"tier": Tier.parse, "kind": Kind.parse, "link": Link.parse}[key]
            values[key] = _choice(node, what, parse, problems)
        else:
            values[key] = _identifier(key, node, what, where, problems)
    return values


def _identifier(key: str, node: Node, what: str, where: str, problems: Problems) -> str | None:
    text = as_str(node, what, problems)
    if text is None:
        return None
    if key == "credential":
        if CREDENTIAL_PATTERN.fullmatch(text) is None:
            problems.add(line_of(node), f"bad credential {text!r} in {where}: use {CREDENTIAL_RULE}")
            return None
        return text
    if not is_valid_id(text):
        label = "id" if key == "id" else "parent id"
        problems.add(line_of(node), f"bad {label} {text!r}: use {ID_RULE}")
        return None
    return text
