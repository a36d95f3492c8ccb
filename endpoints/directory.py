"""The endpoint directory: the 4-tier tree (central > province > district > commune) of one deployment.

Loaded from YAML (format in ``endpoints.directory_yaml``) or built from ``Endpoint`` objects; both
paths run the same tree checks, so a ``Directory`` is always a valid forest whose roots are central.
Several central roots are allowed (national bodies have more than one central studio); Hà Giang
has one. Iteration is pre-order, children in file order: a subtree is a contiguous slice of it,
which makes ``subtree`` and selector results cheap and stably ordered.

Credential references: ``Endpoint.credential`` is the item's ``credential`` key if given, else
``<slug>/<id>`` when the file sets a top-level ``slug``, else the bare id.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from endpoints.directory_yaml import read_directory
from endpoints.model import ID_RULE, DirectoryError, Endpoint, Kind, Link, Tier, UnknownEndpointError, is_valid_id
from endpoints.selectors import select
from endpoints.tree import Placed, check_tree
from endpoints.yaml_lines import Problems

__all__ = [
    "Directory",
    "DirectoryError",
    "Endpoint",
    "Kind",
    "Link",
    "Tier",
    "UnknownEndpointError",
    "load_directory",
    "parse_directory",
]


class Directory:
    """An immutable, validated endpoint tree with lookups by id, tier and subtree."""

    def __init__(self, name: str, endpoints: Iterable[Endpoint], *, _checked: bool = False) -> None:
        given = list(endpoints)
        if not _checked:
            _check_endpoints(given)
        self.name = name
        self._by_id = {ep.id: ep for ep in given}
        self._children: dict[str | None, list[Endpoint]] = {}
        for ep in given:
            self._children.setdefault(ep.parent, []).append(ep)
        self._order = self._preorder()
        self._pos = {ep.id: i for i, ep in enumerate(self._order)}
        self._size = self._subtree_sizes()

    def _preorder(self) -> list[Endpoint]:
        order: list[Endpoint] = []
        stack = list(reversed(self._children.get(None, [])))
        while stack:
            ep = stack.pop()
            order.append(ep)
            stack.extend(reversed(self._children.get(ep.id, [])))
        return order

    def _subtree_sizes(self) -> dict[str, int]:
        size = {ep.id: 1 for ep in self._order}
        for ep in reversed(self._order):  # children come after parents, so sum bottom-up
            if ep.parent is not None:
                size[ep.parent] += size[ep.id]
        return size

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, endpoint_id: object) -> bool:
        return endpoint_id in self._by_id

    def __iter__(self) -> Iterator[Endpoint]:
        return iter(self._order)

    def __repr__(self) -> str:
        return f"Directory({self.name!r}, {len(self)} endpoints)"

    def get(self, endpoint_id: str) -> Endpoint:
        try:
            return self._by_id[endpoint_id]
        except (KeyError, TypeError):
            raise UnknownEndpointError(str(endpoint_id)) from None

    def roots(self) -> list[Endpoint]:
        return list(self._children.get(None, []))

    def children(self, endpoint_id: str) -> list[Endpoint]:
        return list(self._children.get(self.get(endpoint_id).id, []))

    def parent(self, endpoint_id: str) -> Endpoint | None:
        ep = self.get(endpoint_id)
        return None if ep.parent is None else self._by_id[ep.parent]

    def ancestors(self, endpoint_id: str) -> list[Endpoint]:
        """Nearest first, ending at the central root."""
        result: list[Endpoint] = []
        ep = self.parent(endpoint_id)
        while ep is not None:
            result.append(ep)
            ep = self.parent(ep.id)
        return result

    def subtree(self, endpoint_id: str) -> list[Endpoint]:
        """The endpoint and everything below it, in pre-order."""
        start = self._pos[self.get(endpoint_id).id]
        return self._order[start : start + self._size[endpoint_id]]

    def by_tier(self, tier: Tier | str) -> list[Endpoint]:
        wanted = Tier.parse(str(tier))
        return [ep for ep in self._order if ep.tier is wanted]

    def district_of(self, endpoint_id: str) -> Endpoint | None:
        """The district an endpoint belongs to: itself for a district, None above the district tier."""
        ep = self.get(endpoint_id)
        if ep.tier is Tier.DISTRICT:
            return ep
        return next((a for a in self.ancestors(ep.id) if a.tier is Tier.DISTRICT), None)

    def select(self, selectors: str | Sequence[str]) -> list[Endpoint]:
        """Endpoints named by selectors (grammar in ``endpoints.selectors``), pre-order, no duplicates."""
        return select(self, selectors)


def _check_endpoints(endpoints: Sequence[Endpoint]) -> None:
    """Programmatic construction: 'line' in errors is the 1-based position in the sequence."""
    problems = Problems("<endpoints>")
    for i, ep in enumerate(endpoints, start=1):
        if not is_valid_id(ep.id):
            problems.add(i, f"bad id {ep.id!r}: use {ID_RULE}")
    check_tree([Placed.at(ep, i) for i, ep in enumerate(endpoints, start=1)], set(), problems)
    problems.raise_if_any()


def parse_directory(text: str, filename: str = "<string>") -> Directory:
    """A directory from YAML text; DirectoryError ('file:line: message') on any mistake."""
    parsed = read_directory(text, filename)
    return Directory(parsed.name, [p.endpoint for p in parsed.placed], _checked=True)


def load_directory(path: str | Path) -> Directory:
    """A directory from a UTF-8 YAML file; OSError if unreadable, DirectoryError if invalid."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DirectoryError(str(path), line, "the file is not valid UTF-8 (save it as UTF-8)") from None
    return parse_directory(text, str(path))
