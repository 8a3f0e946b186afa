"""Caches are keyed on every input they depend on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from genreflow.kinds.inception import InceptionConfig, cache_key


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
    from genreflow.kinds.embedding_cache import code_digest
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
