"""Every dvc.yaml stage depends on all the code it runs, so `dvc repro` is never stale.

The code a stage runs is derived statically: its ``cmd: genreflow <command>`` names a
function in cli.py; from there every ``import genreflow.x`` / ``from genreflow.x import y``
/ ``from . import y`` (also inside functions), every parent package's ``__init__``, every
``importlib.import_module("genreflow.x")`` and every ``"genreflow.x"`` string (e.g.
``importlib.resources.files("genreflow.stages.resources")``) is followed transitively. A
package whose ``__init__`` imports modules by computed name (a plug-in registry walking its
own folder) counts as importing all its modules, those of its subpackages too. A package's
data files count as its code.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

from genreflow.core.codegraph import CodeGraph, with_parents

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
CLI = "genreflow.cli"


# ------------------------------------------------------------------------ module graph
# The walker is genreflow's own (genreflow.core.codegraph): the cache keys use it too.
@cache
def _graph(src: Path) -> CodeGraph:
    return CodeGraph(src)


def graph() -> CodeGraph:
    return _graph(SRC)


def _module_path(name: str) -> Path | None:
    return graph().module_path(name)


def _tree(module: str) -> ast.Module:
    return graph().tree(module)


def _imports(nodes: list[ast.AST], module: str) -> set[str]:
    return graph().imports(nodes, module)


def closure(start: set[str]) -> set[str]:
    """``start`` and every genreflow module they import, transitively (whole modules)."""
    return graph().closure(start)


# ----------------------------------------------------------------------- CLI commands
def _typer_apps(tree: ast.Module) -> tuple[str, dict[str, dict[str, str]]]:
    """(root app variable, {app variable: {sub-command group name: app variable}})."""
    apps = [n.targets[0].id for n in tree.body if isinstance(n, ast.Assign)
            and isinstance(n.value, ast.Call) and getattr(n.value.func, "attr", "") == "Typer"]
    groups: dict[str, dict[str, str]] = {a: {} for a in apps}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_typer":
            parent = node.func.value.id
            name = next(k.value.value for k in node.keywords if k.arg == "name")
            groups[parent][name] = node.args[0].id
    subs = {v for g in groups.values() for v in g.values()}
    (root,) = [a for a in apps if a not in subs]
    return root, groups


def _command_name(fn: ast.FunctionDef, app: str) -> str | None:
    for dec in fn.decorator_list:
        if (isinstance(dec, ast.Call) and isinstance(dec.func, ast.Attribute)
                and dec.func.attr == "command" and getattr(dec.func.value, "id", "") == app):
            if dec.args and isinstance(dec.args[0], ast.Constant):
                return dec.args[0].value
            return fn.name.replace("_", "-")
    return None


def command_modules(cmd: str) -> set[str]:
    """The genreflow modules ``cmd`` (``genreflow <command> ...``) runs."""
    words = cmd.split()
    assert words[0] == "genreflow", f"{cmd!r}: expected a `genreflow <command>` stage"
    tree = _tree(CLI)
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    app, groups = _typer_apps(tree)
    rest = words[1:]
    while rest and rest[0] in groups[app]:
        app, rest = groups[app][rest[0]], rest[1:]
    matches = [f for f in funcs.values() if rest and _command_name(f, app) == rest[0]]
    assert len(matches) == 1, f"{cmd!r}: no command {rest[:1]} in cli.py"
    # the command, and the cli.py functions it uses (decorators, helpers), transitively
    used, todo = set(), [matches[0].name]
    while todo:
        name = todo.pop()
        used.add(name)
        refs = {n.id for n in ast.walk(funcs[name]) if isinstance(n, ast.Name)}
        todo.extend(r for r in refs & set(funcs) if r not in used)
    top = [n for n in tree.body if not isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    direct = _imports([*top, *(funcs[n] for n in used)], CLI) | {CLI}
    callbacks = [f for f in funcs.values() if any(
        getattr(getattr(d, "func", d), "attr", "") == "callback" for d in f.decorator_list)]
    direct |= _imports(callbacks, CLI)  # the app callback runs before every command
    return closure(direct - {CLI}) | with_parents(CLI)


def code_files(modules: set[str]) -> set[str]:
    """Repository paths of ``modules``' code: their files, plus data files of packages."""
    out = set()
    for m in modules:
        path = _module_path(m)
        out.add(path.relative_to(ROOT).as_posix())
        if path.name == "__init__.py":
            out |= {p.relative_to(ROOT).as_posix() for p in path.parent.iterdir()
                    if p.is_file() and p.suffix not in (".py", ".pyc")}
    return out


# ------------------------------------------------------------------------- dvc.yaml
def stages() -> dict[str, dict]:
    """dvc.yaml's stages; a ``foreach`` stage once per item (``train@cnn``)."""
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    out = {}
    for name, stage in spec.items():
        if "foreach" not in stage:
            out[name] = stage
            continue
        ref = stage["foreach"].strip("${} ").split(".")
        items = params
        for key in ref:
            items = items[key]
        for item in items:
            text = json.dumps(stage["do"]).replace("${item}", str(item))
            out[f"{name}@{item}"] = json.loads(text)
    return out


def _paths(entries: list) -> list[str]:
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries or []]


def covered(path: str, deps: list[str]) -> bool:
    return any(path == d or Path(d) in Path(path).parents for d in deps)


def required(stage: dict) -> set[str]:
    return code_files(command_modules(stage["cmd"]))


