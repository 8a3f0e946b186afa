"""The musicnn kind through the platform: embed stage, cached embeddings, training, serving path."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from genreflow.core.config import ConfigError
from genreflow.kinds import get_kind
from genreflow.kinds.musicnn.kind import NARROW_VIEW
from genreflow.serving.predictor import GenrePredictor
from genreflow.stages.train import train_model
from tests_helpers import Logs, with_kind

quiet = lambda m: None  # noqa: E731


def _embed(cfg, root: Path, log=quiet) -> dict:
    table = pd.read_csv(root / "split.csv")
    return get_kind("musicnn").embed(cfg, table, root / "embeddings" / "musicnn", "synthetic",
                                     log=log)


def test_musicnn_embeds_once_trains_and_serves_the_same_numbers(tiny_project, tmp_path: Path):
    cfg, feat_dir = tiny_project
    cfg.train = replace(cfg.train, max_epochs=3, patience=3)
    meta = _embed(cfg, tmp_path)
    assert not meta["failed"] and len(meta["clips"]["clip_id"]) == 24
    again = Logs()
    _embed(cfg, tmp_path, again)  # every clip comes from the per-clip cache
    assert "24 of 24 clips cached" in again.text

    res = train_model(cfg, "musicnn", feat_dir, bundle_dir=tmp_path / "bundle",
                      report_dir=tmp_path / "rep", log=quiet)
    run = MlflowClient(cfg.tracking.uri).get_run(res.run_id)
    assert run.info.status == "FINISHED" and run.data.params["model.layer"] == "penultimate"
    assert run.data.params["input_shape"] == "187x96"  # one 3 s patch of 96 mel bands
    assert "model.filters" not in run.data.params  # only the kind's own settings are logged
    assert res.metrics["epochs"] <= 3

    # the bundle on the raw audio gives the track probabilities training reported
    pred = GenrePredictor.from_bundle(tmp_path / "bundle")
    table = pd.read_csv(tmp_path / "split.csv")
    val = table[table["split"] == "val"]
    answers = [pred.classes[int(np.argmax(pred.predict_file(p)))] for p in val["path"]]
    reported = pd.read_csv(tmp_path / "rep" / "predictions_val.csv")
    assert answers == list(reported.set_index("clip_id").loc[val["clip_id"], "predicted"])
    assert pred.sample_rate == 16000

    # tuning the top (optimiser x learning rate) goes through the same kind
    from genreflow.stages.tune import tune

    summary = tune(cfg, feat_dir, n_trials=1, model="musicnn", log=quiet)
    assert summary["model"] == "musicnn" and summary["n_complete"] == 1


def test_top_settings_reuse_embeddings_and_other_layer_is_refused(tiny_project, tmp_path):
    cfg, feat_dir = tiny_project
    cfg.train = replace(cfg.train, max_epochs=1)
    _embed(cfg, tmp_path)
    with_kind(cfg, "musicnn", top="dense", dense=8, dropout=0.1)
    assert train_model(cfg, "musicnn", feat_dir, log=quiet).metrics["epochs"] == 1
    with_kind(cfg, "musicnn", layer="max_pool")
    with pytest.raises(ConfigError, match="dvc repro embed"):
        train_model(cfg, "musicnn", feat_dir, log=quiet)
    # one network pass cached every layer: another layer costs no network pass
    logs = Logs()
    _embed(cfg, tmp_path, logs)
    assert "24 of 24 clips cached" in logs.text
    assert train_model(cfg, "musicnn", feat_dir, log=quiet).metrics["epochs"] == 1


def test_band_limited_copies_of_training_clips_are_embedded_cached_and_trained_on(
        tiny_project, tmp_path):
    from genreflow.kinds.embedding_cache import load_embeddings
    from genreflow.kinds.musicnn.front import band_limit_copies

    cfg, feat_dir = tiny_project
    cfg.train = replace(cfg.train, max_epochs=2)
    with_kind(cfg, "musicnn", band_limit=1.0)
    meta = _embed(cfg, tmp_path)
    table = pd.read_csv(tmp_path / "split.csv")
    assert sorted(meta["augmented"]) == sorted(table.loc[table["split"] == "train", "clip_id"])
    emb = load_embeddings(tmp_path / "embeddings" / "musicnn")
    assert emb.key["band_limit"] == 1.0
    assert emb.aug_x.shape == emb.x["train"].shape and list(emb.aug_y) == list(emb.y["train"])
    assert not np.allclose(emb.aug_x, emb.x["train"])  # the copies lost their high bands
    logs = Logs()
    _embed(cfg, tmp_path, logs)
    assert "24 of 24 clips cached" in logs.text
    res = train_model(cfg, "musicnn", feat_dir, log=quiet)
    assert res.metrics["epochs"] == 2
    with_kind(cfg, "musicnn", band_limit=0.0)  # the embeddings no longer match the settings
    with pytest.raises(ConfigError, match="dvc repro embed"):
        train_model(cfg, "musicnn", feat_dir, log=quiet)

    # the copy is decided by the clip's bytes: the same for any split or seed
    pick = band_limit_copies(0.5)
    draws = [pick(f"{i:08x}" + "8" * 24) for i in range(0, 16**8, 16**7)]
    assert 0 < sum(d is not None for d in draws) < len(draws)
    assert band_limit_copies(0.0) is None
    rates = {band_limit_copies(1.0)(f"{i:012x}" + "0" * 20)[0] for i in range(64)}
    assert rates == {"sr7200", "sr9922"}  # 8 and 11.025 kHz, less 10 %, for the lowest digests
    tag, through = band_limit_copies(1.0)("0" * 32)
    assert tag == "sr7200"  # telephone band, the lowest cut
    t = np.arange(16000) / 16000
    tones = np.sin(2 * np.pi * 1000 * t) + np.sin(2 * np.pi * 5000 * t)
    spectrum = np.abs(np.fft.rfft(through(tones.astype(np.float32))))  # 1 Hz per bin
    assert spectrum[5000] < 1e-3 * spectrum[1000]  # 5 kHz is gone at 7.2 kHz, 1 kHz stays


@pytest.mark.slow  # fine-tuning the musicnn base: `make test-all`
def test_a_fine_tuned_base_embeds_no_narrow_view_and_trains_from_audio(tiny_project, tmp_path):
    """The narrow-band view feeds only the routed (frozen) top: fine-tuning skips its pass."""
    cfg, feat_dir = tiny_project
    cfg.train = replace(cfg.train, max_epochs=1)
    with_kind(cfg, "musicnn", trainable_from="backend")
    logs = Logs()
    _embed(cfg, tmp_path, logs)
    assert "narrow-band view" not in logs.text
    assert not (tmp_path / "embeddings" / "musicnn" / NARROW_VIEW).exists()
    res = train_model(cfg, "musicnn", feat_dir, log=quiet)
    assert res.metrics["epochs"] == 1
    with_kind(cfg, "musicnn", trainable_from=None)  # routed again: the view must be embedded
    with pytest.raises(ConfigError, match="dvc repro embed"):
        train_model(cfg, "musicnn", feat_dir, log=quiet)


@pytest.mark.parametrize("field,value", [("variant", "GTZAN_musicnn"), ("layer", "conv1"),
                                         ("top", "mlp"), ("trainable_from", "input"),
                                         ("band_limit", 1.5), ("l2", -0.1)])
def test_musicnn_settings_name_the_bad_field(tiny_project, field, value):
    cfg, _ = tiny_project
    with pytest.raises(ConfigError, match=rf"train\.musicnn.*{field}"):
        with_kind(cfg, "musicnn", **{field: value})


def test_narrow_band_patches_are_read_by_their_own_top(tiny_project, tmp_path):
    """An 8 kHz recording's patches go to the narrow-band top, full-band ones to the other,
    in the saved servable (the layer and its numpy twin agree on the flag)."""
    from genreflow.kinds.musicnn.band import NarrowBand, first_high_band, narrow_flags
    from genreflow.kinds.musicnn.front import clip_patches, resampled_copy

    cfg, feat_dir = tiny_project
    cfg.train = replace(cfg.train, max_epochs=1)
    meta = _embed(cfg, tmp_path)
    assert (tmp_path / "embeddings" / "musicnn" / "narrow").is_dir() and meta["key"]["narrow_band"]
    train_model(cfg, "musicnn", feat_dir, bundle_dir=tmp_path / "bundle", log=quiet)

    rng = np.random.default_rng(0)
    t = np.arange(6 * 16000) / 16000
    full = (0.1 * rng.standard_normal(len(t)) + np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    narrow = resampled_copy(full, 8000)  # an 8 kHz recording, as the front-end gets it
    for y, flag in ((full, 0.0), (narrow, 1.0)):
        p = clip_patches(y)
        assert (narrow_flags(p) == flag).all()
        assert (np.asarray(NarrowBand(first_high_band())(p)) == flag).all()

    plain = GenrePredictor.from_bundle(tmp_path / "bundle")
    assert plain.front_end.narrow_band is True
    cut = GenrePredictor.from_bundle(tmp_path / "bundle")
    logits = next(m for m in cut.model.layers if m.name == "top_logits").get_layer("genre_logits")
    kernel = logits.get_weights()[0]  # rows: full-band features, narrow-band features, 2 biases
    d = (kernel.shape[0] - 2) // 2
    kernel[d:2 * d] = 0
    kernel[-1] = 0
    logits.set_weights([kernel])  # the narrow-band top now answers "no idea"
    n = len(plain.classes)
    np.testing.assert_allclose(cut.probs_from_audio(full), plain.probs_from_audio(full), atol=1e-6)
    np.testing.assert_allclose(cut.probs_from_audio(narrow), np.full(n, 1 / n), atol=1e-6)
    assert not np.allclose(plain.probs_from_audio(narrow), 1 / n, atol=1e-3)
