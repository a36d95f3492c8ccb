"""Checks that a flat list of endpoints forms a valid 4-tier forest.

The YAML loader and programmatic ``Directory`` construction share these checks, so a directory
object can never hold a duplicate id, a dangling parent, a cycle or a commune under a province.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

from endpoints.model import Endpoint, Tier
from endpoints.yaml_lines import Problems


@dataclass(frozen=True, slots=True)
class Placed:
    """An endpoint with the lines its item, id, parent and credential came from."""

    endpoint: Endpoint
    line: int
    id_line: int
    parent_line: int
    credential_line: int

    @classmethod
    def at(cls, endpoint: Endpoint, line: int) -> "Placed":
        return cls(endpoint, line, line, line, line)


def check_tree(placed: Sequence[Placed], broken: set[str], problems: Problems) -> None:
    """Add a problem for every tree mistake. ``broken``: ids of items already reported as bad,
    whose children are not blamed again for an 'unknown parent'."""
    first = _unique_ids(placed, problems)
    _unique_credentials(first, problems)
    known = {p.endpoint.id: p for p in first}
    _parents_exist(first, known, broken, problems)
    in_cycle = _cycles(first, known, problems)
    _tier_order(first, known, in_cycle, problems)


def _unique_ids(placed: Sequence[Placed], problems: Problems) -> list[Placed]:
    seen: dict[str, Placed] = {}
    for p in placed:
        ep_id = p.endpoint.id
        if ep_id in seen:
            problems.add(p.id_line, f"duplicate id {ep_id!r} (first defined at line {seen[ep_id].id_line})")
        else:
            seen[ep_id] = p
    return list(seen.values())


def _unique_credentials(placed: Sequence[Placed], problems: Problems) -> None:
    """Two endpoints sharing a credential could log in as each other."""
    seen: dict[str, Placed] = {}
    for p in placed:
        cred = p.endpoint.credential
        if cred in seen:
            other = seen[cred]
            problems.add(
                p.credential_line,
                f"credential {cred!r} of endpoint {p.endpoint.id!r} is already used by endpoint "
                f"{other.endpoint.id!r} (line {other.credential_line})",
            )
        else:
            seen[cred] = p


def _parents_exist(placed: Sequence[Placed], known: dict[str, Placed], broken: set[str], problems: Problems) -> None:
    for p in placed:
        ep = p.endpoint
        if ep.parent is None:
            if ep.tier is not Tier.CENTRAL:
                problems.add(
                    p.line,
                    f"missing required key 'parent' for {ep.tier} {ep.id!r}: only central endpoints are roots; "
                    f"a {ep.tier}'s parent must be a {ep.tier.above}",
                )
        elif ep.parent not in known and ep.parent not in broken:
            close = difflib.get_close_matches(ep.parent, list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.add(p.parent_line, f"unknown parent {ep.parent!r} of endpoint {ep.id!r}{hint}")


def _cycles(placed: Sequence[Placed], known: dict[str, Placed], problems: Problems) -> set[str]:
    """Report each parent cycle once, starting at its member that comes first in the file."""
    order = {p.endpoint.id: i for i, p in enumerate(placed)}
    done: set[str] = set()
    in_cycle: set[str] = set()
    for p in placed:
        path: list[str] = []
        cur: str | None = p.endpoint.id
        while cur is not None and cur in known and cur not in done and cur not in path:
            path.append(cur)
            cur = known[cur].endpoint.parent
        if cur is not None and cur in path:
            members = path[path.index(cur) :]
            in_cycle.update(members)
            start = min(members, key=order.__getitem__)
            i = members.index(start)
            ring = members[i:] + members[:i] + [start]
            problems.add(known[start].parent_line, "parent cycle: " + " -> ".join(ring))
        done.update(path)
    return in_cycle


def _tier_order(placed: Sequence[Placed], known: dict[str, Placed], in_cycle: set[str], problems: Problems) -> None:
    for p in placed:
        ep = p.endpoint
        if ep.parent is None or ep.parent not in known or ep.id in in_cycle:
            continue
        parent = known[ep.parent].endpoint
        if ep.tier is Tier.CENTRAL:
            problems.add(
                p.parent_line,
                f"central {ep.id!r} cannot be a child of {parent.tier} {parent.id!r}: central endpoints are roots",
            )
        elif parent.tier is not ep.tier.above:
            problems.add(
                p.parent_line,
                f"{ep.tier} {ep.id!r} cannot be a child of {parent.tier} {parent.id!r}: "
                f"a {ep.tier}'s parent must be a {ep.tier.above}",
            )
