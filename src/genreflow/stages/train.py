"""Stage 5, train: fit one model on the cached features and log everything to MLflow (its
track-level numbers are computed by :mod:`genreflow.stages.evaluate`)."""

from __future__ import annotations

import json
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from genreflow.core.config import Config, TrainConfig, flatten
from genreflow.core.errors import TrialPruned
from genreflow.core.paths import FEATURES_DIR
from genreflow.core.safe_text import scrub
from genreflow.kinds import get_kind, settings
from genreflow.kinds.base import Prepared, TrainContext
from genreflow.models.bundle import Preprocess
from genreflow.models.splits import SPLITS
from genreflow.stages.evaluate import class_metrics, describe, evaluate_probs, split_metrics
from genreflow.stages.plots import plot_confusion_matrix, plot_learning_curves
from genreflow.tracking.store import (
    data_digest,
    git_info,
    log_keras_model,
    retry_store_setup,
    setup_mlflow,
)

# Keras log key -> MLflow metric drawn per epoch (the final, best-epoch track-level
# numbers are logged separately as ``{split}_track_accuracy``).
EPOCH_METRICS = {"loss": "loss", "accuracy": "accuracy", "val_loss": "val_loss",
                 "val_accuracy": "val_accuracy", "val_track_accuracy": "val_track_accuracy_epoch",
                 "learning_rate": "learning_rate"}


# what metrics.json holds for `dvc metrics show` (per-class numbers: per_class.json)
HEADLINE = ("train_track_accuracy", "val_track_accuracy", "test_track_accuracy",
            "val_track_accuracy_lo", "val_track_accuracy_hi", "test_track_accuracy_lo",
            "test_track_accuracy_hi", "val_macro_f1", "test_macro_f1",
            "val_track_loss", "epochs", "best_epoch")


@dataclass
class Fit:
    """What ``fit`` left: the curves, the epoch whose weights were restored, the time."""

    history: dict[str, list[float]]
    best_epoch: int
    seconds: float


@dataclass
class TrainResult:
    """What a training run produced."""

    run_id: str | None
    metrics: dict[str, float]
    bundle_dir: Path | None
    history: dict[str, list[float]]
    counts: dict[str, int] = field(default_factory=dict)  # tracks per split


def _input_shape(example: np.ndarray) -> tuple[int, ...]:
    """One input's shape without a trailing channel axis of 1: ``(n_mels, frames)``."""
    shape = example.shape[1:]
    return shape[:-1] if len(shape) > 1 and shape[-1] == 1 else shape


def kind_settings(cfg: Config, name: str, overrides: dict | None = None):
    """``train.<name>`` with ``overrides`` applied and re-validated, and checked against the
    rest of ``cfg`` (errors name the field)."""
    return settings(cfg.train, name, overrides, project=cfg)


