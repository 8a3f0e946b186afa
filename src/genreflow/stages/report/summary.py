"""Last stage, report: what the page (:mod:`.html`) and the terminal table (:mod:`.write`)
show, collected from the pipeline's outputs.

Reads only files the other stages wrote (``reports/``, ``plots/figures``): each model's
track accuracy per split with its bootstrap interval, macro-F1 and per-class table, the
champion's registration, the data and the split. Any of them may be missing (older runs
wrote no intervals nor ``per_class.json``); the page and the table then say so or show "-"
instead of failing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from genreflow.core.config import RegisterConfig
from genreflow.models.metrics import WIDE_INTERVAL

MODEL_FIGURES = ("learning_curves.png", "confusion_test.png", "confusion_val.png",
                 "confusion_train.png")


@dataclass
class ModelRow:
    """One model kind: its ``metrics.json`` (empty when missing) and where its files are."""

    name: str
    status: str  # "ok", "missing" or "not in train.models"
    metrics: dict = field(default_factory=dict)
    folder: Path = Path()
    per_class: dict = field(default_factory=dict)  # per_class.json: {split: {label: {...}}}

    def _number(self, key: str) -> float | None:
        value = self.metrics.get(key)
        return float(value) if isinstance(value, int | float) else None

    def accuracy(self, split: str) -> float | None:
        return self._number(f"{split}_track_accuracy")

    def interval(self, split: str) -> tuple[float, float] | None:
        """The bootstrap 95 % interval of the split's track accuracy, if recorded."""
        lo, hi = (self._number(f"{split}_track_accuracy_{e}") for e in ("lo", "hi"))
        return None if lo is None or hi is None else (lo, hi)

    def macro_f1(self, split: str) -> float | None:
        return self._number(f"{split}_macro_f1")

    def class_table(self) -> tuple[str, dict] | None:
        """``(split, {label: {precision, recall, f1, support}})``: the test split's, else the
        validation split's; None without a readable ``per_class.json``."""
        for split in ("test", "val"):
            table = self.per_class.get(split)
            if isinstance(table, dict) and table and all(
                    isinstance(row, dict) for row in table.values()):
                return split, table
        return None


@dataclass
class Summary:
    """Everything the page and the table show."""

    root: Path
    models: list[ModelRow]
    champion: dict | None
    validate: dict | None
    split: dict | None
    tune: dict | None
    model_name: str
    metric: str
    problems: list[str] = field(default_factory=list)

    @property
    def data_sources(self) -> list[str]:
        found = [m.metrics.get("data_source") for m in self.models]
        found += [d.get("data_source") for d in (self.champion, self.validate, self.split) if d]
        return sorted({str(s) for s in found if s})

    @property
    def data_source(self) -> str:
        sources = self.data_sources
        return sources[0] if len(sources) == 1 else "mixed" if sources else "unknown"

    def figures(self) -> dict[str, list[Path]]:
        """Existing figures by section (paths relative to ``root``)."""
        def existing(paths) -> list[Path]:
            return [p for p in paths if (self.root / p).is_file()]

        out = {f"model {m.name}": existing(m.folder / f for f in MODEL_FIGURES)
               for m in self.models}
        out["data"] = existing([Path("reports/validate/validate_genres.png"),
                                Path("reports/split/split_counts.png")])
        out["audio figures"] = sorted(p.relative_to(self.root)
                                      for p in (self.root / "plots/figures").glob("*.png"))
        out["tuning"] = sorted(p.relative_to(self.root)
                               for p in (self.root / "reports/tune").glob("*.png"))
        return {k: v for k, v in out.items() if v}


def _read_json(path: Path, problems: list[str]) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: not valid JSON ({exc})")
        return None
    if not isinstance(data, dict):
        problems.append(f"{path}: expected a JSON object, got {type(data).__name__}")
        return None
    return data


