"""Stage ``tune``: an Optuna study over the training hyper-parameters, tracked in MLflow.

Each invocation opens one MLflow *parent* run (``study-<name>``); every trial is a
nested run made by :func:`genreflow.stages.train.train_model` on the train/validation
splits only (the test split is never evaluated here). The study itself (search space,
name, storage, resuming, summary) is :mod:`genreflow.stages.study`'s: running the stage
again adds trials to the same study. Nothing runs at import.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import mlflow
import optuna
from mlflow.tracking import MlflowClient

from genreflow.audio.decode import read_source
from genreflow.core.config import Config, flatten
from genreflow.core.errors import TrialPruned
from genreflow.core.paths import FEATURES_DIR
from genreflow.core.safe_text import redact, scrub
from genreflow.stages import train
from genreflow.stages.study import (
    OBJECTIVE_METRIC,
    SEARCH_SPACE,
    Suggester,
    check_settings,
    load_study,
    study_summary,
    suggest,
)
from genreflow.stages.study_report import TRIAL_ATTRS, write_study_report
from genreflow.tracking.store import git_info, setup_mlflow


def tune(
    cfg: Config,
    features_dir: Path = FEATURES_DIR,
    n_trials: int | None = None,
    timeout: float | None = None,
    model: str | None = None,
    out_dir: Path | None = None,
    log: Callable[[str], None] = print,
    *,
    pruner: optuna.pruners.BasePruner | None = None,
    search_space: Mapping[str, Suggester] | None = None,
) -> dict[str, Any]:
    """Run (or resume) the study for ``model`` and return its summary.

    ``n_trials``/``timeout`` default to ``tune.n_trials``/``tune.timeout``. Each
    trial trains on train, is pruned and scored on validation (best-epoch
    ``val_track_accuracy``). Failed trials are recorded and the study goes on;
    Ctrl-C leaves the interrupted trial FAIL and this invocation's parent run KILLED.
    Writes ``out_dir/tune.json`` (plus figures and ``trials.csv``) when given.
    """
    model = model or cfg.tune.model
    check_settings(cfg.tune, model)
    train.kind_settings(cfg, model)  # its section, checked with the rest, before any trial
    n_trials = cfg.tune.n_trials if n_trials is None else n_trials
    timeout = cfg.tune.timeout if timeout is None else timeout
    space = SEARCH_SPACE if search_space is None else search_space
    prev_verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.WARNING)
    try:
        study = _open_study(cfg, model, pruner, space, n_trials, timeout, log)
        exp_id = setup_mlflow(cfg.tracking, cfg.train.experiment)
        parent_id = _start_parent(cfg, study, model, n_trials, timeout, space, features_dir)
        book = TrialBook(MlflowClient(), exp_id, parent_id, study.study_name)
        objective = Objective(cfg, model, Path(features_dir), space, book, log)
        summary = _run_study(study, objective, n_trials, timeout, out_dir, log)
    finally:
        optuna.logging.set_verbosity(prev_verbosity)
    best = (f"best {OBJECTIVE_METRIC}={summary['best_value']:.4f}"
            f"{_interval_text(summary.get('best_interval'))} (trial {summary['best_trial']}"
            f", {summary['best_params']})" if summary["best_value"] is not None
            else "no complete trial yet")
    log(f"study {study.study_name}: {summary['n_trials']} trial(s) — {summary['n_complete']} "
        f"complete, {summary['n_pruned']} pruned, {summary['n_failed']} failed; {best}")
    if summary.get("warning"):
        log(f"warning: {summary['warning']}")
    return summary


def _interval_text(interval) -> str:
    return f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""


def _open_study(cfg: Config, model: str, pruner, space: Mapping[str, Suggester], n_trials: int,
                timeout: float | None, log: Callable[[str], None]) -> optuna.Study:
    """The stored study (created or resumed), labelled with its data source."""
    study = load_study(cfg, model, pruner, space)
    if "data_source" not in study.user_attrs:
        study.set_user_attr("data_source", read_source(cfg.data.dir).get("source", "unknown"))
    log(f"study {study.study_name} in {redact(cfg.tune.resolved_storage())}: {len(study.trials)} stored "
        f"trial(s); running up to {n_trials} more" + (f" within {timeout:g} s" if timeout else ""))
    return study


def _start_parent(cfg: Config, study: optuna.Study, model: str, n_trials: int,
                  timeout: float | None, space: Mapping[str, Suggester],
                  features_dir: Path) -> str:
    """This invocation's parent run (``study-<name>``), with the tune settings as params."""
    name = study.study_name
    parent = mlflow.start_run(
        run_name=f"study-{name}", nested=mlflow.active_run() is not None,
        tags={"optuna_study": name, "model": model, "role": "optuna_study",
              "data_source": study.user_attrs["data_source"],
              "data_digest": study.user_attrs["data_digest"],
              "optuna_trials_before": str(len(study.trials)), **git_info()})
    mlflow.log_params({**flatten(asdict(cfg.tune), "tune."), "tune.model": model,
                       "tune.n_trials": n_trials, "tune.timeout": timeout,
                       "tune.storage": redact(cfg.tune.resolved_storage()),
                       "tune.search_space": ",".join(space), "features_dir": str(features_dir)})
    return parent.info.run_id


