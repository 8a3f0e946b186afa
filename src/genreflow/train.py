"""Stage 5, train: fit one model on the cached features and log everything to MLflow."""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from genreflow.config import Config, ConfigError, ModelConfig, flatten
from genreflow.features import FeatureSet, load_features
from genreflow.inference import Preprocess, track_probabilities
from genreflow.split import SPLITS

# Keras log key -> MLflow metric drawn per epoch (the final, best-epoch track-level
# numbers are logged separately as ``{split}_track_accuracy``).
EPOCH_METRICS = {"loss": "loss", "accuracy": "accuracy", "val_loss": "val_loss",
                 "val_accuracy": "val_accuracy", "val_track_accuracy": "val_track_accuracy_epoch",
                 "learning_rate": "learning_rate"}


@dataclass
class TrainResult:
    """What a training run produced."""

    run_id: str | None
    metrics: dict[str, float]
    bundle_dir: Path
    history: dict[str, list[float]]


# ----------------------------------------------------------------------------- metrics
def evaluate_probs(probs: np.ndarray, y: np.ndarray, classes: list[str]) -> dict:
    """Track-level accuracy, loss, confusion matrix, per-genre accuracy and report."""
    k = len(classes)
    pred = probs.argmax(axis=1) if len(probs) else np.zeros(0, int)
    cm = np.zeros((k, k), dtype=int)
    np.add.at(cm, (y, pred), 1)
    eps = 1e-7
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], eps, 1)))) if len(y) else 0.0
    report = {}
    for i, name in enumerate(classes):
        tp, support, predicted = cm[i, i], cm[i].sum(), cm[:, i].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        report[name] = {"precision": round(float(precision), 4), "recall": round(float(recall), 4),
                        "f1": round(float(f1), 4), "support": int(support)}
    return {
        "accuracy": float((pred == y).mean()) if len(y) else 0.0,
        "loss": loss,
        "confusion_matrix": cm.tolist(),
        "per_genre_accuracy": {n: report[n]["recall"] for n in classes},
        "report": report,
    }


# ------------------------------------------------------------------------------ inputs
def _inception_embeddings(fs: FeatureSet, mcfg: ModelConfig, base, cache_dir: Path | None,
                          log: Callable[[str], None]) -> dict[str, np.ndarray]:
    """InceptionV3 features of every clip, computed once and cached on disk."""
    import keras

    from genreflow.models import SpectrogramImage

    key = hashlib.md5(json.dumps([fs.meta["features"], fs.meta["counts"], mcfg.weights,
                                  mcfg.image_size, fs.stats["mean"][:4]]).encode()).hexdigest()[:12]
    path = cache_dir / f"inception_{key}.npz" if cache_dir else None
    if path is not None and path.exists():
        with np.load(path) as z:
            return {s: z[s] for s in SPLITS}
    inp = keras.Input(shape=(*fs.splits["train"].x.shape[1:], 1))
    encoder = keras.Model(inp, base(SpectrogramImage(mcfg.image_size)(inp), training=False))
    out = {}
    for s in SPLITS:
        t0 = time.perf_counter()
        x = fs.splits[s].x[..., None]
        out[s] = (encoder.predict(x, batch_size=32, verbose=0) if len(x)
                  else np.zeros((0, base.output_shape[-1]), np.float32))
        log(f"inception embeddings {s}: {len(x)} clips in {time.perf_counter() - t0:.1f} s")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **out)
    return out