def train_model(
    cfg: Config,
    model_name: str,
    features_dir: Path = FEATURES_DIR,
    bundle_dir: Path | None = None,
    report_dir: Path | None = None,
    *,
    overrides: dict | None = None,
    max_epochs: int | None = None,
    callbacks: Sequence = (),
    run_name: str | None = None,
    nested: bool = False,
    evaluate_test: bool = True,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train one model kind (``cnn``, ``segcnn``, ``inception``, ``musicnn``...), tracked in MLflow.

    The test split is only evaluated once, after training (``evaluate_test``);
    early stopping and any model choice use the validation split. A run that
    raises ends FAILED (KILLED when interrupted) with the reason as a tag.
    Without ``bundle_dir``/``report_dir`` the files go to a temporary folder that
    is removed once MLflow has them.
    """
    import mlflow

    kind = get_kind(model_name)
    setup_mlflow(cfg.tracking, cfg.train.experiment)
    tags = {"model": model_name, "data_digest": data_digest(cfg.data.dir), **git_info()}
    run = mlflow.start_run(run_name=run_name or model_name, nested=nested, tags=tags)
    try:
        with tempfile.TemporaryDirectory(prefix="genreflow-train-") as tmp:
            result = _train(cfg, kind, Path(features_dir), Path(bundle_dir or Path(tmp) / "bundle"),
                            Path(report_dir or Path(tmp) / "reports"), overrides or {},
                            max_epochs, callbacks, evaluate_test, run.info.run_id, log)
    except TrialPruned:  # a study stopped it early: a finished run, not a failed one
        mlflow.set_tag("trial_state", "pruned")
        mlflow.end_run("FINISHED")
        raise
    except BaseException as exc:
        mlflow.set_tag("error",
                       f"{type(exc).__name__}: {scrub(exc, cfg.tracking.resolved_uri())}"[:4000])
        mlflow.end_run("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    mlflow.end_run("FINISHED")
    if bundle_dir is None:
        result.bundle_dir = None
    return result


def _train(cfg: Config, kind, features_dir: Path, bundle_dir: Path, report_dir: Path,
           overrides: dict, max_epochs: int | None, callbacks: Sequence, evaluate_test: bool,
           run_id: str, log: Callable[[str], None]) -> TrainResult:
    """prepare -> fit -> evaluate -> write outputs, in the active run."""
    import mlflow

    mcfg = kind_settings(cfg, kind.name, overrides)
    epochs = max_epochs or cfg.train.max_epochs
    _log_settings(kind.name, mcfg, cfg.train, epochs)
    prep, dataset = _prepare(cfg, kind, mcfg, features_dir, log)
    fit = _fit(prep, mcfg, cfg.train, epochs, callbacks)
    metrics, evals = _evaluate(prep, fit, evaluate_test)
    pre = Preprocess(kind=kind.name, classes=prep.classes, front_end=prep.front_end.to_json(),
                     data_source=prep.data_source)
    info = _write_outputs(prep, pre, fit.history, evals, metrics, run_id, bundle_dir, report_dir,
                          fit.best_epoch)
    # the logged model's page shows the final numbers and its dataset
    mlflow.log_metrics(metrics, model_id=info.model_id, dataset=dataset)
    mlflow.set_tag("keras_model_uri", info.model_uri)  # what register loads
    log(describe(kind.name, metrics))
    return TrainResult(run_id=run_id, metrics=metrics, bundle_dir=bundle_dir, history=fit.history,
                       counts=dict(prep.counts))


def _log_settings(name: str, mcfg, tcfg: TrainConfig, epochs: int) -> None:
    """The kind's settings and the shared training settings as run parameters; the seed set."""
    import keras
    import mlflow

    keras.utils.set_random_seed(tcfg.seed)
    mlflow.log_params({**flatten(asdict(mcfg), "model."), "model.name": name,
                       "batch_size": tcfg.batch_size, "max_epochs": epochs,
                       "patience": tcfg.patience, "min_delta": tcfg.min_delta, "seed": tcfg.seed})


def _prepare(cfg: Config, kind, mcfg, features_dir: Path, log: Callable[[str], None]):
    """The kind's data and compiled network, described on the run: ``(prep, dataset)``."""
    import mlflow

    from genreflow.models.layers import compile_model

    ctx = TrainContext(cfg=cfg, features_dir=features_dir, seed=cfg.train.seed,
                       batch_size=cfg.train.batch_size, log=log)
    prep: Prepared = kind.prepare(ctx, mcfg)
    mlflow.set_tags({"data_source": prep.data_source, "split_digest": prep.split_digest})
    mlflow.log_params({**prep.front_end.logged_params(),
                       "classes": ",".join(prep.classes), "n_classes": len(prep.classes),
                       **{f"n_{s}_tracks": n for s, n in prep.counts.items()},
                       "n_params": int(prep.servable.count_params()),
                       "input_shape": "x".join(map(str, _input_shape(prep.example)))})
    dataset = _log_dataset(cfg, prep)
    compile_model(prep.net, mcfg)
    return prep, dataset


class EpochCurves:
    """After each epoch: validation *track* accuracy added to Keras' logs, the curves logged
    (MLflow steps are epochs counted from 1, as everywhere else), then the caller's
    ``callbacks(epoch, logs)`` (tune's pruning report)."""

    def __init__(self, prep: Prepared, callbacks: Sequence = ()) -> None:
        self.prep, self.callbacks = prep, list(callbacks)
        self.val_track_accuracy: list[float] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        import mlflow

        logs = dict(logs or {})
        val = self.prep.track_probs("val").argmax(1) == self.prep.labels["val"].y
        logs["val_track_accuracy"] = float(val.mean())
        self.val_track_accuracy.append(logs["val_track_accuracy"])
        mlflow.log_metrics({EPOCH_METRICS[k]: float(v) for k, v in logs.items()
                            if k in EPOCH_METRICS}, step=epoch + 1)
        for cb in self.callbacks:
            cb(epoch, logs)


def _fit(prep: Prepared, mcfg, tcfg: TrainConfig, epochs: int, callbacks: Sequence) -> Fit:
    """Fit with early stopping on validation loss (best weights restored), the optional
    plateau schedule, and the per-epoch curves."""
    import keras

    curves = EpochCurves(prep, callbacks)
    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=tcfg.patience,
                                            min_delta=tcfg.min_delta, restore_best_weights=True)
    fit_callbacks = [stopper, keras.callbacks.LambdaCallback(on_epoch_end=curves.on_epoch_end)]
    if mcfg.lr_plateau:
        fit_callbacks.insert(0, keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.3, patience=mcfg.lr_plateau, min_delta=tcfg.min_delta))
    t0 = time.perf_counter()
    hist = prep.net.fit(**prep.train, validation_data=prep.val, epochs=epochs, verbose=2,
                        callbacks=fit_callbacks)
    seconds = time.perf_counter() - t0
    history = {k: [float(v) for v in vs] for k, vs in hist.history.items()}
    history["val_track_accuracy"] = curves.val_track_accuracy
    n_epochs = len(history.get("loss", []))
    # the epoch whose weights were restored (counted from 1); the last one if none was better
    best = int(stopper.best_epoch) + 1 if stopper.best_weights is not None else n_epochs
    return Fit(history=history, best_epoch=best, seconds=seconds)


