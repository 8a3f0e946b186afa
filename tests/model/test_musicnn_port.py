"""The Keras port of musicnn against the original TF1 graph's outputs (tests/golden/musicnn.npz).

The golden file holds two 3 s log-mel patches of genreflow's synthetic "rock" and "classical"
styles (no GTZAN audio is committed) and
what the original graph (``scripts/musicnn_golden.py``) computed on them with the checkpoints
shipped in the ``musicnn`` wheel, which ``make install`` installs.
"""

from __future__ import annotations

from pathlib import Path

import keras
import librosa
import numpy as np
import pytest

from genreflow.core.errors import GenreflowError
from genreflow.kinds.musicnn import net as mn

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "musicnn.npz"
INSTALL = "pip install --no-deps musicnn==0.1.0"


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def ported(golden) -> dict[str, dict[str, np.ndarray]]:
    """Each variant's port run on the golden patches (the same float16-rounded values)."""
    x = golden["patches"].astype(np.float32)
    return {variant: mn.build_musicnn(variant).predict(x, verbose=0) for variant in mn.VARIANTS}


@pytest.mark.parametrize("variant", mn.VARIANTS)
@pytest.mark.parametrize("output", list(mn.OUTPUTS))
def test_port_matches_the_original_graph(golden, ported, variant, output):
    ref = golden[f"{variant[:3].lower()}_{output}"]
    got = ported[variant][output]
    assert got.shape == ref.shape == (len(golden["clip_ids"]), mn.OUTPUTS[output])
    assert np.max(np.abs(got - ref)) <= 1e-3


def _top(scores: np.ndarray, tags: tuple[str, ...], k: int = 5) -> list[str]:
    return [tags[i] for i in np.argsort(-scores)[:k]]


def test_tags_rank_sensibly(golden, ported):
    ids = list(golden["clip_ids"])
    rock, classical = ids.index("synthetic-rock"), ids.index("synthetic-classical")
    msd, mtt = ported["MSD_musicnn"]["taggram"], ported["MTT_musicnn"]["taggram"]
    assert "rock" in _top(msd[rock], mn.MSD_TAGS)
    # MSD's 50 tags have no "classical": the classical patch is "instrumental", and less rock
    assert "instrumental" in _top(msd[classical], mn.MSD_TAGS)
    assert "rock" not in _top(msd[classical], mn.MSD_TAGS)
    assert msd[rock, mn.MSD_TAGS.index("rock")] > 2 * msd[classical, mn.MSD_TAGS.index("rock")]
    # MTT: the classical patch sounds like solo piano or flute, the rock one like guitar
    assert {"piano", "flute", "strings", "violin", "classical"} & set(_top(mtt[classical],
                                                                          mn.MTT_TAGS))
    assert "guitar" not in _top(mtt[classical], mn.MTT_TAGS)
    assert {"rock", "guitar"} & set(_top(mtt[rock], mn.MTT_TAGS))
    assert mn.tag_names("MSD_musicnn") == mn.MSD_TAGS and len(mn.MTT_TAGS) == 50


def test_missing_weights_name_the_install_command(tmp_path, monkeypatch):
    (tmp_path / "MSD_musicnn").mkdir()  # a folder without the checkpoint files
    with pytest.raises(GenreflowError, match="lacks the checkpoint files") as err:
        mn.weights_dir("MSD_musicnn", root=tmp_path)
    assert INSTALL in str(err.value)
    monkeypatch.setattr(mn, "_package_dir", lambda: None)  # as if musicnn were not installed
    with pytest.raises(GenreflowError, match="not installed") as err:
        mn.build_musicnn("MTT_musicnn")
    assert INSTALL in str(err.value)
    with pytest.raises(GenreflowError, match="MSD_musicnn"):
        mn.weights_dir("MSD_vgg")


def test_saved_model_loads_and_predicts_the_same(tmp_path, golden):
    model = mn.build_musicnn("MSD_musicnn")
    mn.set_trainable_from(model, "backend")
    path = tmp_path / "musicnn.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = golden["patches"].astype(np.float32)
    before, after = model.predict(x, verbose=0), loaded.predict(x, verbose=0)
    for name in mn.OUTPUTS:
        np.testing.assert_allclose(after[name], before[name], rtol=0, atol=1e-6)
    assert loaded.get_layer("backend_dense").trainable
    assert not loaded.get_layer("midend3_conv").trainable


def test_set_trainable_from_unfreezes_the_last_blocks_only():
    model = mn.build_musicnn("MSD_musicnn", load_weights=False)
    mn.set_trainable_from(model, None)
    assert not model.trainable_weights
    mn.set_trainable_from(model, "midend3")
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert trainable == {"midend3_conv", "midend3_bn", "backend_pool_bn", "backend_dense",
                         "backend_penultimate_bn", "output_logits"}
    mn.set_trainable_from(model, "input")
    assert len(model.trainable_weights) == len(model.weights) - 2 * 11  # 11 BNs: moving stats
    with pytest.raises(GenreflowError, match="trainable_from"):
        mn.set_trainable_from(model, "midend9")


def test_front_end_is_musicnns_formula_in_float32():
    rng = np.random.default_rng(0)
    t = np.arange(4 * mn.SAMPLE_RATE) / mn.SAMPLE_RATE
    y = (0.9 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    mel = librosa.feature.melspectrogram(y=y, sr=16000, hop_length=256, n_fft=512, n_mels=96).T
    expected = np.log10(10000 * mel.astype(np.float32) + 1)
    got = mn.musicnn_front_end(y)
    assert got.dtype == np.float32 and got.shape == (1 + len(y) // 256, 96)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert np.isfinite(got).all()
    # the reference's float16 cast before the multiply overflows on this loud tone
    with np.errstate(over="ignore"):
        assert np.isinf(np.log10(10000 * mel.astype(np.float16) + 1)).any()
    with pytest.raises(GenreflowError, match="16000 Hz"):
        mn.musicnn_front_end(y, sample_rate=22050)


def test_patches_cover_real_frames_only():
    spec = np.arange(500 * 96, dtype=np.float32).reshape(500, 96)
    p = mn.patches(spec, hop_frames=187)
    assert p.shape == (2, 187, 96)  # frames 0-186 and 187-373; 374-499 is short of a patch
    np.testing.assert_array_equal(p[1], spec[187:374])
    assert mn.patches(spec, hop_frames=100).shape == (4, 187, 96)
    assert mn.patches(spec[:187], hop_frames=187).shape == (1, 187, 96)
    with pytest.raises(GenreflowError, match="shorter than one 187-frame patch"):
        mn.patches(spec[:100], hop_frames=187)
    short = mn.patches(spec[:100], hop_frames=187, pad_short=True)
    assert short.shape == (1, 187, 96)
    np.testing.assert_array_equal(short[0, 100:], spec[:87])  # repeat-padded
