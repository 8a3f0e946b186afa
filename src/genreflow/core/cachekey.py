"""One way to key a cache: the code that computes its values, plus every other input.

The code part is the import closure of the modules that compute the values (the *roots*
a kind declares; :mod:`genreflow.core.codegraph`), each module hashed as its syntax tree
without docstrings. Editing any module in the closure changes the key, so a cache cannot
hand back values an older front-end computed; editing a module outside it, a comment or a
docstring does not, so unrelated work never throws a cache away. The other inputs (settings,
digests of weights files and of data) are given as a JSON-able mapping.
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from genreflow.core.codegraph import SRC, CodeGraph


def code_digest(path: str | Path) -> str:
    """MD5 of a Python module's syntax tree without its docstrings: a change to what the code
    does changes it, an edit of a comment or a docstring does not (so the cache holds)."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.md5(ast.dump(tree).encode()).hexdigest()


def files_digest(paths: Iterable[str | Path]) -> str:
    """MD5 over the bytes of ``paths`` (in order), read in blocks."""
    h = hashlib.md5()
    for p in paths:
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def code_key(roots: Iterable[str], src: str | Path | None = None) -> str:
    """Digest of the code of ``roots`` (dotted genreflow module names) and of every genreflow
    module they import, transitively, in the source tree ``src`` (default: the one running)."""
    graph = CodeGraph(Path(src or SRC))
    modules = sorted(graph.closure(roots, plugins=False))
    listing = [(m, code_digest(graph.module_path(m))) for m in modules]
    return hashlib.md5(json.dumps(listing).encode()).hexdigest()


def cache_key(roots: Iterable[str], inputs: dict, src: str | Path | None = None) -> str:
    """The key of a cache whose values ``roots``' code computes from ``inputs`` (JSON-able:
    settings, digests of files): 16 hex digits."""
    parts = {"code": code_key(roots, src), "inputs": inputs}
    return hashlib.md5(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
