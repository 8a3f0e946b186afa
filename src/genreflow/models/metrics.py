"""Classification metrics from label indices, and bootstrap intervals over tracks.

Pure numpy. Per-class precision, recall, F1 and support; macro-F1 (the unweighted mean of
the classes' F1, so a rare class counts as much as a common one); accuracy. A percentile
bootstrap gives the interval of accuracy or macro-F1 over a split's tracks: resample the
tracks with replacement ``n_boot`` times, score each resample, keep the middle ``level``
share of the scores.

:func:`resample_indices` and :func:`bootstrap_values` are general: any statistic of an
index matrix (one resample per row) can be bootstrapped with them, for example a paired
difference of two models' hits on the same tracks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import numpy as np

#: at most this many resampled indices are held at once (a chunk of rows of the index matrix)
MAX_CELLS = 1 << 22
#: an interval wider than this (accuracy or macro-F1, 0..1) cannot choose between models
WIDE_INTERVAL = 0.2
#: classes this many times the smallest one's tracks: accuracy alone misleads
UNBALANCED = 1.5
#: the bootstrap seed of every interval (train, tune, register): the same hits, the same interval
SEED = 42


def confusion(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``cm[true, predicted]`` counts; raises ``ValueError`` on a label outside the classes."""
    y, pred = _labels(y, n_classes, "y"), _labels(pred, n_classes, "pred")
    if len(y) != len(pred):
        raise ValueError(f"y has {len(y)} labels, pred {len(pred)}")
    return np.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes)


def _labels(a, n_classes: int, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.int64).ravel()
    if len(a) and (a.min() < 0 or a.max() >= n_classes):
        raise ValueError(f"{name}: label indices must be in [0, {n_classes}), "
                         f"got {a.min()}..{a.max()}")
    return a


