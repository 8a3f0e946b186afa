"""The champion/challenger rule, against a real MLflow registry in tmp_path."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from mlflow import MlflowClient

from genreflow.errors import GenreflowError
from genreflow.register import best_run, decide, register_best
from genreflow.train import train_model

quiet = lambda m: None  # noqa: E731


def test_decide_rule():
    assert decide(0.8, None)[0] == "champion"
    assert decide(0.81, 0.80)[0] == "champion"
    alias, reason = decide(0.80, 0.80)
    assert alias == "challenger" and "does not beat" in reason
    assert decide(0.7, 0.8)[0] == "challenger"


def test_register_champion_then_challenger(tiny_project, tmp_path):
    cfg, feat_dir = tiny_project
    with pytest.raises(GenreflowError, match="train a model first"):
        register_best(cfg, feat_dir, log=quiet)
    run = train_model(cfg, "segcnn", feat_dir, log=quiet)
    first = register_best(cfg, feat_dir, out=tmp_path / "register.json", log=quiet)
    assert (first.alias, first.version, first.run_id) == ("champion", "1", run.run_id)
    client = MlflowClient(cfg.tracking.uri)
    name = cfg.register.model_name
    mv = client.get_model_version_by_alias(name, "champion")
    assert mv.tags["data_source"] == "synthetic" and mv.tags["git_commit"]
    assert float(mv.tags["val_track_accuracy"]) == pytest.approx(run.metrics["val_track_accuracy"])
    assert "test_track_accuracy" in mv.tags and mv.tags["data_digest"]
    # The same best run again does not beat the champion: it becomes the challenger.
    second = register_best(cfg, feat_dir, log=quiet)
    assert (second.alias, second.version) == ("challenger", "2")
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    saved = json.loads((tmp_path / "register.json").read_text())
    assert saved["alias"] == "champion" and saved["model_kind"] == "segcnn"


def test_register_ignores_other_data(tiny_project):
    cfg, feat_dir = tiny_project
    train_model(cfg, "segcnn", feat_dir, log=quiet)
    cfg.data = replace(cfg.data, dir=str(feat_dir))  # another data digest: no eligible run
    (feat_dir.parent / "features.dvc").write_text("outs:\n- md5: 0123abcd.dir\n  path: features\n")
    with pytest.raises(GenreflowError, match="current data"):
        register_best(cfg, feat_dir, log=quiet)


def test_best_run_ties_go_to_lower_validation_loss(tiny_project):
    import mlflow

    from genreflow.tracking import setup_mlflow

    cfg, _ = tiny_project
    setup_mlflow(cfg.tracking, cfg.train.experiment)
    ids = {}
    for name, acc, loss, extra in [("older-better-loss", 0.9, 0.3, {}), ("newer", 0.9, 0.5, {}),
                                   ("pruned", 0.95, 0.1, {"trial_state": "pruned"}),
                                   ("other-data", 0.99, 0.1, {"data_digest": "other"}),
                                   ("worse", 0.8, 0.05, {})]:
        with mlflow.start_run(run_name=name, tags={"data_digest": "d1", **extra}) as run:
            mlflow.log_metrics({"val_track_accuracy": acc, "val_track_loss": loss})
        ids[name] = run.info.run_id
    assert best_run(cfg, "d1", [cfg.train.experiment]).info.run_id == ids["older-better-loss"]