def collect(root: Path, models: list[str], model_name: str = RegisterConfig().model_name,
            metric: str = "val_track_accuracy") -> Summary:
    """Read the stage outputs under ``root`` for the model kinds in ``models``."""
    root = Path(root)
    problems: list[str] = []
    rows = []
    train_dir = root / "reports" / "train"
    # a kind that left train.models keeps its old reports: shown, marked as such
    extra = sorted(p.parent.name for p in train_dir.glob("*/metrics.json")
                   if p.parent.name not in models)
    for name in [*models, *extra]:
        folder = Path("reports/train") / name
        metrics = _read_json(root / folder / "metrics.json", problems)
        details = _read_json(root / folder / "run.json", problems)  # run_id etc., if split off
        if metrics is not None and details:
            metrics = {**details, **metrics}
        status = "missing" if metrics is None else "ok" if name in models \
            else "not in train.models"
        per_class = _read_json(root / folder / "per_class.json", problems) or {}
        rows.append(ModelRow(name, status, metrics or {}, folder, per_class))
    return Summary(root=root, models=rows,
                   champion=champion_view(_read_json(root / "reports/register.json",
                                                     problems)),
                   validate=_read_json(root / "reports/validate/validate_summary.json", problems),
                   split=_read_json(root / "reports/split/split.json", problems),
                   tune=_read_json(root / "reports/tune/tune.json", problems),
                   model_name=model_name, metric=metric, problems=problems)


#: what each data source is, in the report's header (terminal and page)
SOURCE_NOTES = {
    "synthetic": "synthetic data: generated audio, not GTZAN; says nothing about "
                 "music-genre classification",
    "gtzan": "GTZAN: the real clips",
    "folder": "your collection: label folders",
    "manifest": "your collection: a manifest of labelled files",
}


def source_note(summary: Summary) -> str:
    """The header's words for the summary's data source."""
    if summary.data_source == "mixed":
        return (f"MIXED data sources {summary.data_sources}: some outputs come from other "
                "data; run `dvc repro` before trusting them")
    return SOURCE_NOTES.get(summary.data_source, "data source unknown: no stage output names one")


def interval_text(interval: tuple[float, float] | None) -> str:
    """``[lo, hi]`` to three places, or ``-``."""
    return "-" if interval is None else f"[{interval[0]:.3f}, {interval[1]:.3f}]"


def champion_view(registered: dict | None) -> dict | None:
    """``register.json`` as the holder of ``@champion`` after it: when the last registration
    made a challenger, the champion it did not beat (with why the challenger lost)."""
    held = (registered or {}).get("champion")
    if not registered or registered.get("alias") != "challenger" or not held:
        return registered
    return {**registered, "version": held["version"], "alias": "champion",
            "model_kind": held.get("model_kind"), "run_id": held.get("run_id"),
            "candidate_val": {"accuracy": held.get("val_track_accuracy")}, "champion_val": None,
            "test_track_accuracy": held.get("test_track_accuracy"),
            "latency_ms": held.get("latency_ms"), "previous_champion": None,
            "reason": (f"kept: version {registered['version']} ({registered.get('model_kind')}) "
                       f"became @challenger: {registered.get('reason', '')}")}


def champion_row(summary: Summary) -> str | None:
    """The model kind whose training run became the registered version, if any."""
    run = (summary.champion or {}).get("run_id")
    for m in summary.models:
        if run and m.metrics.get("run_id") == run:
            return m.name
    return None


def champion_origin(summary: Summary) -> str:
    """Where the registered run came from, in words."""
    champ = summary.champion or {}
    row = champion_row(summary)
    if row:
        return f"the {row} training run"
    if summary.tune and champ.get("run_id") == summary.tune.get("best_run_id"):
        return "the best tuning trial"
    return f"MLflow run {champ.get('run_id', '?')}"


def registered_val(champ: dict) -> float | None:
    """The registered version's validation track accuracy, scored from raw audio."""
    return (champ.get("candidate_val") or {}).get("accuracy", champ.get("val_metric"))


def previous_val(champ: dict) -> float | None:
    """The previous champion's score on the same validation clips (None if there was none)."""
    return (champ.get("champion_val") or {}).get("accuracy")


def imbalance(table: dict) -> float | None:
    """Largest class support over the smallest (None without support, inf if one is 0)."""
    support = [row.get("support") for row in table.values()]
    if not support or not all(isinstance(n, int) for n in support):
        return None
    return max(support) / min(support) if min(support) else float("inf")


def imbalance_text(ratio: float) -> str:
    """:func:`imbalance`'s ratio in words."""
    if ratio == float("inf"):
        return "a class has no track in this split"
    return f"the largest class has {ratio:.1f}x the smallest's tracks"


def wide_intervals(summary: Summary, split: str = "val", wide: float = WIDE_INTERVAL) -> list[str]:
    """Models whose ``split`` accuracy interval is wider than ``wide``: too few tracks there
    to choose between them."""
    return [m.name for m in summary.models
            if (i := m.interval(split)) is not None and i[1] - i[0] > wide]
