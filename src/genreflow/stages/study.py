"""The Optuna study of the ``tune`` stage: its search space, identity, storage, loading and summary.

The study lives in ``tune.storage`` (SQLite by default, any RDB URL; ``GENREFLOW_TUNE_STORAGE``
overrides it, so that a URL with credentials stays out of params.yaml) and is resumed by name,
so running the stage again adds trials to the same study.

The search space is :data:`SEARCH_SPACE`: one suggester per setting every model kind
has (:class:`~genreflow.kinds.base.KindConfig`). A study belongs to its data: its name
carries the data digest, and a stored study whose search space differs is refused.
The tuning run itself (parent run, trials) is :mod:`genreflow.stages.tune`'s.
Nothing runs at import.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import optuna
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from genreflow.core.config import OPTIMIZERS, Config, ConfigError, TuneConfig, check_range
from genreflow.core.safe_text import redact, scrub
from genreflow.kinds import kind_names, settings
from genreflow.stages.study_report import interval_warning, trial_interval
from genreflow.tracking.sampler import TrialSeededTPE
from genreflow.tracking.store import data_digest, retry_store_setup

OBJECTIVE_METRIC = "val_track_accuracy"
Suggester = Callable[["optuna.Trial", TuneConfig], Any]

#: Trial parameter -> how to draw it. Keys are kind settings (they become
#: ``train_model`` overrides); add e.g.
#: ``"dropout": lambda trial, t: trial.suggest_float("dropout", 0.0, 0.5)``.
SEARCH_SPACE: dict[str, Suggester] = {
    "optimizer": lambda trial, t: trial.suggest_categorical("optimizer", list(t.optimizers)),
    "learning_rate": lambda trial, t: trial.suggest_float(
        "learning_rate", t.lr_min, t.lr_max, log=True),
}


def suggest(trial: optuna.Trial, tcfg: TuneConfig,
            space: Mapping[str, Suggester] | None = None) -> dict[str, Any]:
    """Draw one set of kind-setting overrides for ``trial`` from the search space."""
    space = SEARCH_SPACE if space is None else space
    return {name: draw(trial, tcfg) for name, draw in space.items()}


def study_identity(cfg: Config, space: Mapping[str, Suggester] | None = None,
                   model: str | None = None) -> dict[str, str]:
    """What a study's trials depend on besides the model: the data, the split, the space,
    and the model's fixed training settings."""
    t = cfg.tune
    split = json.dumps([asdict(cfg.split), cfg.data.genres], sort_keys=True)
    # what every trial trains with besides the searched values: another dropout or batch size
    # is another objective, so another study (its trials would mislead the sampler)
    searched = set(SEARCH_SPACE if space is None else space)
    kind = {k: v for k, v in asdict(settings(cfg.train, model or t.model)).items()
            if k not in searched}
    fixed = json.dumps({"kind": kind, **{k: getattr(cfg.train, k) for k in (
        "batch_size", "seed", "patience", "min_delta")}}, sort_keys=True, default=str)
    return {
        "data_digest": data_digest(cfg.data.dir),
        "split_digest": hashlib.md5(split.encode()).hexdigest()[:12],
        "settings_digest": hashlib.md5(fixed.encode()).hexdigest()[:12],
        "search_space": json.dumps({"params": sorted(SEARCH_SPACE if space is None else space),
                                    "optimizers": sorted(t.optimizers), "lr": [t.lr_min, t.lr_max],
                                    "max_epochs": t.max_epochs}, sort_keys=True),
    }


def study_name(cfg: Config, model: str | None = None) -> str:
    """The stored study's name: ``<tune.study>-<model>-<data and split>-<settings>``: one
    study per model, data set, split and fixed training settings (the kind's section but the
    searched values, batch size, seed, early stopping), so trials trained otherwise never
    inform this one."""
    ident = study_identity(cfg, model=model)
    return (f"{cfg.tune.study}-{model or cfg.tune.model}-{ident['data_digest'][:8]}"
            f"{ident['split_digest'][:4]}-{ident['settings_digest'][:6]}")


def check_settings(tcfg: TuneConfig, model: str) -> None:
    """Refuse a ``tune`` section (or model) no study can run with, naming the field."""
    if model not in kind_names():
        raise ConfigError(f"tune.model: expected one of {kind_names()}, got {model!r}")
    bad = [o for o in tcfg.optimizers if o not in OPTIMIZERS]
    if not tcfg.optimizers or bad:
        raise ConfigError(f"tune.optimizers: expected a non-empty list of {OPTIMIZERS}, "
                          f"got {tcfg.optimizers}")
    check_range("tune", "lr_min", tcfg.lr_min, "lr_max", tcfg.lr_max)
    if tcfg.max_epochs < 1:
        raise ConfigError(f"tune.max_epochs: expected >= 1, got {tcfg.max_epochs}")
    if tcfg.prune_startup_trials < 0 or tcfg.prune_warmup_epochs < 0:
        raise ConfigError("tune.prune_startup_trials/prune_warmup_epochs: expected >= 0, got "
                          f"{tcfg.prune_startup_trials}, {tcfg.prune_warmup_epochs}")
    if tcfg.heartbeat_seconds < 1:
        raise ConfigError(f"tune.heartbeat_seconds: expected >= 1, got {tcfg.heartbeat_seconds}")