def _run_study(study: optuna.Study, objective: Objective, n_trials: int, timeout: float | None,
               out_dir: Path | None, log: Callable[[str], None]) -> dict[str, Any]:
    """Optimise, then log the summary on the parent run and end it: FINISHED, else FAILED
    (KILLED when interrupted) with the reason."""
    try:
        study.optimize(objective, n_trials=n_trials, timeout=timeout, catch=(Exception,),
                       gc_after_trial=True)
        summary = study_summary(objective.cfg, objective.model, study)
        summary["parent_run_id"] = objective.book.parent_id
        summary["trials_this_run"] = len(objective.ran)
        _log_parent(study, summary, out_dir, log)
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        stores = (objective.cfg.tune.resolved_storage(), objective.cfg.tracking.resolved_uri())
        mlflow.set_tag("error", f"{type(exc).__name__}: {scrub(exc, *stores)}"[:4000]
                       if not interrupted else "interrupted")
        mlflow.end_run("KILLED" if interrupted else "FAILED")
        raise
    mlflow.end_run("FINISHED")
    return summary


class PruningReport:
    """The epoch callback of one trial's training: records the trial's MLflow run at once
    (a killed process's run is found later), reports the epoch's validation track accuracy
    to Optuna and raises :class:`~genreflow.core.errors.TrialPruned` when the pruner says so."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial
        self.run_id: str | None = None

    def __call__(self, epoch: int, logs: dict) -> None:
        active = mlflow.active_run()
        if active is not None and self.run_id is None:
            self.run_id = active.info.run_id
            self.trial.set_user_attr("mlflow_run_id", self.run_id)
        value = float(logs[OBJECTIVE_METRIC])
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            raise TrialPruned(f"epoch {epoch}: {OBJECTIVE_METRIC}={value:.4f}")


class TrialBook:
    """Each trial's outcome on its MLflow run (``trial_state``, trial number, study) and the
    run on the trial (``mlflow_run_id``)."""

    def __init__(self, client: MlflowClient, experiment_id: str, parent_id: str,
                 study: str) -> None:
        self.client, self.experiment_id = client, experiment_id
        self.parent_id, self.study = parent_id, study

    def finish(self, trial: optuna.Trial, state: str, run_id: str | None) -> None:
        """Record ``state``; the trial's run is ``run_id``, else found by name under the
        parent (none when training failed before it started one)."""
        run_id = run_id or self._child_run_id(f"trial-{trial.number}")
        if run_id is None:
            return
        trial.set_user_attr("mlflow_run_id", run_id)
        for key, value in {"trial_state": state, "optuna_trial": str(trial.number),
                           "optuna_study": self.study}.items():
            self.client.set_tag(run_id, key, value)

    def _child_run_id(self, run_name: str) -> str | None:
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{self.parent_id}' "
                          f"and attributes.run_name = '{run_name}'",
            max_results=1)
        return runs[0].info.run_id if runs else None


class Objective:
    """One trial: draw the settings, train a nested run on train/validation, return the
    best epoch's validation track accuracy (pruned and failed trials recorded, re-raised)."""

    def __init__(self, cfg: Config, model: str, features_dir: Path,
                 space: Mapping[str, Suggester], book: TrialBook,
                 log: Callable[[str], None]) -> None:
        self.cfg, self.model, self.features_dir = cfg, model, features_dir
        self.space, self.book, self.log = space, book, log
        self.ran: list[int] = []  # this invocation's trials (other workers may add others)

    def __call__(self, trial: optuna.Trial) -> float:
        self.ran.append(trial.number)
        overrides = suggest(trial, self.cfg.tune, self.space)
        run_name, report = f"trial-{trial.number}", PruningReport(trial)
        self.log(f"{run_name}: " + ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in overrides.items()))
        try:  # train.train_model looked up now: tests replace it
            result = train.train_model(
                self.cfg, self.model, self.features_dir, overrides=overrides,
                max_epochs=self.cfg.tune.max_epochs, callbacks=[report], run_name=run_name,
                nested=True, evaluate_test=False, log=self.log)
        except TrialPruned as exc:
            self.book.finish(trial, "pruned", report.run_id)
            self.log(f"{run_name}: pruned")
            raise optuna.TrialPruned(str(exc)) from exc
        except BaseException as exc:
            self.book.finish(trial, "failed", report.run_id)
            stores = (self.cfg.tune.resolved_storage(), self.cfg.tracking.resolved_uri())
            self.log(f"{run_name}: failed ({type(exc).__name__}: {scrub(exc, *stores)})")
            raise
        value = float(result.metrics[OBJECTIVE_METRIC])
        for key in TRIAL_ATTRS:  # the interval and macro-F1 its training run logged
            if key in result.metrics:
                trial.set_user_attr(key, float(result.metrics[key]))
        if "val" in result.counts:
            trial.set_user_attr("n_val_tracks", int(result.counts["val"]))
        self.book.finish(trial, "complete", result.run_id)
        lo, hi = (result.metrics.get(f"{OBJECTIVE_METRIC}_{e}") for e in ("lo", "hi"))
        f1 = result.metrics.get("val_macro_f1")
        self.log(f"{run_name}: {OBJECTIVE_METRIC}={value:.4f}"
                 + (_interval_text((lo, hi)) if lo is not None and hi is not None else "")
                 + (f", val macro-F1 {f1:.3f}" if f1 is not None else ""))
        return value


