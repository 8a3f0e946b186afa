"""Caches are keyed on every input they depend on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from genreflow.core.cachekey import code_digest, code_key
from genreflow.core.codegraph import SRC
from genreflow.kinds import get_kind
from genreflow.kinds.inception.config import InceptionConfig
from genreflow.kinds.inception.embed import cache_key
from genreflow.kinds.musicnn.kind import MusicnnConfig


def _features(root: Path, value: float = 0.0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "test"):
        np.savez(root / f"{split}.npz", x=np.full((2, 4, 8), value, np.float16))
    (root / "stats.json").write_text(json.dumps({"mean": [0.0] * 4, "std": [1.0] * 4}))
    return root


def test_inception_embedding_cache_key_covers_seed_weights_size_and_features(tmp_path):
    feats = _features(tmp_path / "f")
    random_base = InceptionConfig(weights="none")
    assert cache_key(feats, random_base, seed=1) != cache_key(feats, random_base, seed=2)
    weights = tmp_path / "w.h5"
    weights.write_bytes(b"weights-1")
    from_file = InceptionConfig(weights=str(weights), band_limit=0.0)
    assert cache_key(feats, from_file, seed=1) == cache_key(feats, from_file, seed=2)
    # the low-passed copies of training clips are drawn from the seed
    copies = InceptionConfig(weights=str(weights), band_limit=0.3)
    assert cache_key(feats, copies, seed=1) != cache_key(feats, copies, seed=2)
    assert cache_key(feats, copies, seed=1) != cache_key(feats, from_file, seed=1)
    before = cache_key(feats, from_file, 1)
    weights.write_bytes(b"weights-2")  # other weights under the same name
    assert cache_key(feats, from_file, 1) != before
    assert cache_key(feats, InceptionConfig(image_size=75), 1) != cache_key(
        feats, InceptionConfig(image_size=139), 1)
    other = _features(tmp_path / "g", value=1.0)  # same shapes, other numbers
    assert cache_key(feats, random_base, 1) != cache_key(other, random_base, 1)


def test_code_digest_ignores_comments_and_docstrings_not_code(tmp_path):
    from genreflow.kinds.musicnn import front

    src = Path(front.__file__).read_text()
    module = tmp_path / "front.py"
    module.write_text(src)
    before = code_digest(module)
    # a reworded docstring and comment: the embeddings cannot change, the cache holds
    module.write_text(src.replace("The front-end shared by", "The one front-end of")
                      .replace("def resampled_copy", "# reworded\ndef resampled_copy"))
    assert module.read_text() != src and code_digest(module) == before
    # a changed constant is a changed front-end
    module.write_text(src.replace("if share <= 0:", "if share <= 0.1:"))
    assert code_digest(module) != before


# ------------------------------------------------- the code part: the roots' import closure
def _src_copy(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(SRC / "genreflow", src / "genreflow",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return src


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path}: {old!r} is gone; update this test"
    path.write_text(text.replace(old, new, 1))


@pytest.fixture
def keys(tiny_features_dir, tmp_path):
    """``keys(src)``: musicnn's per-clip and inception's embedding cache keys for a tree."""
    musicnn, mcfg = get_kind("musicnn"), MusicnnConfig()
    icfg = InceptionConfig()

    def of(src: Path) -> dict[str, str]:
        return {"musicnn": musicnn.cache_key(mcfg, src=src),
                "musicnn narrow view": musicnn.cache_key(mcfg, view=12000, src=src),
                "inception": cache_key(tiny_features_dir, icfg, seed=1, src=src)}
    return of


@pytest.fixture
def tiny_features_dir(tmp_path):
    return _features(tmp_path / "features")


def test_editing_the_front_end_changes_every_embedding_cache_key(tmp_path, keys):
    """The STFT and mel bank both kinds' embeddings go through live in audio.spectrum:
    a change there must not be answered from the caches."""
    src = _src_copy(tmp_path)
    before = keys(src)
    assert before == keys(SRC)  # the copy is the running code
    _edit(src / "genreflow/audio/spectrum.py", "FLOOR_DB = -70.0", "FLOOR_DB = -80.0")
    after = keys(src)
    assert all(after[k] != before[k] for k in before), (before, after)


@pytest.mark.parametrize("module", ["genreflow/serving/http.py",
                                    "genreflow/stages/report/html.py",
                                    "genreflow/kinds/musicnn/top.py"])
def test_editing_code_outside_the_closure_keeps_the_keys(tmp_path, keys, module):
    """The HTTP server, the report and musicnn's trained top compute no embedding."""
    src = _src_copy(tmp_path)
    before = keys(src)
    _edit(src / module, "\ndef ", "\ndef _unused():\n    return 1\n\n\ndef ")
    assert keys(src) == before


def test_editing_a_docstring_or_a_comment_of_the_front_end_keeps_the_keys(tmp_path, keys):
    src = _src_copy(tmp_path)
    before = keys(src)
    spectrum = src / "genreflow/audio/spectrum.py"
    text = spectrum.read_text()
    start = text.index('"""') + 3
    spectrum.write_text(text[:start] + "Reworded. " + text[start:] + "\n# a comment\n")
    assert keys(src) == before


def test_each_kind_module_in_the_closure_counts(tmp_path):
    """Editing any module of the closure changes the code key; the closure holds the
    modules that compute the values and what they import (module- and function-level)."""
    from genreflow.core.codegraph import CodeGraph

    roots = get_kind("inception").cache_roots
    closure = CodeGraph(SRC).closure(roots, plugins=False)
    assert {"genreflow.kinds.inception.layers", "genreflow.kinds.logmel_band",
            "genreflow.models.layers", "genreflow.audio.spectrum"} <= closure
    assert not {"genreflow.kinds.inception.kind", "genreflow.serving.http"} & closure
    src = _src_copy(tmp_path)
    before = code_key(roots, src)
    _edit(src / "genreflow/kinds/inception/layers.py", "x / 3.0", "x / 4.0")
    assert code_key(roots, src) != before
