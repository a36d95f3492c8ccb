"""Selectors: short strings that address sets of endpoints in the 4-tier directory.

Meetings store who is invited as selectors, not as id lists, so "all communes of Mèo Vạc" stays
right when the directory gains a commune.

Grammar::

    list     := item { sep item }          a Python list of items, or one string with sep = ',' or spaces
    item     := [ "-" ] selector           '-' subtracts; subtractions apply after all additions
    selector := "all"                      every endpoint
              | "ep:" id                   one endpoint
              | id                         same as ep:<id>
              | "tree:" id                 the endpoint and everything below it
              | "tier:" tier [ "@" id ]    a whole tier, or that tier within id's subtree
    tier     := "central" | "province" | "district" | "commune"
    id       := 2-64 of a-z 0-9 '-', not starting or ending with '-'

Examples: ``tier:commune@hg-meo-vac`` (all communes of Mèo Vạc);
``["tier:commune", "-tree:hg-dong-van"]`` (every commune outside Đồng Văn).
A list must contain at least one addition. Results come in directory pre-order without duplicates.
Selectors read a directory through ``EndpointTree``: this module sits below ``endpoints.directory``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from endpoints.model import ID_RULE, Endpoint, Tier, allowed, is_valid_id

Scope = Literal["all", "ep", "tree", "tier"]
PREFIXES = ("ep:", "tree:", "tier:", "all")


class EndpointTree(Protocol):
    """What selectors read of a directory (``endpoints.directory.Directory``): iteration in
    pre-order, membership, one endpoint, one subtree."""

    def __iter__(self) -> Iterator[Endpoint]: ...
    def __contains__(self, endpoint_id: object) -> bool: ...
    def get(self, endpoint_id: str) -> Endpoint: ...
    def subtree(self, endpoint_id: str) -> list[Endpoint]: ...


class SelectorError(ValueError):
    """A selector that cannot be parsed or does not fit the directory; the message names it."""

    def __init__(self, selector: str, message: str) -> None:
        super().__init__(f"selector {selector!r}: {message}" if selector else message)
        self.selector = selector


@dataclass(frozen=True, slots=True)
class Selector:
    """One parsed item. ``target`` is the endpoint id for ep/tree and the anchor for tier@id."""

    scope: Scope
    target: str | None = None
    tier: Tier | None = None
    exclude: bool = False

    def __str__(self) -> str:
        body = {"all": "all", "ep": f"ep:{self.target}", "tree": f"tree:{self.target}"}.get(self.scope)
        if body is None:
            body = f"tier:{self.tier}" + (f"@{self.target}" if self.target else "")
        return ("-" if self.exclude else "") + body

    def resolve(self, directory: EndpointTree) -> list[Endpoint]:
        """The endpoints this selector names, ignoring ``exclude``; SelectorError on unknown ids."""
        _check_target(self, directory)
        if self.scope == "all":
            return list(directory)
        if self.scope == "ep":
            return [directory.get(self.target or "")]
        if self.scope == "tree":
            return directory.subtree(self.target or "")
        assert self.tier is not None
        pool = directory.subtree(self.target) if self.target else list(directory)
        return [ep for ep in pool if ep.tier is self.tier]


def parse_selector(text: str) -> Selector:
    """Parse one item without a directory: syntax, tier names and id syntax are checked here."""
    raw = text
    text = text.strip()
    exclude = text.startswith("-")
    body = text[1:].strip() if exclude else text
    if not body:
        raise SelectorError(raw, "empty selector")
    if body == "all":
        return Selector("all", exclude=exclude)
    prefix, colon, rest = body.partition(":")
    if not colon:
        return Selector("ep", _id(raw, body), exclude=exclude)
    if prefix in ("ep", "tree"):
        return Selector(prefix, _id(raw, rest), exclude=exclude)  # type: ignore[arg-type]
    if prefix == "tier":
        return _tier_selector(raw, rest, exclude)
    raise SelectorError(raw, f"unknown prefix {prefix + ':'!r}: use {allowed(PREFIXES)}")


def parse_selectors(selectors: str | Sequence[str]) -> list[Selector]:
    """Parse a whole list (or one string separated by commas or spaces)."""
    items = selectors.replace(",", " ").split() if isinstance(selectors, str) else list(selectors)
    if not items:
        raise SelectorError("", "empty selector list: name at least one selector, e.g. 'all'")
    for item in items:
        if not isinstance(item, str):
            raise SelectorError(repr(item), "a selector must be a string")
    parsed = [parse_selector(item) for item in items]
    if all(s.exclude for s in parsed):
        raise SelectorError(items[0], "a list of only subtractions selects nothing: add what to start from, e.g. 'all'")
    return parsed


def validate_selectors(directory: EndpointTree, selectors: str | Sequence[str]) -> list[Selector]:
    """Parse and check every id against the directory; raises SelectorError on the first bad one."""
    parsed = parse_selectors(selectors)
    for selector in parsed:
        _check_target(selector, directory)
    return parsed


def select(directory: EndpointTree, selectors: str | Sequence[str]) -> list[Endpoint]:
    """Union of the additions minus the subtractions, in directory pre-order, no duplicates."""
    parsed = validate_selectors(directory, selectors)
    chosen: set[str] = set()
    for selector in (s for s in parsed if not s.exclude):
        chosen.update(ep.id for ep in selector.resolve(directory))
    for selector in (s for s in parsed if s.exclude):
        chosen.difference_update(ep.id for ep in selector.resolve(directory))
    return [ep for ep in directory if ep.id in chosen]


def _id(raw: str, text: str) -> str:
    if not text:
        raise SelectorError(raw, "names no endpoint id")
    if not is_valid_id(text):
        raise SelectorError(raw, f"{text!r} is not a valid endpoint id ({ID_RULE})")
    return text


def _tier_selector(raw: str, rest: str, exclude: bool) -> Selector:
    name, at, anchor = rest.partition("@")
    try:
        tier = Tier.parse(name)
    except ValueError as exc:
        raise SelectorError(raw, str(exc)) from None
    return Selector("tier", _id(raw, anchor) if at else None, tier, exclude)


def _check_target(selector: Selector, directory: EndpointTree) -> None:
    if selector.target is None:
        return
    if selector.target not in directory:
        raise SelectorError(str(selector), f"unknown endpoint id {selector.target!r}")
    anchor = directory.get(selector.target)
    if selector.tier is not None and selector.tier.rank < anchor.tier.rank:
        raise SelectorError(
            str(selector),
            f"there is no {selector.tier} below {anchor.tier} {anchor.id!r}: a {selector.tier} sits higher",
        )