def _log_parent(study: optuna.Study, summary: dict[str, Any], out_dir: Path | None,
                log: Callable[[str], None]) -> None:
    """Metrics, best parameters, figures, ``trials.csv`` and ``tune.json`` on the parent run."""
    metrics = {k: float(summary[k]) for k in ("n_trials", "n_complete", "n_pruned", "n_failed")}
    if summary["best_value"] is not None:
        metrics["best_value"] = float(summary["best_value"])
        if summary.get("best_interval"):
            metrics["best_value_lo"], metrics["best_value_hi"] = summary["best_interval"]
        if summary.get("best_macro_f1") is not None:
            metrics["best_macro_f1"] = float(summary["best_macro_f1"])
        mlflow.log_params({f"best_{k}": v for k, v in summary["best_params"].items()})
        mlflow.set_tag("best_run_id", str(summary["best_run_id"]))
    mlflow.log_metrics(metrics)
    with tempfile.TemporaryDirectory(prefix="genreflow-tune-") as tmp:
        out = Path(out_dir) if out_dir else Path(tmp)
        write_study_report(study, out, OBJECTIVE_METRIC, log)
        (out / "tune.json").write_text(json.dumps(summary, indent=1, default=str))
        mlflow.log_artifacts(str(out), artifact_path="study")
