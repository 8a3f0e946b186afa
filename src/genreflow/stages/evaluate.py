"""Track-level numbers of a trained model: accuracy and macro-F1 with their intervals, loss,
the confusion matrix and the per-class report of one split, named as the run logs them."""

from __future__ import annotations

import numpy as np

from genreflow.models.metrics import SEED, classification_summary, metric_names
from genreflow.models.splits import SPLITS


def evaluate_probs(probs: np.ndarray, y: np.ndarray, classes: list[str], seed: int = SEED) -> dict:
    """Track-level accuracy and macro-F1 with their bootstrap 95 % intervals over the tracks,
    loss, confusion matrix, per-genre accuracy and the per-class report."""
    y = np.asarray(y, dtype=int)
    pred = probs.argmax(axis=1) if len(probs) else np.zeros(0, int)
    summary = classification_summary(y, pred, classes, seed=seed)
    eps = 1e-7
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], eps, 1)))) if len(y) else 0.0
    report = {name: {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
              for name, row in summary["per_class"].items()}
    return {
        "accuracy": summary["accuracy"],
        "accuracy_interval": list(summary["accuracy_interval"]),
        "macro_f1": summary["macro_f1"],
        "macro_f1_interval": list(summary["macro_f1_interval"]),
        "loss": loss,
        "confusion_matrix": summary["confusion_matrix"].tolist(),
        "per_genre_accuracy": {n: report[n]["recall"] for n in classes},
        "report": report,
    }


def split_metrics(s: str, ev: dict) -> dict[str, float]:
    """The run's headline numbers of split ``s``: accuracy, its interval, loss, macro-F1."""
    (lo, hi), (f_lo, f_hi) = ev["accuracy_interval"], ev["macro_f1_interval"]
    return {f"{s}_track_accuracy": ev["accuracy"], f"{s}_track_accuracy_lo": lo,
            f"{s}_track_accuracy_hi": hi, f"{s}_track_loss": ev["loss"],
            f"{s}_macro_f1": ev["macro_f1"], f"{s}_macro_f1_lo": f_lo, f"{s}_macro_f1_hi": f_hi}


def class_metrics(s: str, ev: dict) -> dict[str, float]:
    """Per-class ``{s}_f1_<label>``, ``{s}_precision_<label>``, ``{s}_recall_<label>`` (labels
    made MLflow-safe by :func:`~genreflow.models.metrics.metric_names`)."""
    names = metric_names(list(ev["report"]))
    return {f"{s}_{m}_{names[label]}": float(row[m]) for label, row in ev["report"].items()
            for m in ("f1", "precision", "recall")}


def describe(name: str, metrics: dict[str, float]) -> str:
    """One log line: each split's accuracy with its interval and macro-F1, then epochs."""
    parts = [f"{s} accuracy {metrics[f'{s}_track_accuracy']:.3f} "
             f"[{metrics[f'{s}_track_accuracy_lo']:.3f}, {metrics[f'{s}_track_accuracy_hi']:.3f}]"
             f" macro-F1 {metrics[f'{s}_macro_f1']:.3f}"
             for s in SPLITS if f"{s}_macro_f1" in metrics]
    return (f"{name}: " + "; ".join(parts) + f"; epochs {metrics['epochs']} "
            f"(best {metrics['best_epoch']}), {metrics['train_seconds']:.4g} s")