def per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class ``precision``, ``recall``, ``f1`` (0 where undefined) and ``support``."""
    cm = np.asarray(cm)
    tp = np.diag(cm).astype(float)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def macro_f1(cm: np.ndarray) -> float:
    """Mean F1 over the classes that occur (as truth or prediction); 0 for no tracks.

    A class with no track in the split and never predicted says nothing about the model
    and is left out, as in scikit-learn's default.
    """
    return float(_macro_f1_batch(np.asarray(cm)[None])[0])


def _macro_f1_batch(cms: np.ndarray) -> np.ndarray:
    """Macro-F1 of a stack of confusion matrices ``(b, k, k)``."""
    tp = np.diagonal(cms, axis1=1, axis2=2).astype(float)
    seen = cms.sum(axis=2) + cms.sum(axis=1)  # support + predicted
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(seen > 0, 2 * tp / seen, 0.0)
    n_seen = (seen > 0).sum(axis=1)
    return np.where(n_seen > 0, f1.sum(axis=1) / np.maximum(n_seen, 1), 0.0)


def accuracy(cm: np.ndarray) -> float:
    """Share of tracks on the diagonal; 0 for no tracks."""
    cm = np.asarray(cm)
    total = cm.sum()
    return float(np.trace(cm) / total) if total else 0.0


# ---------------------------------------------------------------------------- bootstrap
def resample_indices(n: int, n_boot: int, seed: int = SEED,
                     max_cells: int = MAX_CELLS) -> Iterator[np.ndarray]:
    """The bootstrap index matrix ``(n_boot, n)`` in chunks of rows, each row ``n`` indices
    into ``range(n)`` drawn with replacement. Deterministic for ``(n, n_boot, seed)``; at most
    ``max_cells`` indices are held at once."""
    if n < 1 or n_boot < 1:
        raise ValueError(f"bootstrap needs n >= 1 and n_boot >= 1, got {n}, {n_boot}")
    rng = np.random.default_rng(seed)
    rows = max(1, max_cells // n)
    dtype = np.int32 if n < 2**31 else np.int64
    for start in range(0, n_boot, rows):
        yield rng.integers(0, n, size=(min(rows, n_boot - start), n), dtype=dtype)


def bootstrap_values(statistic: Callable[[np.ndarray], np.ndarray], n: int,
                     n_boot: int = 2000, seed: int = SEED) -> np.ndarray:
    """``statistic`` of each resample: it maps an index matrix ``(rows, n)`` to ``(rows,)``."""
    return np.concatenate([np.asarray(statistic(idx), dtype=float)
                           for idx in resample_indices(n, n_boot, seed)])


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` share of ``values``: ``(lo, hi)``, each end a value actually
    drawn (the lower at or below its percentile, the upper at or above): never narrower
    than the percentiles, and ``lo > 0`` only when that many draws really are above 0."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    tail = (1 - level) / 2
    values = np.asarray(values, dtype=float)
    return (float(np.quantile(values, tail, method="lower")),
            float(np.quantile(values, 1 - tail, method="higher")))


def accuracy_interval(hits: int, n: int, n_boot: int = 2000, level: float = 0.95,
                      seed: int = SEED) -> tuple[float, float]:
    """The bootstrap interval of an accuracy of ``hits`` out of ``n`` tracks. Resampling
    tracks, an accuracy depends only on how many hits are drawn, so the count is drawn
    (binomial): the same distribution as drawing indices, in constant memory, and the same
    interval for the same ``(hits, n)`` whatever the tracks' order (train, tune and
    register agree)."""
    if n <= 0:
        return 0.0, 1.0
    p = min(max(hits / n, 0.0), 1.0)
    draws = np.random.default_rng(seed).binomial(n, p, size=n_boot) / n
    return percentile_interval(draws, level)


def bootstrap_interval(sample, n_boot: int = 2000, level: float = 0.95, seed: int = SEED,
                       *, statistic: str = "accuracy",
                       n_classes: int | None = None) -> tuple[float, float]:
    """Percentile bootstrap interval over tracks of ``statistic`` (``accuracy`` or
    ``macro_f1``).

    ``sample`` is either the per-track hits (booleans, accuracy only) or ``(y, pred)``
    label indices. With no track at all nothing is known: ``(0.0, 1.0)``.
    """
    if statistic not in ("accuracy", "macro_f1"):
        raise ValueError(f"statistic: expected 'accuracy' or 'macro_f1', got {statistic!r}")
    if isinstance(sample, tuple):
        y, pred = (np.asarray(a, dtype=np.int64).ravel() for a in sample)
        k = n_classes or int(max(y.max(initial=-1), pred.max(initial=-1)) + 1)
        confusion(y, pred, k)  # refuses labels outside the classes and unequal lengths
        codes, hits = y * k + pred, y == pred
    else:
        if statistic != "accuracy":
            raise ValueError("macro_f1 needs (y, pred), not hits")
        hits, codes, k = np.asarray(sample, dtype=bool).ravel(), None, 0
    n = len(hits)
    if n == 0:
        return 0.0, 1.0
    if statistic == "accuracy":
        return accuracy_interval(int(hits.sum()), n, n_boot, level, seed)
    values = bootstrap_values(lambda idx: _macro_f1_batch(_confusions(codes[idx], k)),
                              n, n_boot, seed)
    return percentile_interval(values, level)


def _confusions(codes: np.ndarray, k: int) -> np.ndarray:
    """One confusion matrix per row of ``codes`` (``true * k + predicted``): ``(rows, k, k)``."""
    rows = codes.shape[0]
    offset = (np.arange(rows, dtype=np.int64) * k * k)[:, None]
    return np.bincount((codes + offset).ravel(), minlength=rows * k * k).reshape(rows, k, k)


# ------------------------------------------------------------------------------ summary
def classification_summary(y, pred, classes: list[str], n_boot: int = 2000,
                           level: float = 0.95, seed: int = SEED) -> dict:
    """Everything above for one split: accuracy and macro-F1 with their intervals, the
    confusion matrix and the per-class table (``{label: {precision, recall, f1, support}}``)."""
    k = len(classes)
    y, pred = np.asarray(y, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    cm = confusion(y, pred, k)
    table = per_class(cm)
    return {
        "accuracy": accuracy(cm),
        "accuracy_interval": bootstrap_interval((y, pred), n_boot, level, seed, n_classes=k),
        "macro_f1": macro_f1(cm),
        "macro_f1_interval": bootstrap_interval((y, pred), n_boot, level, seed,
                                                statistic="macro_f1", n_classes=k),
        "confusion_matrix": cm,
        "per_class": {name: {"precision": float(table["precision"][i]),
                             "recall": float(table["recall"][i]), "f1": float(table["f1"][i]),
                             "support": int(table["support"][i])}
                      for i, name in enumerate(classes)},
    }


def metric_names(labels: list[str]) -> dict[str, str]:
    """Each label as a piece of an MLflow metric name: characters outside ``[\\w.-]`` become
    ``_``; two labels that would collide get ``_2``, ``_3``... in their order."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for label in labels:
        base = re.sub(r"[^\w.-]", "_", str(label).strip()).strip(".") or "label"
        name, i = base, 1
        while name in used:
            i += 1
            name = f"{base}_{i}"
        used.add(name)
        out[label] = name
    return out