def _fit_data(fs: FeatureSet, kind: str, mcfg: ModelConfig, embeddings: dict | None,
              batch_size: int, seed: int) -> tuple[dict, tuple]:
    """What ``fit`` reads: ``(fit kwargs for the training data, validation (x, y))``."""
    from genreflow.models import RandomCrops

    def xy(split: str) -> tuple[np.ndarray, np.ndarray]:
        if kind == "segcnn":
            x, y, _ = fs.segments(split)
            return x[..., None], y
        if kind == "inception":
            return embeddings[split], fs.splits[split].y
        return fs.splits[split].x[..., None], fs.splits[split].y

    if kind == "segcnn" and mcfg.crops_per_clip:
        train = {"x": RandomCrops(fs.splits["train"].x, fs.splits["train"].y,
                                  fs.cfg.segment_frames, mcfg.crops_per_clip, batch_size, seed)}
    else:
        x, y = xy("train")
        train = {"x": x, "y": y, "batch_size": batch_size, "shuffle": True}
    return train, xy("val")


# ---------------------------------------------------------------------------- training
def train_model(
    cfg: Config,
    model_name: str,
    features_dir: Path = Path("artifacts/features"),
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
    """Train ``model_name`` (cnn, inception or segcnn) and track it in MLflow.

    The test split is only evaluated once, after training (``evaluate_test``);
    early stopping and any model choice use the validation split. A run that
    raises ends FAILED (KILLED when interrupted) with the reason as a tag.
    """
    import mlflow

    from genreflow.tracking import data_digest, git_info, setup_mlflow

    setup_mlflow(cfg.tracking, cfg.train.experiment)
    fs = load_features(features_dir)
    tags = {"model": model_name, "data_source": fs.meta["data_source"],
            "data_digest": data_digest(cfg.data.dir, json.dumps(fs.meta["counts"])), **git_info()}
    run = mlflow.start_run(run_name=run_name or model_name, nested=nested, tags=tags)
    try:
        result = _train(cfg, model_name, fs, features_dir, bundle_dir, report_dir,
                        overrides or {}, max_epochs, callbacks, evaluate_test, run.info.run_id, log)
    except BaseException as exc:
        pruned = type(exc).__name__ == "TrialPruned"
        mlflow.set_tag("trial_state" if pruned else "error",
                       "pruned" if pruned else f"{type(exc).__name__}: {exc}"[:4000])
        status = "FINISHED" if pruned else "KILLED" if isinstance(exc, KeyboardInterrupt) \
            else "FAILED"
        mlflow.end_run(status)
        raise
    mlflow.end_run("FINISHED")
    return result


def _train(cfg: Config, model_name: str, fs: FeatureSet, features_dir: Path,
           bundle_dir: Path | None, report_dir: Path | None, overrides: dict,
           max_epochs: int | None, callbacks: Sequence, evaluate_test: bool, run_id: str,
           log: Callable[[str], None]) -> TrainResult:
    import keras
    import mlflow

    from genreflow.models import (
        build_cnn,
        build_inception,
        build_inception_top,
        build_segcnn,
        compile_model,
        inception_base,
    )

    mcfg = replace(cfg.train.model(model_name), **overrides)  # re-validates the section
    if mcfg.crops_per_clip and model_name != "segcnn":
        raise ConfigError(f"train.{model_name}.crops_per_clip: only segcnn trains on random "
                          f"crops; expected 0, got {mcfg.crops_per_clip}")
    tcfg = cfg.train
    feat = fs.cfg
    epochs = max_epochs or tcfg.max_epochs
    keras.utils.set_random_seed(tcfg.seed)

    params = {**flatten(asdict(mcfg), "model."), "model.name": model_name,
              "batch_size": tcfg.batch_size, "max_epochs": epochs,
              "patience": tcfg.patience, "min_delta": tcfg.min_delta,
              "seed": tcfg.seed, **flatten(asdict(feat), "features."),
              "classes": ",".join(fs.classes), "n_classes": len(fs.classes),
              **{f"n_{s}_tracks": len(fs.splits[s].y) for s in SPLITS}}
    mlflow.log_params(params)
    _log_dataset(cfg, fs)

    n_mels = feat.n_mels
    embeddings = None
    if model_name == "inception":
        base = inception_base(mcfg)
        # The cache sits beside (not inside) the features stage output, which DVC hashes.
        cache = Path(features_dir).resolve().parent / "cache"
        embeddings = _inception_embeddings(fs, mcfg, base, cache, log)
        net = build_inception_top(embeddings["train"].shape[1], len(fs.classes), mcfg,
                                  train_embeddings=embeddings["train"])
        input_shape = (n_mels, feat.clip_frames)
    elif model_name == "segcnn":
        input_shape = (n_mels, feat.segment_frames)
        net = build_segcnn(input_shape, len(fs.classes), mcfg)
    else:
        input_shape = (n_mels, feat.clip_frames)
        net = build_cnn(input_shape, len(fs.classes), mcfg)
    compile_model(net, mcfg)

    model = (build_inception(input_shape, len(fs.classes), mcfg, base=base, top=net)
             if model_name == "inception" else net)  # what is saved, logged and served

    train_data, val_data = _fit_data(fs, model_name, mcfg, embeddings, tcfg.batch_size, tcfg.seed)
    xv_clips = fs.splits["val"].x

    def val_track_accuracy() -> float:
        if model_name == "inception":
            probs = net.predict(embeddings["val"], verbose=0)
        else:
            probs = track_probabilities(net, xv_clips, model_name, feat)
        return float((probs.argmax(1) == fs.splits["val"].y).mean())

    mlflow.log_params({"n_params": int(model.count_params()),
                       "input_shape": "x".join(map(str, input_shape))})

    val_track_history: list[float] = []

    class EpochLogger(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {})
            logs["val_track_accuracy"] = val_track_accuracy()
            val_track_history.append(logs["val_track_accuracy"])
            mlflow.log_metrics({EPOCH_METRICS[k]: float(v) for k, v in logs.items()
                                if k in EPOCH_METRICS}, step=epoch)
            for cb in callbacks:
                cb(epoch, logs)

    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=tcfg.patience,
                                            min_delta=tcfg.min_delta, restore_best_weights=True)
    fit_callbacks = [stopper, EpochLogger()]
    if mcfg.lr_plateau:
        fit_callbacks.insert(0, keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.3, patience=mcfg.lr_plateau, min_delta=tcfg.min_delta))
    t0 = time.perf_counter()
    hist = net.fit(**train_data, validation_data=val_data, epochs=epochs, verbose=2,
                   callbacks=fit_callbacks)
    train_seconds = time.perf_counter() - t0
    history = {k: [float(v) for v in vs] for k, vs in hist.history.items()}
    history["val_track_accuracy"] = val_track_history

    metrics: dict[str, float] = {"train_seconds": round(train_seconds, 2),
                                 "epochs": len(history.get("loss", [])),
                                 "best_epoch": int(stopper.best_epoch) + 1}  # the restored weights
    evals = {}
    for s in SPLITS:
        if s == "test" and not evaluate_test:
            continue
        if model_name == "inception":
            probs = net.predict(embeddings[s], verbose=0) if len(embeddings[s]) else \
                np.zeros((0, len(fs.classes)))
        else:
            probs = track_probabilities(net, fs.splits[s].x, model_name, feat)
        evals[s] = evaluate_probs(probs, fs.splits[s].y, fs.classes)
        evals[s]["probs"] = probs
        metrics[f"{s}_track_accuracy"] = evals[s]["accuracy"]
        metrics[f"{s}_track_loss"] = evals[s]["loss"]
    mlflow.log_metrics(metrics)

    pre = Preprocess(kind=model_name, classes=fs.classes, features=asdict(feat), stats=fs.stats,
                     data_source=fs.meta["data_source"])
    _write_outputs(model, pre, history, evals, fs, metrics, run_id, model_name,
                   bundle_dir, report_dir, input_shape)
    log(f"{model_name}: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    return TrainResult(run_id=run_id, metrics=metrics, bundle_dir=bundle_dir or Path(),
                       history=history)


