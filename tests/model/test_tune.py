"""The Optuna study: resumable, one MLflow parent run per invocation, nested trial runs,
pruning and failures recorded, the test split never touched. Real optuna, MLflow and Keras
on the tiny project (2 epochs per trial)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import optuna
import pandas as pd
import pytest

from tests_helpers import with_kind

quiet = lambda m: None  # noqa: E731


def _runs(cfg) -> tuple[list, list]:
    """(parent runs, nested trial runs) of the test experiment."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(cfg.tracking.uri)
    exp = client.get_experiment_by_name(cfg.train.experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("role") == "optuna_study"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def _split_tracks(root: Path, split: str) -> pd.DataFrame:
    manifest = pd.read_csv(root / "split.csv")
    return manifest[manifest["split"] == split]


def _study(cfg):
    from genreflow.stages.study import study_name

    return optuna.load_study(study_name=study_name(cfg), storage=cfg.tune.storage)


def test_study_resumes_and_tracks_parent_and_nested_runs(tiny_project, tmp_path: Path,
                                                        monkeypatch):
    import tempfile

    from mlflow.tracking import MlflowClient

    from genreflow.stages.study import study_summary
    from genreflow.stages.tune import tune

    cfg, feat_dir = tiny_project
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    out = tmp_path / "reports" / "tune"
    first = tune(cfg, feat_dir, out_dir=out, log=quiet)  # tune.n_trials == 2
    assert first["n_trials"] == 2 and first["trials_this_run"] == 2
    lines: list[str] = []
    second = tune(cfg, feat_dir, n_trials=1, out_dir=out, log=lines.append)
    # every trial's model and report folders are gone once MLflow has them
    assert not [p.name for p in scratch.iterdir() if p.name.startswith("genreflow")]
    from genreflow.stages.study import study_name

    name = study_name(cfg)
    assert second["study"] == first["study"] == name and name.startswith("test-study-segcnn-")
    assert second["n_trials"] == 3 and second["trials_this_run"] == 1

    study = _study(cfg)
    assert len(study.trials) == 3
    states = {t.state for t in study.trials}
    assert states <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    assert second["n_complete"] >= 1 and second["best_value"] is not None
    assert set(second["best_params"]) == {"optimizer", "learning_rate"}
    for t in study.trials:
        assert t.params["optimizer"] in cfg.tune.optimizers
        assert cfg.tune.lr_min <= t.params["learning_rate"] <= cfg.tune.lr_max

    # tune.json for DVC, and study_summary reads the same stored study
    saved = json.loads((out / "tune.json").read_text())
    assert saved["n_trials"] == 3 and saved["best_run_id"] == second["best_run_id"]
    assert study_summary(cfg)["best_value"] == pytest.approx(second["best_value"])
    # the best score with its bootstrap interval over the (few) validation tracks, a warning
    lo, hi = saved["best_interval"]
    assert lo <= saved["best_value"] <= hi and 0 <= saved["best_macro_f1"] <= 1
    assert saved["n_val_tracks"] == len(_split_tracks(tmp_path, "val"))
    assert hi - lo > 0.2 and "too few to choose between these settings" in saved["warning"]
    assert any(line.startswith("warning: the best trial's 95 % interval over "
                               f"{saved['n_val_tracks']} validation tracks") for line in lines)
    assert any(f"val_track_accuracy={second['best_value']:.4f} [{lo:.3f}, {hi:.3f}]" in line
               for line in lines), lines
    trials = pd.read_csv(out / "trials.csv")
    assert {"user_attrs_val_track_accuracy_lo", "user_attrs_val_track_accuracy_hi",
            "user_attrs_val_macro_f1"} <= set(trials.columns)

    client = MlflowClient(cfg.tracking.uri)
    parents, children = _runs(cfg)
    assert len(parents) == 2 and {p.info.status for p in parents} == {"FINISHED"}
    assert {p.data.tags["optuna_study"] for p in parents} == {name}
    assert {p.data.tags["data_source"] for p in parents} == {"synthetic"}
    assert saved["data_source"] == "synthetic" and saved["data_digest"]
    assert len(children) == 3
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {p.info.run_id
                                                                     for p in parents}
    by_id = {c.info.run_id: c for c in children}
    for t in study.trials:
        run = by_id[t.user_attrs["mlflow_run_id"]]
        assert run.data.tags["optuna_trial"] == str(t.number)
        assert run.data.tags["optuna_study"] == name
        assert run.data.tags["trial_state"] == t.state.name.lower()
        assert run.data.params["model.optimizer"] == t.params["optimizer"]
        assert float(run.data.params["model.learning_rate"]) == pytest.approx(
            t.params["learning_rate"])
        assert len(client.get_metric_history(run.info.run_id, "val_loss")) >= 1
        # the study never looks at the test split
        assert not any(k.startswith("test_") for k in run.data.metrics)
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert run.data.metrics["val_track_accuracy"] == pytest.approx(t.value)

    last = max(parents, key=lambda r: r.info.start_time)
    assert last.data.metrics["n_trials"] == 3
    assert last.data.metrics["best_value_lo"] == lo and last.data.metrics["best_value_hi"] == hi
    assert last.data.params["best_optimizer"] == second["best_params"]["optimizer"]
    arts = {Path(a.path).name for a in client.list_artifacts(last.info.run_id, "study")}
    assert {"optimization_history.png", "lr_vs_optimizer.png", "trials.csv",
            "tune.json"} <= arts
    # importances: a figure, or a note saying why not (fANOVA needs >= 2 complete trials)
    assert {"param_importances.png", "param_importances.txt"} & arts


def test_pruned_and_failed_trials_are_recorded(tiny_project):
    from genreflow.stages.study import SEARCH_SPACE
    from genreflow.stages.tune import tune

    cfg, feat_dir = tiny_project
    # every report is below 1.1: pruned at the first epoch
    pruned = tune(cfg, feat_dir, n_trials=1, log=quiet,
                  pruner=optuna.pruners.ThresholdPruner(lower=1.1))
    assert pruned["n_pruned"] == 1 and pruned["best_value"] is None
    # an invalid optimiser makes train_model raise: FAIL, and the study goes on
    bogus = {**SEARCH_SPACE, "optimizer": lambda trial, t: "bogus"}
    failed = tune(cfg, feat_dir, n_trials=2, log=quiet, search_space=bogus)
    assert failed["n_failed"] == 2 and failed["n_trials"] == 3

    states = [t.state for t in _study(cfg).trials]
    assert states == [optuna.trial.TrialState.PRUNED] + [optuna.trial.TrialState.FAIL] * 2
    parents, children = _runs(cfg)
    assert len(parents) == 2 and {p.info.status for p in parents} == {"FINISHED"}
    tags = sorted((c.data.tags["optuna_trial"], c.data.tags["trial_state"], c.info.status)
                  for c in children)
    assert tags == [("0", "pruned", "FINISHED"), ("1", "failed", "FAILED"),
                    ("2", "failed", "FAILED")]
    assert all(c.data.tags.get("error", "").startswith("ConfigError") for c in children
               if c.info.status == "FAILED")


def test_interrupt_leaves_study_and_parent_run_consistent(tiny_project, monkeypatch):
    from genreflow.stages import train
    from genreflow.stages.tune import tune

    cfg, feat_dir = tiny_project

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "train_model", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tune(cfg, feat_dir, n_trials=3, log=quiet)
    assert mlflow.active_run() is None
    assert [t.state for t in _study(cfg).trials] == [optuna.trial.TrialState.FAIL]
    parents, _ = _runs(cfg)
    assert [p.info.status for p in parents] == ["KILLED"]
    assert parents[0].data.tags["error"] == "interrupted"


def test_bad_tune_section_is_rejected_before_any_run(tiny_project):
    from dataclasses import replace

    from genreflow.core.config import ConfigError
    from genreflow.stages.tune import tune

    cfg, feat_dir = tiny_project
    cfg.tune = replace(cfg.tune, optimizers=["adam", "nope"])
    with pytest.raises(ConfigError, match="tune.optimizers"):
        tune(cfg, feat_dir, log=quiet)
    cfg.tune = replace(cfg.tune, optimizers=["adam"], lr_min=0.1, lr_max=0.01)
    with pytest.raises(ConfigError, match="lr_min"):
        tune(cfg, feat_dir, log=quiet)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # study.ask() below
def test_trial_of_a_killed_process_is_failed_on_resume(tiny_project):
    """A process killed mid-trial (no Ctrl-C) leaves a RUNNING trial and RUNNING MLflow runs;
    the next invocation marks them FAIL/FAILED once their heartbeat is stale."""
    import time
    from dataclasses import replace

    from mlflow.tracking import MlflowClient

    from genreflow.stages.study import load_study
    from genreflow.stages.tune import tune
    from genreflow.tracking.store import setup_mlflow

    cfg, feat_dir = tiny_project
    cfg.tune = replace(cfg.tune, heartbeat_seconds=1)
    study = load_study(cfg)
    dead = study.ask()  # what the killed process had started...
    study._storage.record_heartbeat(dead._trial_id)
    exp_id = setup_mlflow(cfg.tracking, cfg.train.experiment)
    client = MlflowClient()
    parent = client.create_run(exp_id, run_name="study-dead")
    child = client.create_run(exp_id, run_name="trial-0",
                              tags={"mlflow.parentRunId": parent.info.run_id})
    dead.set_user_attr("mlflow_run_id", child.info.run_id)  # ...and its runs, never ended
    time.sleep(2.5)  # > grace period (2 x heartbeat)

    tune(cfg, feat_dir, n_trials=1, log=quiet)

    states = [t.state for t in _study(cfg).trials]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    for run_id in (child.info.run_id, parent.info.run_id):
        run = client.get_run(run_id)
        assert run.info.status == "FAILED" and "heartbeat" in run.data.tags["error"]
    assert client.get_run(child.info.run_id).data.tags["trial_state"] == "failed"


def test_study_belongs_to_its_data_and_search_space(tiny_project, tmp_path: Path):
    """New data gets a new study (tune.json counts only its trials); a changed search
    space on the same data is refused with the reason."""
    import shutil
    from dataclasses import replace

    from genreflow.core.config import ConfigError
    from genreflow.stages.tune import tune

    cfg, feat_dir = tiny_project
    first = tune(cfg, feat_dir, n_trials=1, log=quiet)
    other = tmp_path / "other-data"
    shutil.copytree(cfg.data.dir, other)
    next(iter(sorted((other / "metal").iterdir()))).unlink()
    cfg_other = replace(cfg, data=replace(cfg.data, dir=str(other)))
    out = tmp_path / "tune-other"
    second = tune(cfg_other, feat_dir, n_trials=1, out_dir=out, log=quiet)
    assert second["study"] != first["study"] and second["n_trials"] == 1
    assert json.loads((out / "tune.json").read_text())["n_trials"] == 1
    assert second["data_digest"] != first["data_digest"]

    narrower = replace(cfg, tune=replace(cfg.tune, optimizers=["adam"]))
    with pytest.raises(ConfigError, match="search"):
        tune(narrower, feat_dir, n_trials=1, log=quiet)


def test_study_is_per_fixed_training_settings(tiny_project):
    """Trials trained with another dropout or batch size answer another question: another
    study; the searched values (optimizer, learning rate) do not change it."""
    from dataclasses import replace

    from genreflow.stages.study import study_name

    cfg, _ = tiny_project
    name = study_name(cfg)
    assert study_name(with_kind(cfg, "segcnn", learning_rate=0.5)) == name
    assert study_name(with_kind(cfg, "segcnn", dropout=0.25)) != name
    with_kind(cfg, "segcnn", dropout=0.5)
    cfg.train = replace(cfg.train, batch_size=cfg.train.batch_size + 1)
    assert study_name(cfg) != name
    assert study_name(cfg, "cnn").startswith(f"{cfg.tune.study}-cnn-")


def test_a_worker_joining_while_another_labels_the_study_still_runs(tiny_project):
    """Another worker created the study and had written only its first label when this one
    loaded it (the window two workers started together can hit): the missing labels are
    filled in, rather than a KeyError on 'data_digest'."""
    from genreflow.stages.study import study_name
    from genreflow.stages.tune import tune

    cfg, feat_dir = tiny_project
    other = optuna.create_study(study_name=study_name(cfg), storage=cfg.tune.storage,
                                direction="maximize")
    other.set_user_attr("model", cfg.tune.model)  # ...and then that worker paused

    summary = tune(cfg, feat_dir, n_trials=1, log=quiet)

    assert summary["n_complete"] == 1
    assert _study(cfg).user_attrs["data_digest"] == summary["data_digest"] is not None