def _evaluate(prep: Prepared, fit: Fit, evaluate_test: bool) -> tuple[dict[str, float], dict]:
    """Track-level numbers per split (test only when ``evaluate_test``), logged on the run:
    ``(metrics, per-split evaluations with their probabilities)``."""
    import mlflow

    metrics: dict[str, float] = {"train_seconds": round(fit.seconds, 2),
                                 "epochs": len(fit.history.get("loss", [])),
                                 "best_epoch": fit.best_epoch}
    evals = {}
    for s in SPLITS:
        if s == "test" and not evaluate_test:
            continue
        probs = prep.track_probs(s)
        evals[s] = evaluate_probs(probs, prep.labels[s].y, prep.classes)
        evals[s]["probs"] = probs
        metrics.update(split_metrics(s, evals[s]))
    mlflow.log_metrics(metrics)
    # per class: on the run only (the logged model's page and run.json keep the headline)
    mlflow.log_metrics({k: v for s, ev in evals.items() for k, v in class_metrics(s, ev).items()})
    return metrics, evals


def _log_dataset(cfg: Config, prep: Prepared):
    """The data as an MLflow dataset input, its digest being the DVC hash of ``data/``."""
    import mlflow

    rows = [{"clip_id": str(i), "split": s, "genre": prep.classes[int(y)]}
            for s, lab in prep.labels.items() for i, y in zip(lab.ids, lab.y, strict=True)]
    with warnings.catch_warnings():  # a local path matches two equivalent source types
        warnings.simplefilter("ignore", UserWarning)
        ds = mlflow.data.from_pandas(pd.DataFrame(rows), source=str(Path(cfg.data.dir).resolve()),
                                     name="gtzan" if prep.data_source == "gtzan"
                                     else f"gtzan-{prep.data_source}", targets="genre",
                                     digest=data_digest(cfg.data.dir)[:32])
    # tune workers sharing a store log the same dataset: the loser of that race retries
    retry_store_setup(lambda: mlflow.log_input(ds, context="training"))
    return ds


def _write_outputs(prep: Prepared, pre: Preprocess, history: dict, evals: dict, metrics: dict,
                   run_id: str, bundle_dir: Path, report_dir: Path, best_epoch: int):
    """Files for DVC (bundle, metrics, plots) and the same as MLflow artefacts."""
    import mlflow

    name, classes = pre.kind, prep.classes
    rdir = report_dir
    rdir.mkdir(parents=True, exist_ok=True)
    hist_df = pd.DataFrame({k: v for k, v in history.items() if len(v) == len(history["loss"])})
    hist_df.insert(0, "epoch", np.arange(1, len(hist_df) + 1))
    hist_df.to_csv(rdir / "history.csv", index=False)
    plot_learning_curves(history, f"{name} learning curves [{pre.data_source}]",
                         rdir / "learning_curves.png", best_epoch=best_epoch)
    for s, ev in evals.items():
        plot_confusion_matrix(np.array(ev["confusion_matrix"]), classes,
                              f"{name} {s}: track accuracy {ev['accuracy']:.3f} "
                              f"[{pre.data_source}]", rdir / f"confusion_{s}.png")
        (rdir / f"confusion_{s}.json").write_text(json.dumps(
            {"classes": classes, "matrix": ev["confusion_matrix"]}, indent=1))
        pred = ev["probs"].argmax(1) if len(ev["probs"]) else []
        pd.DataFrame({"clip_id": prep.labels[s].ids,
                      "actual": [classes[i] for i in prep.labels[s].y],
                      "predicted": [classes[i] for i in pred]}).to_csv(
            rdir / f"predictions_{s}.csv", index=False)
    (rdir / "classification_report.json").write_text(json.dumps(
        {s: {k: ev[k] for k in ("accuracy", "accuracy_interval", "macro_f1", "macro_f1_interval",
                                "per_genre_accuracy", "report")}
         for s, ev in evals.items()}, indent=1))
    # per split and class: precision, recall, F1, support (`dvc metrics show <this file>`)
    (rdir / "per_class.json").write_text(json.dumps(
        {s: ev["report"] for s, ev in evals.items()}, indent=1))
    # metrics.json: the headline numbers `dvc metrics show` tabulates; run.json: everything
    (rdir / "metrics.json").write_text(json.dumps(
        {**{k: metrics[k] for k in HEADLINE if k in metrics}, "data_source": pre.data_source},
        indent=1))
    (rdir / "run.json").write_text(json.dumps(
        {**metrics, "run_id": run_id, "data_source": pre.data_source}, indent=1))
    for s, ev in evals.items():
        mlflow.log_dict(ev["per_genre_accuracy"], f"per_genre_accuracy_{s}.json")
    mlflow.log_artifacts(str(rdir), artifact_path="reports")

    bundle_dir.mkdir(parents=True, exist_ok=True)
    prep.servable.save(bundle_dir / "model.keras")
    pre.save(bundle_dir / "preprocess.json")
    mlflow.log_artifact(str(bundle_dir / "preprocess.json"), artifact_path="bundle")
    return log_keras_model(prep.servable, prep.example, name=f"{name}-{pre.data_source}",
                           step=best_epoch)
