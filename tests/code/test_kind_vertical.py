"""Each model kind owns its vertical: its front-end spec, its dvc.yaml params, its names.

dvc.yaml's per-kind lines are checked against the registry: every kind's ``train.<kind>``
section is a param of the stages that read it, and the ``embed`` stage declares exactly the
settings of the kinds that have an embed step (``ModelKind.embed_params``).
"""

from __future__ import annotations

import ast
import json

import pytest
import yaml
from test_dvc_deps import ROOT, SRC, stages
from test_dvc_params import declared_params

from genreflow.core.errors import GenreflowError
from genreflow.kinds import get_kind, kind_names

BUILTIN = ("cnn", "segcnn", "inception", "musicnn")
#: string literals naming a kind that may stay outside src/genreflow/kinds: the defaults of
#: two settings (a default has to name some kind; a new kind needs no change there)
ALLOWED = {("core/config.py", "cnn"), ("core/config.py", "inception"),
           ("core/config.py", "segcnn"), ("core/config.py", "musicnn")}


def test_builtin_kinds_are_registered():
    assert set(BUILTIN) <= set(kind_names())


@pytest.mark.parametrize("kind", BUILTIN)
def test_every_kind_section_is_a_param_of_its_train_stage(kind):
    assert f"train.{kind}" in declared_params(stages()[f"train@{kind}"])


def test_tune_declares_the_section_of_the_kind_it_tunes():
    """Whichever kind ``tune.model`` names, a plug-in too: no kind is listed by name."""
    declared = declared_params(stages()["tune"])
    assert "train.${tune.model}" in declared and "tune.model" in declared
    assert not {f"train.{k}" for k in BUILTIN} & set(declared)


def test_embed_params_are_exactly_the_embed_settings_of_the_kinds():
    declared = {p for p in declared_params(stages()["embed"]) if p != "train.models"
                and p.startswith("train.")}
    expected = {f"train.{k}.{p}" for k in BUILTIN for p in get_kind(k).embed_params}
    assert declared == expected
    # and those are real settings of their kinds
    params = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]
    for key in expected:
        _, kind, name = key.split(".")
        assert name in params[kind], key


def test_no_kind_name_in_code_outside_the_kinds():
    """No string literal naming a built-in kind outside src/genreflow/kinds (docstrings and
    help texts aside), so that no code path special-cases a kind."""
    found = set()
    for path in (SRC / "genreflow").rglob("*.py"):
        rel = path.relative_to(SRC / "genreflow").as_posix()
        if rel.startswith("kinds/"):
            continue
        tree = ast.parse(path.read_text())
        docs = {id(n.body[0].value) for n in ast.walk(tree)
                if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef)
                and n.body and isinstance(n.body[0], ast.Expr)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and node.value in BUILTIN
                    and id(node) not in docs):
                found.add((rel, node.value))
    assert found <= ALLOWED, sorted(found - ALLOWED)


# ----------------------------------------------------------------- typed front-ends
def _front_end_json(kind: str) -> dict:
    if kind == "musicnn":
        return {"sample_rate": 16000, "variant": "MSD_musicnn", "layer": "penultimate",
                "aggregate": "mean_logits", "narrow_band": True}
    return {"sample_rate": 22050, "stats": {"mean": [0.0], "std": [1.0]}, "floor_db": -70.0,
            "loudness_dbfs": -20.0, "features": {"sample_rate": 22050, "n_mels": 1},
            **({"narrow_band": True} if kind == "inception" else {})}


@pytest.mark.parametrize("kind", BUILTIN)
def test_front_end_round_trips_and_old_bundles_read_as_version_1(kind):
    """A bundle from before front-ends had a version reads as version 1, which is the current
    one or (segcnn: version 2) upgraded to it."""
    k = get_kind(kind)
    old = _front_end_json(kind)  # what bundles held before front-ends had a version
    fe = k.front_end(old)
    assert fe.version == k.FrontEnd.VERSION and k.sample_rate(fe) == old["sample_rate"]
    again = k.front_end(json.loads(json.dumps(fe.to_json())))
    assert again == fe and again.to_json()["version"] == k.FrontEnd.VERSION


@pytest.mark.parametrize("kind", BUILTIN)
def test_front_end_of_another_version_or_missing_fields_is_one_line(kind):
    k = get_kind(kind)
    newer = k.FrontEnd.VERSION + 1
    with pytest.raises(GenreflowError, match=rf"bundle/preprocess.json: .*version {newer}.*retrain"):
        k.front_end({**_front_end_json(kind), "version": newer}, "bundle/preprocess.json")
    with pytest.raises(GenreflowError, match=r"bundle/preprocess.json: front_end lacks .*"
                                             r"sample_rate.*retrain"):
        k.front_end({}, "bundle/preprocess.json")
