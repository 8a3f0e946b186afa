"""genreflow's own import graph, read statically: which of its modules a module runs.

Every ``import genreflow.x`` / ``from genreflow.x import y`` / ``from . import y`` counts,
at module level and inside functions alike (a deferred import still runs when the function
does), as do ``importlib.import_module("genreflow.x")`` and ``"genreflow.x"`` strings (e.g.
``importlib.resources.files("genreflow.stages.resources")``). Importing ``a.b.c`` runs
``a/__init__`` and ``a/b/__init__`` too. A package ``__init__`` that imports modules by
computed name (a plug-in registry) counts, when ``plugins`` is on, as importing every module
under it.

Three users: ``tests/code/test_layers.py`` (the direct edges: no upward import, no cycle),
``tests/code/test_dvc_deps.py`` (what each dvc.yaml stage must depend on: the
whole closure, plug-ins included) and :mod:`genreflow.core.cachekey` (what a cache's values
are computed by: plug-ins are loaded by the registry when asked for a kind, not by the code
that computes the values, so they are left out).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from functools import cache
from pathlib import Path

#: the ``src`` folder genreflow is imported from
SRC = Path(__file__).resolve().parents[2]
TOP = "genreflow"


class ComputedImportError(ValueError):
    """``import_module`` with a computed name outside a package ``__init__``: not followable."""


def with_parents(name: str) -> set[str]:
    """Importing ``a.b.c`` runs ``a/__init__``, ``a/b/__init__`` and ``a/b/c``."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def _is_import_module(call: ast.Call) -> bool:
    f = call.func
    return (isinstance(f, ast.Attribute) and f.attr == "import_module") or (
        isinstance(f, ast.Name) and f.id == "import_module")


class CodeGraph:
    """The modules of the ``genreflow`` package under ``src`` and their imports."""

    def __init__(self, src: Path = SRC):
        self.src = Path(src)
        self.tree = cache(self._tree)

    def module_path(self, name: str) -> Path | None:
        """The source file of module ``name`` (a package's ``__init__.py``), if it is ours."""
        base = self.src.joinpath(*name.split("."))
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                return path
        return None

    def is_package(self, name: str) -> bool:
        return (self.src.joinpath(*name.split(".")) / "__init__.py").is_file()

    def ours(self, name: str) -> bool:
        parts = name.split(".")
        return (parts[0] == TOP and all(p.isidentifier() for p in parts)
                and self.module_path(name) is not None)

    def _tree(self, module: str) -> ast.Module:
        path = self.module_path(module)
        if path is None:
            raise ValueError(f"{module}: no such genreflow module under {self.src}")
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

    def modules(self) -> list[str]:
        """Every module of the package by dotted name (a package by its ``__init__``)."""
        out = []
        for path in sorted((self.src / TOP).rglob("*.py")):
            parts = list(path.relative_to(self.src).with_suffix("").parts)
            out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
        return out

    def edges(self, nodes: Iterable[ast.AST], module: str, plugins: bool = True
              ) -> dict[str, int]:
        """``{genreflow module: first line}`` for each module ``nodes`` (statements of
        ``module``) name directly, parent packages not added; a name that is no module of
        ours (a stale import) is kept, so that callers can report it."""
        package = module if self.is_package(module) else module.rpartition(".")[0]
        found: dict[str, int] = {}

        def add(names: Iterable[str], line: int) -> None:
            for name in names:
                if name.split(".")[0] == TOP and name != module:
                    found.setdefault(name, line)

        for node in (n for top in nodes for n in ast.walk(top)):
            line = getattr(node, "lineno", 0)
            if isinstance(node, ast.Import):
                add((a.name for a in node.names), line)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                subs = [f"{base}.{a.name}" for a in node.names if self.ours(f"{base}.{a.name}")]
                add(subs if len(subs) == len(node.names) else [*subs, base], line)
            elif isinstance(node, ast.Call) and _is_import_module(node):
                add(sorted(self._import_module(node, module, plugins)), line)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    self.ours(node.value):
                add([node.value], line)
        return found

    def imports(self, nodes: Iterable[ast.AST], module: str, plugins: bool = True) -> set[str]:
        """The genreflow modules that ``nodes`` (statements of ``module``) import, directly,
        with their parent packages."""
        found = self.edges(nodes, module, plugins)
        return {m for name in found if self.ours(name) for m in with_parents(name)
                if self.ours(m)}

    def _import_module(self, call: ast.Call, module: str, plugins: bool) -> set[str]:
        arg = call.args[0] if call.args else None
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return {arg.value}
        if self.is_package(module) and module.count(".") >= 1:
            if not plugins:
                return set()
            folder = self.src.joinpath(*module.split("."))
            return {".".join(p.relative_to(self.src).with_suffix("").parts)
                    for p in folder.rglob("*.py") if p.stem != "__init__"}
        raise ComputedImportError(f"{module}: import_module() with a computed name outside a "
                                  "package __init__; genreflow.core.codegraph cannot follow it")

    def closure(self, start: Iterable[str], plugins: bool = True) -> set[str]:
        """``start`` and every genreflow module they import, transitively (whole modules)."""
        seen: set[str] = set()
        todo = [m for s in start for m in with_parents(s)]
        while todo:
            mod = todo.pop()
            if mod in seen:
                continue
            seen.add(mod)
            todo.extend(self.imports([self.tree(mod)], mod, plugins) - seen)
        return seen
