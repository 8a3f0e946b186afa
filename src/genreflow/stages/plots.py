"""Charts of runs and data: confusion matrix, learning curves, clips per genre.

The shared drawing helpers (``new_figure``, ``save_png``, ``colorbar``) live here too; the
per-clip figures of :mod:`genreflow.stages.figures` and the study charts of
:mod:`genreflow.stages.study_report` use them. Everything draws on
:class:`matplotlib.figure.Figure` objects (no pyplot, no global state, no GUI backend);
matplotlib is imported lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.cm import ScalarMappable
    from matplotlib.figure import Figure


def new_figure(width: float, height: float) -> Figure:
    """A figure laid out by matplotlib's constrained layout."""
    # deferred: matplotlib import (see docs/benchmarks.md, Import cost)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save_png(fig: Figure, path: Path, dpi: int) -> Path:
    """``fig`` as a PNG at ``path`` (parent folders made); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    return path


def colorbar(
    fig: Figure, mappable: ScalarMappable, ax: Axes, label: str, cax: Axes | None = None
) -> None:
    cb = fig.colorbar(mappable, ax=None if cax is not None else ax, cax=cax, pad=0.01)
    cb.set_label(label)


def plot_confusion_matrix(cm: np.ndarray, class_names: list[str], title: str, path: Path) -> Path:
    """Confusion matrix: rows = true label, columns = predicted; counts annotated,
    colour = row-normalised fraction (recall). Overall accuracy is shown under the title."""
    cm = np.asarray(cm)
    n = cm.shape[0]
    if cm.shape != (n, n) or len(class_names) != n:
        raise ValueError(f"confusion matrix shape {cm.shape} does not match {len(class_names)} "
                         "class names")
    totals = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, totals, out=np.zeros(cm.shape, dtype=float), where=totals > 0)
    total = cm.sum()
    acc = float(np.trace(cm) / total) if total else float("nan")

    size = max(4.5, 0.6 * n + 2.5)
    fig = new_figure(size + 1.2, size)
    ax = fig.add_subplot()
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    fontsize = 9 if n <= 12 else 7 if n <= 20 else 5
    is_int = np.issubdtype(cm.dtype, np.integer) or np.allclose(cm, np.round(cm))
    for i in range(n):
        for j in range(n):
            text = f"{int(round(cm[i, j]))}" if is_int else f"{cm[i, j]:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=fontsize,
                    color="white" if frac[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    acc_text = f"accuracy {acc:.1%} ({int(np.trace(cm))}/{int(total)})" if total else "no samples"
    ax.set_title(f"{title}\n{acc_text}")
    colorbar(fig, im, ax, "fraction of true class")
    return save_png(fig, Path(path), 100)


def plot_learning_curves(history: dict[str, list[float]], title: str, path: Path,
                         best_epoch: int | None = None) -> Path:
    """Two panels, accuracy and loss vs epoch (train and validation, epochs from 1), with
    ``best_epoch`` marked: the epoch whose weights early stopping restored."""
    hist = {k: np.asarray(v, dtype=float) for k, v in history.items() if len(v)}
    best = best_epoch - 1 if best_epoch else None

    fig = new_figure(11, 4)
    axes = fig.subplots(1, 2)
    for ax, metric, label in ((axes[0], "accuracy", "accuracy"), (axes[1], "loss", "loss")):
        drawn = False
        for key, name, style in ((metric, "train", "-"), (f"val_{metric}", "validation", "--")):
            if key in hist:
                epochs = np.arange(1, len(hist[key]) + 1)
                ax.plot(epochs, hist[key], style, label=name, linewidth=1.4,
                        marker="o" if len(epochs) <= 30 else None, markersize=3)
                drawn = True
        if best is not None:
            ax.axvline(best + 1, color="tab:green", linestyle=":", linewidth=1.2,
                       label=f"restored weights (epoch {best + 1})")
            key = f"val_{metric}"
            if key in hist and best < len(hist[key]):
                ax.plot(best + 1, hist[key][best], "*", color="tab:green", markersize=11)
        if not drawn:
            ax.text(0.5, 0.5, f"no {metric} recorded", ha="center", va="center",
                    transform=ax.transAxes, color="0.4")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.grid(alpha=0.3)
        if drawn or best is not None:
            ax.legend(fontsize="small")
        # deferred: matplotlib import (see docs/benchmarks.md, Import cost)
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    return save_png(fig, Path(path), 100)


def plot_class_counts(counts: pd.DataFrame, title: str, path: Path) -> Path:
    """Grouped bar chart: one group per row (genre), one bar per numeric column
    (e.g. train/val/test, or a single count column). Bars are labelled with counts."""
    # deferred: pandas import, off `genreflow figures` (see docs/benchmarks.md, Import cost)
    import pandas as pd

    df = counts.to_frame() if isinstance(counts, pd.Series) else counts
    if isinstance(df.index, pd.RangeIndex):
        text_cols = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
        if text_cols:
            df = df.set_index(text_cols[0])
    df = df.select_dtypes("number")
    if df.shape[1] == 0:
        raise ValueError("plot_class_counts: no numeric columns to plot")
    rows, cols = [str(i) for i in df.index], [str(c) for c in df.columns]
    n, k = len(rows), len(cols)

    fig = new_figure(max(6.0, 0.55 * n * max(1, k) ** 0.5 + 2), 4.2)
    ax = fig.add_subplot()
    width = 0.8 / k
    x = np.arange(n)
    for j, col in enumerate(cols):
        values = df.iloc[:, j].to_numpy(dtype=float)
        bars = ax.bar(x - 0.4 + width * (j + 0.5), values, width, label=col)
        if n * k <= 60:
            ax.bar_label(bars, labels=[f"{v:g}" for v in values], fontsize=7, padding=1)
    ax.set_xticks(x, rows, rotation=30 if n > 6 else 0, ha="right" if n > 6 else "center")
    ax.set_xlabel(str(df.index.name or "genre"))
    ax.set_ylabel("number of clips")
    ax.set_title(title)
    ax.margins(y=0.12)
    ax.grid(axis="y", alpha=0.3)
    if k > 1:
        ax.legend(fontsize="small")
    return save_png(fig, Path(path), 100)