def _storage(tcfg: TuneConfig) -> optuna.storages.RDBStorage:
    """The study's RDB storage, with heartbeats so that a killed process's trials end FAIL.

    Creates the folder of a file-based SQLite storage if needed.
    """
    url = tcfg.resolved_storage()
    prefix = "sqlite:///"
    if url.startswith(prefix) and url[len(prefix):] not in ("", ":memory:"):
        Path(url[len(prefix):]).parent.mkdir(parents=True, exist_ok=True)

    def open_storage() -> optuna.storages.RDBStorage:
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=tcfg.heartbeat_seconds,
                grace_period=2 * tcfg.heartbeat_seconds,
                heartbeat_stale_trial_callback=_stale_trial_failed)

    try:  # workers started together on a fresh database race to create Optuna's tables
        return retry_store_setup(open_storage)
    except Exception as exc:
        raise ConfigError(f"{tcfg.storage_origin()}: cannot open {redact(url)!r} as an Optuna "
                          f"RDB storage (expected e.g. sqlite:///optuna.db): {scrub(exc, url)}"
                          ) from None


def _stale_trial_failed(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """A trial whose process died (no heartbeat) was set FAIL: end its MLflow runs FAILED too."""
    run_id = trial.user_attrs.get("mlflow_run_id")
    if not run_id:
        return
    client = MlflowClient()
    reason = ("the process running this trial stopped (no Optuna heartbeat); "
              "marked FAILED when the study was resumed")
    run = client.get_run(run_id)
    parent_id = run.data.tags.get("mlflow.parentRunId")
    parent = client.get_run(parent_id) if parent_id else None
    for r in (run, parent):
        if r is not None and r.info.status == "RUNNING":
            client.set_tag(r.info.run_id, "error", reason)
            client.set_terminated(r.info.run_id, "FAILED")
    client.set_tag(run_id, "trial_state", "failed")


def load_study(cfg: Config, model: str | None = None,
               pruner: optuna.pruners.BasePruner | None = None,
               space: Mapping[str, Suggester] | None = None) -> optuna.Study:
    """Create or resume the study (maximising validation track accuracy).

    Each trial's draws are seeded with ``tune.seed + <trial number>``
    (:class:`~genreflow.tracking.sampler.TrialSeededTPE`): a resumed study is reproducible, and
    workers sharing the study (several processes or machines) do not repeat each other.
    A stored study of another search space is refused (its trials would mislead TPE).
    """
    name = study_name(cfg, model)
    ident = study_identity(cfg, space, model)
    study = optuna.create_study(
        study_name=name, storage=_storage(cfg.tune), load_if_exists=True,
        direction="maximize",
        pruner=pruner or optuna.pruners.MedianPruner(
            n_startup_trials=cfg.tune.prune_startup_trials,
            n_warmup_steps=cfg.tune.prune_warmup_epochs))
    study.sampler = TrialSeededTPE(cfg.tune.seed, n_startup_trials=5)
    stored = study.user_attrs.get("search_space")
    if stored is not None and stored != ident["search_space"]:
        raise ConfigError(
            f"tune: the stored study {name!r} searched {stored}, but params.yaml now asks for "
            f"{ident['search_space']}; its trials would mislead the sampler. Set tune.study to "
            "a new name for a new study, or restore the tune settings to continue this one")
    # Every label, not only when "model" is missing: a worker started together with this one
    # may have created the study and written only some of them so far (same values: the
    # name holds the identity, and the search space was checked above).
    labels = study.user_attrs
    for key, value in {"model": model or cfg.tune.model, "metric": OBJECTIVE_METRIC,
                       **ident}.items():
        if key not in labels:
            study.set_user_attr(key, value)
    return study


def study_summary(cfg: Config, model: str | None = None,
                  study: optuna.Study | None = None) -> dict[str, Any]:
    """Best trial and trial counts of the stored study (what ``tune.json`` holds).

    Reads the stored study without creating it (``KeyError`` if there is none).
    """
    study = study or optuna.load_study(study_name=study_name(cfg, model),
                                       storage=cfg.tune.resolved_storage())
    trials = study.get_trials(deepcopy=False)
    counts = {s: sum(t.state == s for t in trials) for s in TrialState}
    out: dict[str, Any] = {
        "study": study.study_name, "storage": redact(cfg.tune.resolved_storage()),
        "model": study.user_attrs.get("model", model or cfg.tune.model),
        "metric": OBJECTIVE_METRIC, "n_trials": len(trials),
        "n_complete": counts[TrialState.COMPLETE], "n_pruned": counts[TrialState.PRUNED],
        "n_failed": counts[TrialState.FAIL], "best_value": None, "best_trial": None,
        "best_params": {}, "best_run_id": None, "best_interval": None, "best_macro_f1": None,
        "n_val_tracks": None, "warning": None,
        "data_digest": study.user_attrs.get("data_digest"),
        "data_source": study.user_attrs.get("data_source"),
    }
    if counts[TrialState.COMPLETE]:
        best = study.best_trial
        interval = trial_interval(best)
        out.update(best_value=best.value, best_trial=best.number, best_params=dict(best.params),
                   best_run_id=best.user_attrs.get("mlflow_run_id"),
                   best_interval=list(interval) if interval else None,
                   best_macro_f1=best.user_attrs.get("val_macro_f1"),
                   n_val_tracks=best.user_attrs.get("n_val_tracks"),
                   warning=interval_warning(interval, best.user_attrs.get("n_val_tracks")))
    return out
