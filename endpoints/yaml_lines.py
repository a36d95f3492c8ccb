"""YAML read as a node tree, so every value keeps the line it came from.

``yaml.safe_load`` throws line numbers away; config errors must say 'file:line: message', so the
loaders here work on ``yaml.compose`` nodes and turn each mistake into a ``DirectoryError``.
Errors are collected in a ``Problems`` list: one file run reports every independent mistake.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from endpoints.model import DirectoryError, allowed

_TAG_NAMES = {
    "tag:yaml.org,2002:str": "a string",
    "tag:yaml.org,2002:int": "an integer",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "a boolean",
    "tag:yaml.org,2002:null": "an empty value",
    "tag:yaml.org,2002:timestamp": "a date",
}


def line_of(node: Node) -> int:
    return node.start_mark.line + 1


def describe(node: Node) -> str:
    """What a node is, in words, for 'must be a string, got a list' messages."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return _TAG_NAMES.get(node.tag, f"a value tagged {node.tag}")


class Stop(Exception):
    """Raised after a mistake that leaves nothing sensible to check further."""


@dataclass
class Problems:
    """Mistakes found so far in one file."""

    file: str
    found: list[DirectoryError] = field(default_factory=list)

    def add(self, line: int, message: str) -> None:
        self.found.append(DirectoryError(self.file, line, message))

    def stop(self, line: int, message: str) -> Stop:
        self.add(line, message)
        return Stop()

    def raise_if_any(self) -> None:
        """Raise the first mistake in file order, carrying all of them."""
        if not self.found:
            return
        ordered = tuple(sorted(self.found, key=lambda e: e.line))
        first = ordered[0]
        raise DirectoryError(first.file, first.line, first.message, ordered)


def compose(text: str, problems: Problems) -> Node:
    """The document's root node; malformed YAML and empty files stop here."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise problems.stop(*_yaml_mistake(exc)) from None
    except yaml.YAMLError as exc:
        raise problems.stop(1, f"malformed YAML: {exc}") from None
    if root is None:
        raise problems.stop(1, "the file is empty: expected a mapping with 'version', 'name' and 'endpoints'")
    return root


def _yaml_mistake(exc: yaml.MarkedYAMLError) -> tuple[int, str]:
    """The line PyYAML blames, and where the construct it was reading began if that differs."""
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else 1
    what = ": ".join(p for p in (exc.context, exc.problem) if p)
    ctx = exc.context_mark
    if ctx is not None and ctx.line + 1 != line and exc.context:
        what += f" (the construct began at line {ctx.line + 1})"
    return line, f"malformed YAML: {what}"


def entries(
    node: MappingNode, allowed_keys: tuple[str, ...], where: str, problems: Problems
) -> Iterator[tuple[str, ScalarNode, Node]]:
    """(key, key node, value node) for each known key; unknown and repeated keys become problems."""
    seen: dict[str, int] = {}
    for key_node, value in node.value:
        if not isinstance(key_node, ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
            problems.add(line_of(key_node), f"{where}: keys must be plain words, got {describe(key_node)}")
            continue
        key = key_node.value
        if key not in allowed_keys:
            problems.add(line_of(key_node), f"unknown key {key!r} in {where}: allowed keys are {allowed(allowed_keys)}")
            continue
        if key in seen:
            problems.add(line_of(key_node), f"duplicate key {key!r} in {where} (first at line {seen[key]})")
            continue
        seen[key] = line_of(key_node)
        yield key, key_node, value


def as_mapping(node: Node, what: str, problems: Problems) -> MappingNode | None:
    if isinstance(node, MappingNode):
        return node
    problems.add(line_of(node), f"{what} must be a mapping, got {describe(node)}")
    return None


def as_list(node: Node, what: str, problems: Problems) -> SequenceNode | None:
    if isinstance(node, SequenceNode):
        return node
    problems.add(line_of(node), f"{what} must be a list, got {describe(node)}")
    return None


def as_str(node: Node, what: str, problems: Problems) -> str | None:
    """A string scalar; numbers, booleans and empty values are refused rather than converted."""
    if isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:str":
        return node.value
    hint = " (quote it)" if isinstance(node, ScalarNode) and node.value else ""
    problems.add(line_of(node), f"{what} must be a string, got {describe(node)}{hint}")
    return None


def as_int(node: Node, what: str, problems: Problems) -> int | None:
    if isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:int":
        try:
            return int(node.value.replace("_", ""), 0)
        except ValueError:
            pass
    problems.add(line_of(node), f"{what} must be an integer, got {describe(node)}")
    return None