# ---------------------------------------------------------------------------- tests
@pytest.mark.parametrize("name", sorted(stages()))
def test_stage_deps_cover_the_code_it_runs(name: str):
    stage = stages()[name]
    deps = _paths(stage["deps"])
    missing = sorted(p for p in required(stage) if not covered(p, deps))
    assert not missing, f"dvc.yaml stage {name!r} runs code it does not depend on: {missing}"


@pytest.mark.parametrize("name", sorted(stages()))
def test_stage_deps_list_no_code_it_does_not_run(name: str):
    stage = stages()[name]
    need = required(stage)
    code_deps = [d for d in _paths(stage["deps"]) if d.startswith("src/")]
    extra = [d for d in code_deps if not any(covered(p, [d]) for p in need)]
    assert not extra, f"dvc.yaml stage {name!r} depends on code it never runs: {extra}"


def test_derivation_follows_plugin_packages_relative_imports_and_resources(tmp_path, monkeypatch):
    """A kinds/ package whose __init__ imports its plug-ins (relatively, or by computed name)."""
    src = tmp_path / "src"
    pkg = src / "genreflow"
    (pkg / "kinds").mkdir(parents=True)
    (pkg / "loose").mkdir()
    (pkg / "res").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "cli.py").write_text("import typer\napp = typer.Typer()\n\n@app.command()\n"
                                "def train():\n    from genreflow.trainer import fit\n")
    (pkg / "trainer.py").write_text("from importlib import resources\nimport genreflow.kinds\n"
                                    "def fit():\n    from genreflow import util\n"
                                    "    resources.files('genreflow.res')\n")
    (pkg / "util.py").write_text("")
    (pkg / "unused.py").write_text("")
    (pkg / "kinds" / "__init__.py").write_text("from . import cnn\nfrom .base import Kind\n")
    (pkg / "kinds" / "base.py").write_text("class Kind: ...\n")
    (pkg / "kinds" / "cnn.py").write_text("from .base import Kind\n")
    (pkg / "loose" / "__init__.py").write_text(
        "import importlib, pkgutil\nfor m in pkgutil.iter_modules(__path__):\n"
        "    importlib.import_module(f'{__name__}.{m.name}')\n")
    (pkg / "loose" / "a.py").write_text("")
    (pkg / "loose" / "b.py").write_text("from genreflow import loose\n")
    (pkg / "res" / "__init__.py").write_text("")
    (pkg / "res" / "table.json").write_text("{}")
    monkeypatch.setattr(sys.modules[__name__], "SRC", src)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    try:
        got = command_modules("genreflow train")
        assert got == {"genreflow", "genreflow.cli", "genreflow.trainer", "genreflow.util",
                       "genreflow.kinds", "genreflow.kinds.cnn", "genreflow.kinds.base",
                       "genreflow.res"}
        assert "src/genreflow/res/table.json" in code_files(got)
        assert closure({"genreflow.loose.b"}) == {"genreflow", "genreflow.loose",
                                                  "genreflow.loose.a", "genreflow.loose.b"}
    finally:
        _graph.cache_clear()


# ------------------------------------------------------------ the same, with real DVC
def _dvc(args: list[str], cwd: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"dvc {args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _changed_stages(repo: Path) -> set[str]:
    """The stages `dvc status` reports as changed (DVC's Python API: 1 s less per call)."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        return {key.rpartition(":")[2] for key in dvc_repo.status()}


def _stub(path: Path) -> None:
    """A placeholder for a stage's input or output: a file when it has a suffix, else a
    folder with one file."""
    if path.exists():
        return
    if path.suffix:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("stub\n")
    else:
        path.mkdir(parents=True)
        (path / "stub").write_text("stub\n")


@pytest.mark.slow  # real DVC over a copy of the pipeline: `make test-all`
@pytest.mark.integration
def test_editing_imported_code_makes_dvc_status_report_the_stage(tmp_path: Path):
    """In a copy of the pipeline with stub data and outputs (nothing runs), committing the
    lock makes `dvc status` clean; then editing a source file changes exactly the stages that
    run it, for one file of every distinct set of stages (the static tests above check that
    every file is listed)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, repo / name)
    shutil.copytree(SRC, repo / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _dvc(["init", "--no-scm", "-q"], repo)
    _dvc(["config", "--local", "core.site_cache_dir", str(tmp_path / "dvc-site")], repo)
    all_stages = stages()
    for stage in all_stages.values():
        for key in ("deps", "outs", "metrics", "plots"):
            for p in _paths(stage.get(key)):
                _stub(repo / p)
    _dvc(["commit", "-f", "-q"], repo)
    assert json.loads(_dvc(["status", "--json"], repo)) == {}

    users: dict[str, set[str]] = {}
    for name, stage in all_stages.items():
        for path in required(stage):
            users.setdefault(path, set()).add(name)
    assert "src/genreflow/cli.py" in users and "src/genreflow/core/errors.py" in users
    # one file per distinct set of stages that run it (each `dvc status` re-hashes every
    # dependency), plus the two every stage runs: each set is a different answer DVC must give
    picked: dict[frozenset, str] = {}
    for path, who in sorted(users.items()):
        picked.setdefault(frozenset(who), path)
    probes = {*picked.values(), "src/genreflow/cli.py", "src/genreflow/core/errors.py"}
    for path, who in sorted((p, users[p]) for p in probes):
        target = repo / path
        before = target.read_bytes()
        target.write_bytes(before + b"\n# edited\n")
        try:
            changed = _changed_stages(repo)
        finally:
            target.write_bytes(before)
        assert changed == who, f"editing {path}: dvc status reports {sorted(changed)}, " \
                               f"expected the stages that run it: {sorted(who)}"
    assert _changed_stages(repo) == set()
