"""The design rules of the layout (README, "Layout"), checked on the import graph of mcu/,
signaling/ and endpoints/. An import counts wherever it is written: at top level, under
TYPE_CHECKING or inside a function. A failure names the offending imports, or the cycle's path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.imports import ImportGraph

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    return ImportGraph.of(ROOT, ("mcu", "signaling", "endpoints"))


def _report(rule: str, offenders: list[str]) -> str:
    return rule + ":\n  " + "\n  ".join(offenders)


def test_no_import_cycles(graph):
    cycles = [f"{', '.join(group)}: {' -> '.join(path)}" for group, path in graph.cycles()]
    assert not cycles, _report("groups of modules that import one another (and one path in each)", cycles)


def test_mcu_never_imports_signaling_or_endpoints(graph):
    offenders = graph.imports_of(("mcu",), ("signaling", "endpoints"))
    assert not offenders, _report(
        "mcu/ is the media package: signaling and endpoints use it, not the reverse", offenders
    )


def test_the_media_seam_imports_nothing_of_the_product(graph):
    offenders = graph.imports_outside("mcu.api", ())
    assert not offenders, _report("mcu/api.py is the contract: it imports nothing of the product", offenders)


def test_the_hot_path_imports_nothing_above_it(graph):
    offenders = graph.imports_outside("mcu.sfu", ("mcu.sfu", "mcu.fence"))
    assert not offenders, _report("mcu/sfu/ imports only mcu.sfu.* and mcu.fence", offenders)


def test_compose_audio_record_stay_leaves(graph):
    offenders = graph.imports_of(("mcu.compose", "mcu.audio", "mcu.record"), ("mcu.meeting", "mcu.peer", "mcu.node"))
    assert not offenders, _report("compose/, audio/ and record/ know no meeting, peer or node", offenders)


# The modules that build a node: they alone pick and construct the media implementations.
SIGNALING_WIRING = ("signaling.app", "signaling.cli")


def test_signaling_reaches_media_only_through_the_seam(graph):
    offenders = [
        edge
        for edge in graph.imports_outside("signaling", ("signaling", "endpoints", "mcu.api"))
        if edge.split(" -> ")[0] not in SIGNALING_WIRING
    ]
    assert not offenders, _report(
        "outside the wiring (signaling/app.py, signaling/cli.py) signaling imports of mcu only mcu.api", offenders
    )


def test_websocket_actions_never_import_rest_routes(graph):
    offenders = graph.imports_of(("signaling.ws",), ("signaling.api",))
    assert not offenders, _report(
        "signaling/ws never imports signaling/api (a shared use case lives below both)", offenders
    )


def test_the_graph_counts_every_kind_of_import(tmp_path):
    """The rules above are only as good as the graph: relative, TYPE_CHECKING and in-function
    imports are edges, ``from pkg import submodule`` points at the submodule, and a cycle is
    reported as its path."""
    package = tmp_path / "app"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from app.a import A\n")
    (package / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\nA = 1\n")
    (package / "b.py").write_text("def late():\n    from app.sub import c\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "c.py").write_text("import app.a\nimport os\n")

    graph = ImportGraph.of(tmp_path, ("app",))

    assert graph.edges == {
        "app": {"app.a"},
        "app.a": {"app.b"},
        "app.b": {"app.sub.c"},
        "app.sub": set(),
        "app.sub.c": {"app.a"},
    }
    assert graph.cycles() == [(["app.a", "app.b", "app.sub.c"], ["app.a", "app.b", "app.sub.c", "app.a"])]
    assert graph.where("app.b", "app.sub.c") == "app/b.py:2"


# Lowest first; a module may import its own layer and the ones before it (README, "Layout").
MCU_LAYERS = [
    ("mcu.api", "mcu.fence"),
    ("mcu.sfu",),
    ("mcu.compose", "mcu.audio", "mcu.record"),
    ("mcu.bridge",),
    ("mcu.peer",),
    ("mcu.meeting",),
    ("mcu.cascade",),
    ("mcu.node", "mcu"),
]
SIGNALING_LAYERS = [
    (
        "signaling.store",
        "signaling.auth",
        "signaling.meetings",
        "signaling.rooms",
        "signaling.recording",
        "signaling.guard",
        "signaling.protocol",
        "signaling.errors",
        "signaling.settings",
        "signaling.addresses",
        "signaling.sip_settings",
        "signaling.metrics",
        "signaling.logs",
        "signaling.cluster.placement",
        "signaling.web",
    ),
    ("signaling.context",),
    ("signaling.api", "signaling.ws", "signaling.cluster"),
    ("signaling.app", "signaling.cli", "signaling"),
]


def _layer(module: str, layers: list[tuple[str, ...]]) -> int | None:
    """The layer of the longest matching prefix (so a module's own entry beats its package's)."""
    best: tuple[int, int] | None = None
    for index, prefixes in enumerate(layers):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), index)
    return None if best is None else best[1]


@pytest.mark.parametrize("layers", [MCU_LAYERS, SIGNALING_LAYERS], ids=["mcu", "signaling"])
def test_imports_point_down_the_layers(graph, layers):
    offenders = []
    for module, targets in sorted(graph.edges.items()):
        mine = _layer(module, layers)
        for target in sorted(targets):
            theirs = _layer(target, layers)
            if mine is not None and theirs is not None and theirs > mine:
                offenders.append(f"{module} -> {target} ({graph.where(module, target)})")
    assert not offenders, _report("imports that point up the layers", offenders)
