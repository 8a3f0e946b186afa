"""genreflow's packages are layers: a module imports only its own package or lower ones, and no
module imports itself back through others.

Every ``import genreflow.x`` / ``from genreflow.x import y`` / ``from . import y`` counts,
at module level and inside functions alike (a deferred import is still a dependency). A
``from package import name`` where ``package.name`` is a module counts as importing that
module. Importing a module runs its parent packages' ``__init__`` too; that is not counted as
an edge (every submodule would otherwise be in a cycle with its package). Plug-ins imported
by computed name (``importlib.import_module`` in ``kinds/__init__``) are not edges either:
the plug-in's own import of the registry is.

``GENREFLOW_LAYERS_SRC=/path/to/src`` checks another source tree (e.g. an older checkout).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from genreflow.core.codegraph import CodeGraph

ROOT = Path(__file__).resolve().parents[2]
SRC = Path(os.environ.get("GENREFLOW_LAYERS_SRC", ROOT / "src"))

#: Each package of genreflow and its layer, bottom first; a module may import its own
#: package or a lower-ranked one. ``genreflow`` itself is the top-level ``__init__``.
RANKS: dict[str, int] = {
    "genreflow": 0,  # genreflow/__init__.py: the version
    "core": 0,  # errors, typed config, paths, TensorFlow environment, quiet imports, processes
    "audio": 1,  # decoding, refusals, the input contract, codecs, the log-mel front-end
    "data": 2,  # bringing raw audio into data/ (GTZAN or the synthetic set)
    "models": 2,  # Keras layers, the batched forward pass, bundle metadata, feature store
    "kinds": 3,  # the model kinds (plug-ins)
    "tracking": 3,  # MLflow plumbing, logged requirements, the Optuna sampler
    "serving": 4,  # predictor, pyfunc model, its loader, HTTP server, `genreflow predict`
    "stages": 5,  # the pipeline stages
    "cli": 6,  # genreflow/cli.py: the commands
}


def package_of(module: str) -> str:
    """``genreflow.audio.decode`` -> ``audio``; ``genreflow.cli`` -> ``cli``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def graph(src: Path) -> tuple[dict[str, Path], dict[str, dict[str, int]]]:
    """The modules and ``{module: {imported module: first line}}`` (the direct imports
    :class:`genreflow.core.codegraph.CodeGraph` reads; plug-ins by computed name left out)."""
    code = CodeGraph(src)
    known = {m: code.module_path(m) for m in code.modules()}
    return known, {m: code.edges([code.tree(m)], m, plugins=False) for m in known}


def unranked(known: dict[str, Path]) -> list[str]:
    """Modules of no package in :data:`RANKS`."""
    return sorted(m for m in known if package_of(m) not in RANKS)


def unknown_targets(known, edges) -> list[str]:
    """Imports of genreflow modules that do not exist (a stale path)."""
    return sorted(f"{a}, line {line}: {b} does not exist" for a, out in edges.items()
                  for b, line in out.items() if b not in known)


def upward(known, edges) -> list[str]:
    """``a (rank) imports b (rank)`` for each import of a higher-ranked package."""
    bad = []
    for a, out in sorted(edges.items()):
        for b, line in sorted(out.items()):
            pa, pb = package_of(a), package_of(b)
            if pa in RANKS and pb in RANKS and RANKS[pb] > RANKS[pa]:
                bad.append(f"{a} ({pa}, rank {RANKS[pa]}) imports {b} ({pb}, rank {RANKS[pb]}) "
                           f"at line {line}")
    return bad


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected group of modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(v: str) -> None:  # recursion depth: at most the number of modules
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
            if w not in edges:
                continue
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in edges.get(v, {}):
                groups.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return [_one_cycle(g, edges) for g in groups]


def _one_cycle(group: list[str], edges: dict[str, dict[str, int]]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group."""
    start, members = group[0], set(group)
    paths = {start: [start]}
    todo = [start]
    while todo:
        v = todo.pop(0)
        for w in sorted(edges[v]):
            if w == start:
                return [*paths[v], start]
            if w in members and w not in paths:
                paths[w] = [*paths[v], w]
                todo.append(w)
    raise AssertionError(f"no cycle through {start} in {group}")  # pragma: no cover


# ---------------------------------------------------------------------------------- tests
def test_every_module_belongs_to_a_ranked_package():
    known, edges = graph(SRC)
    assert "genreflow.cli" in known
    assert not unranked(known), f"modules outside the ranked packages {sorted(RANKS)}: " \
                                f"{unranked(known)}"
    assert not unknown_targets(known, edges), unknown_targets(known, edges)


def test_no_module_imports_a_higher_layer():
    known, edges = graph(SRC)
    bad = upward(known, edges)
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_no_import_cycles():
    _, edges = graph(SRC)
    found = cycles(edges)
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_the_checks_find_upward_imports_cycles_and_strays(tmp_path):
    """On a small tree: a function-level upward import, a cycle through a relative import,
    a module outside the ranked packages."""
    pkg = tmp_path / "genreflow"
    for folder in ("core", "audio", "stages"):
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "core" / "errors.py").write_text("def f():\n    from genreflow.audio import decode\n")
    (pkg / "audio" / "decode.py").write_text("from . import sniff\n")
    (pkg / "audio" / "sniff.py").write_text("def g():\n    from genreflow.audio.decode import x\n")
    (pkg / "stages" / "split.py").write_text("from genreflow.core.errors import f\n")
    (pkg / "loose.py").write_text("import genreflow.stages.split\n")
    known, edges = graph(tmp_path)
    assert unranked(known) == ["genreflow.loose"]
    assert upward(known, edges) == [
        "genreflow.core.errors (core, rank 0) imports genreflow.audio.decode (audio, rank 1) "
        "at line 2"]
    assert cycles(edges) == [["genreflow.audio.decode", "genreflow.audio.sniff",
                              "genreflow.audio.decode"]]
    assert edges["genreflow.stages.split"] == {"genreflow.core.errors": 1}


@pytest.mark.skipif(SRC != ROOT / "src", reason="checks this checkout's own layout")
def test_the_rank_table_names_only_existing_packages():
    known, _ = graph(SRC)
    assert {package_of(m) for m in known} == set(RANKS)
