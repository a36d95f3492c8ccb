"""The product's module import graph, read with ``ast`` (nothing is imported or run).

Every import statement counts: at top level, under ``if TYPE_CHECKING:`` and inside functions,
because each is the same design dependency whether Python runs it at import time or later.

    graph = ImportGraph.of(ROOT, ("mcu", "signaling", "endpoints"))
    graph.edges["mcu.node"]                  # {"mcu.api", "mcu.meeting.meeting", ...}
    graph.cycles()                           # [(["a", "b", "c"], ["a", "b", "a"]), ...]

``from pkg import name`` is an import of the module ``pkg.name`` when there is one (a
submodule), else of ``pkg``; ``import a.b.c`` is an import of the longest known module prefix.
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(repr=False)
class ImportGraph:
    root: Path
    files: dict[str, Path]  # module name -> its file
    edges: dict[str, set[str]] = field(default_factory=dict)  # importer -> imported product modules
    lines: dict[tuple[str, str], int] = field(default_factory=dict)  # first line of each edge

    @classmethod
    def of(cls, root: Path, packages: tuple[str, ...]) -> ImportGraph:
        files = {_module_name(p.relative_to(root)): p for top in packages for p in sorted((root / top).rglob("*.py"))}
        graph = cls(root, files, {name: set() for name in files})
        for name, path in files.items():
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                for target in graph._targets(name, node):
                    graph.edges[name].add(target)
                    graph.lines.setdefault((name, target), node.lineno)
        return graph

    def where(self, importer: str, imported: str) -> str:
        """``path:line`` of the first statement by which ``importer`` imports ``imported``."""
        return f"{self.files[importer].relative_to(self.root)}:{self.lines[(importer, imported)]}"

    def imports_outside(self, importers: str, allowed: tuple[str, ...]) -> list[str]:
        """Edges from the modules under ``importers`` to product modules not under ``allowed``,
        as ``"importer -> imported (path:line)"``."""
        return [
            f"{src} -> {dst} ({self.where(src, dst)})"
            for src in sorted(self.edges)
            if _under(src, (importers,))
            for dst in sorted(self.edges[src])
            if not _under(dst, allowed)
        ]

    def imports_of(self, importers: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
        """Edges from the modules under ``importers`` to modules under ``forbidden``."""
        return [
            f"{src} -> {dst} ({self.where(src, dst)})"
            for src in sorted(self.edges)
            if _under(src, importers)
            for dst in sorted(self.edges[src])
            if _under(dst, forbidden)
        ]

    def cycles(self) -> list[tuple[list[str], list[str]]]:
        """Each group of modules that import one another (directly or through each other), with
        one closed path in it: the shortest through the group's first module by name."""
        groups = sorted(sorted(group) for group in self._strong_components() if len(group) > 1)
        return [(group, self._shortest_cycle(group)) for group in groups]

    def __repr__(self) -> str:  # pytest prints the fixture: the modules, not every edge
        return f"ImportGraph({len(self.files)} modules under {self.root})"

    def _targets(self, importer: str, node: ast.AST) -> set[str]:
        if isinstance(node, ast.Import):
            found = {self._known_prefix(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = self._absolute(importer, node)
            found = {
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in self.files else self._known_prefix(base)
                for alias in node.names
            }
        else:
            return set()
        return {name for name in found if name and name != importer}

    def _absolute(self, importer: str, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        package = importer.split(".")
        if self.files[importer].name != "__init__.py":
            package = package[:-1]
        base = package[: len(package) - node.level + 1]
        return ".".join(base + ([node.module] if node.module else []))

    def _known_prefix(self, dotted: str) -> str:
        while dotted and dotted not in self.files:
            dotted = dotted.rpartition(".")[0]
        return dotted

    def _strong_components(self) -> list[set[str]]:
        """Tarjan's algorithm, iterative (deep import chains would exhaust the recursion limit)."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        components: list[set[str]] = []
        for start in sorted(self.edges):
            if start in index:
                continue
            work = [(start, iter(sorted(self.edges[start])))]
            index[start] = low[start] = len(index)
            stack.append(start)
            on_stack.add(start)
            while work:
                node, children = work[-1]
                child = next(children, None)
                if child is None:
                    work.pop()
                    if work:
                        low[work[-1][0]] = min(low[work[-1][0]], low[node])
                    if low[node] == index[node]:
                        component = set()
                        while True:
                            member = stack.pop()
                            on_stack.discard(member)
                            component.add(member)
                            if member == node:
                                break
                        components.append(component)
                elif child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(self.edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
        return components

    def _shortest_cycle(self, group: list[str]) -> list[str]:
        start, members = group[0], set(group)
        came_from: dict[str, str] = {}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            for child in sorted(self.edges[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if child not in came_from:
                    came_from[child] = node
                    queue.append(child)
        raise AssertionError(f"{group} is no cycle")


def _module_name(relative: Path) -> str:
    parts = relative.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)