def _log_dataset(cfg: Config, fs: FeatureSet) -> None:
    """The data as an MLflow dataset input, its digest being the DVC hash of ``data/``."""
    import mlflow

    from genreflow.tracking import data_digest

    rows = [{"clip_id": str(i), "split": s, "genre": fs.classes[int(y)]}
            for s in SPLITS for i, y in zip(fs.splits[s].ids, fs.splits[s].y, strict=True)]
    df = pd.DataFrame(rows)
    digest = data_digest(cfg.data.dir, json.dumps(fs.meta["counts"]))
    with warnings.catch_warnings():  # a local path matches two equivalent source types
        warnings.simplefilter("ignore", UserWarning)
        ds = mlflow.data.from_pandas(df, source=str(Path(cfg.data.dir).resolve()),
                                     name=f"gtzan-{fs.meta['data_source']}", targets="genre",
                                     digest=digest[:32])
    mlflow.log_input(ds, context="training")


def _write_outputs(model, pre: Preprocess, history: dict, evals: dict, fs: FeatureSet,
                   metrics: dict, run_id: str, model_name: str, bundle_dir: Path | None,
                   report_dir: Path | None, input_shape: tuple[int, int]) -> None:
    """Files for DVC (bundle, metrics, plots) and the same as MLflow artefacts."""
    import tempfile

    import mlflow

    from genreflow.figures import plot_confusion_matrix, plot_learning_curves
    from genreflow.tracking import log_keras_model

    tmp = Path(tempfile.mkdtemp(prefix="genreflow-"))
    rdir = Path(report_dir) if report_dir else tmp / "reports"
    rdir.mkdir(parents=True, exist_ok=True)
    hist_df = pd.DataFrame({k: v for k, v in history.items() if len(v) == len(history["loss"])})
    hist_df.insert(0, "epoch", np.arange(1, len(hist_df) + 1))
    hist_df.to_csv(rdir / "history.csv", index=False)
    plot_learning_curves(history, f"{model_name} learning curves [{pre.data_source}]",
                         rdir / "learning_curves.png")
    for s, ev in evals.items():
        cm = np.array(ev["confusion_matrix"])
        plot_confusion_matrix(cm, fs.classes,
                              f"{model_name} {s}: track accuracy {ev['accuracy']:.3f} "
                              f"[{pre.data_source}]", rdir / f"confusion_{s}.png")
        (rdir / f"confusion_{s}.json").write_text(json.dumps(
            {"classes": fs.classes, "matrix": ev["confusion_matrix"]}, indent=1))
        pred = ev["probs"].argmax(1) if len(ev["probs"]) else []
        pd.DataFrame({"clip_id": fs.splits[s].ids,
                      "actual": [fs.classes[i] for i in fs.splits[s].y],
                      "predicted": [fs.classes[i] for i in pred]}).to_csv(
            rdir / f"predictions_{s}.csv", index=False)
    (rdir / "classification_report.json").write_text(json.dumps(
        {s: {"per_genre_accuracy": ev["per_genre_accuracy"], "report": ev["report"]}
         for s, ev in evals.items()}, indent=1))
    (rdir / "metrics.json").write_text(json.dumps(
        {**metrics, "run_id": run_id, "data_source": pre.data_source}, indent=1))
    for s, ev in evals.items():
        mlflow.log_dict(ev["per_genre_accuracy"], f"per_genre_accuracy_{s}.json")
    mlflow.log_artifacts(str(rdir), artifact_path="reports")

    bdir = Path(bundle_dir) if bundle_dir else tmp / "bundle"
    bdir.mkdir(parents=True, exist_ok=True)
    model.save(bdir / "model.keras")
    pre.save(bdir / "preprocess.json")
    mlflow.log_artifact(str(bdir / "preprocess.json"), artifact_path="bundle")
    example = fs.splits["val"].x[:1, :, : input_shape[1], None].astype(np.float32)
    log_keras_model(model, example)
