"""The musicnn kind through the platform: embed stage, cached embeddings, training, serving path."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from genreflow.config import ConfigError
from genreflow.inference import GenrePredictor
from genreflow.kinds import get_kind
from genreflow.train import train_model
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
    from genreflow.tune import tune

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


@pytest.mark.parametrize("field,value", [("variant", "GTZAN_musicnn"), ("layer", "conv1"),
                                         ("top", "mlp"), ("trainable_from", "input")])
def test_musicnn_settings_name_the_bad_field(tiny_project, field, value):
    cfg, _ = tiny_project
    with pytest.raises(ConfigError, match=rf"train\.musicnn.*{field}"):
        with_kind(cfg, "musicnn", **{field: value})
