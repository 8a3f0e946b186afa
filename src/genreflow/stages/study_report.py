"""The charts and table of an Optuna study: written by ``genreflow tune`` beside the study.

``metric`` names the study's objective (the y axis; :data:`genreflow.stages.study.OBJECTIVE_METRIC`).

``optimization_history.png``, ``param_importances.png`` (PED-ANOVA), ``lr_vs_optimizer.png`` and
``trials.csv``; a chart that cannot be drawn (importances need two complete trials whose
settings differ) is replaced by a ``.txt`` note saying why.

Each complete trial carries its validation score's bootstrap 95 % interval over the
validation tracks and its macro-F1 (:data:`TRIAL_ATTRS`, Optuna user attributes, so
``trials.csv`` has them as ``user_attrs_*`` columns); the history chart draws the interval.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from genreflow.models.metrics import WIDE_INTERVAL
from genreflow.stages.plots import new_figure, save_png

#: what a complete trial records of its training run beside the objective value
TRIAL_ATTRS = ("val_track_accuracy_lo", "val_track_accuracy_hi", "val_macro_f1")


def trial_interval(trial) -> tuple[float, float] | None:
    """A trial's validation interval ``(lo, hi)``, None if it has none (an older trial)."""
    attrs = trial.user_attrs
    if "val_track_accuracy_lo" not in attrs or "val_track_accuracy_hi" not in attrs:
        return None
    return float(attrs["val_track_accuracy_lo"]), float(attrs["val_track_accuracy_hi"])


def interval_warning(interval: tuple[float, float] | None, n_tracks: int | None,
                     wide: float = WIDE_INTERVAL) -> str | None:
    """Why the validation split is too small to choose between settings, or None."""
    if interval is None or interval[1] - interval[0] <= wide:
        return None
    tracks = f"{n_tracks} validation tracks" if n_tracks else "the validation tracks"
    return (f"the best trial's 95 % interval over {tracks} is [{interval[0]:.3f}, "
            f"{interval[1]:.3f}] (wider than {wide:g}): too few to choose between these "
            "settings; trials whose scores fall inside it are not told apart")


if TYPE_CHECKING:
    import optuna
    from matplotlib.figure import Figure


def _source(study: optuna.Study) -> str:
    return f"[{study.user_attrs.get('data_source', 'unknown')}]"


def _complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    # deferred: Optuna import (see docs/benchmarks.md, Import cost)
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def plot_history(study: optuna.Study, metric: str) -> Figure:
    """Objective value per trial with the best-so-far line; pruned trials at their last report."""
    # deferred: matplotlib import (see docs/benchmarks.md, Import cost)
    from matplotlib.ticker import MaxNLocator
    from optuna.trial import TrialState

    fig = new_figure(6.5, 4)
    ax = fig.add_subplot()
    done = _complete(study)
    xs, ys = [t.number for t in done], [t.value for t in done]
    ax.plot(xs, ys, "o", color="tab:blue", label="complete")
    spans = [(t.number, t.value, trial_interval(t)) for t in done if trial_interval(t)]
    if spans:
        ax.errorbar([x for x, _, _ in spans], [y for _, y, _ in spans],
                    yerr=[[y - i[0] for _, y, i in spans], [i[1] - y for _, y, i in spans]],
                    fmt="none", ecolor="tab:blue", alpha=0.4, capsize=3,
                    label="95 % interval (validation tracks)")
    best, running = [], -math.inf
    for y in ys:
        running = max(running, y)
        best.append(running)
    if xs:
        ax.step(xs, best, where="post", color="tab:red", label="best so far")
    pruned = [t for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
              if t.intermediate_values]
    if pruned:
        ax.plot([t.number for t in pruned], [t.intermediate_values[t.last_step] for t in pruned],
                "x", color="tab:gray", label="pruned (last report)")
    ax.set(xlabel="trial", ylabel=metric, title=f"Optimisation history: {study.study_name} {_source(study)}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if xs or pruned:
        ax.legend(loc="lower right")
    return fig


def plot_importances(study: optuna.Study, metric: str) -> Figure:
    """Hyper-parameter importances by PED-ANOVA (named, not Optuna's default, which changed
    from fANOVA in Optuna 5); raises if not computable."""
    # deferred: Optuna import (see docs/benchmarks.md, Import cost)
    import optuna

    # too few trials, or every trial scored the same: Optuna says the importances are equal,
    # which the chart shows
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Parameter importances will be equal",
                                category=UserWarning)
        imp = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
    if not imp:
        raise ValueError("no parameter varies across the complete trials")
    names = list(imp)[::-1]
    fig = new_figure(6, 1.2 + 0.5 * len(names))
    ax = fig.add_subplot()
    ax.barh(names, [imp[n] for n in names], color="tab:blue")
    ax.set(xlabel="importance (PED-ANOVA)", xlim=(0, 1),
           title=f"Hyper-parameter importance on {metric} {_source(study)}")
    return fig


def plot_lr_by_optimizer(study: optuna.Study, metric: str) -> Figure:
    """Objective value against learning rate (log scale), one colour per optimiser."""
    fig = new_figure(6.5, 4)
    ax = fig.add_subplot()
    groups: dict[str, list[tuple[float, float]]] = {}
    for t in _complete(study):
        if "learning_rate" in t.params:
            groups.setdefault(str(t.params.get("optimizer", "?")), []).append(
                (t.params["learning_rate"], t.value))
    for opt in sorted(groups):
        lr, val = zip(*groups[opt], strict=True)
        ax.scatter(lr, val, label=opt, s=36, alpha=0.85)
    ax.set_xscale("log")
    ax.set(xlabel="learning rate", ylabel=metric,
           title=f"Learning rate vs optimiser (complete trials) {_source(study)}")
    # deferred: matplotlib import (see docs/benchmarks.md, Import cost)
    from matplotlib.ticker import LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(base=10))
    ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlapped the decades
    ax.grid(alpha=0.3, which="both")
    if groups:
        ax.legend(title="optimizer", fontsize="small")
    return fig


def write_study_report(study: optuna.Study, out: Path, metric: str,
                       log: Callable[[str], None] = print, dpi: int = 100) -> list[Path]:
    """Figures and ``trials.csv`` of ``study`` in ``out``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    study.trials_dataframe().to_csv(out / "trials.csv", index=False)
    files.append(out / "trials.csv")
    plots = {"optimization_history.png": plot_history,
             "param_importances.png": plot_importances,
             "lr_vs_optimizer.png": plot_lr_by_optimizer}
    for fname, plot in plots.items():
        try:
            fig = plot(study, metric)
        except Exception as exc:  # importances need >= 2 complete trials with varying params
            note = f"{fname}: not drawn ({type(exc).__name__}: {exc})"
            log(note)
            (out / fname).unlink(missing_ok=True)
            (out / fname).with_suffix(".txt").write_text(note + "\n")
            files.append((out / fname).with_suffix(".txt"))
            continue
        (out / fname).with_suffix(".txt").unlink(missing_ok=True)
        files.append(save_png(fig, out / fname, dpi))
    return files
