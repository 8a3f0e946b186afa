"""Stage 2, split: choose labels and split the usable clips by track (paper Fig. 7).

``split.method`` picks how (:mod:`genreflow.stages.split_methods`); this module keeps the
labels asked for, runs the method, checks what every split must hold, reports the class
balance and writes the manifest.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from genreflow.core.config import DataConfig, SplitConfig
from genreflow.core.labels import resolve_labels
from genreflow.models.metrics import UNBALANCED
from genreflow.models.splits import SPLITS
from genreflow.stages.plots import plot_class_counts
from genreflow.stages.split_methods import (
    METHODS,
    SplitError,
    fault_filtered_lists,
    split_sizes,
    untrained_error,
)

__all__ = ["SplitError", "fault_filtered_lists", "format_table", "make_split", "split_sizes",
           "split_table", "write_split"]

#: columns of ``artifacts/split.csv`` (``group`` empty for a clip without one)
COLUMNS = ["clip_id", "genre", "path", "split", "group"]

#: a label with fewer validation clips than this is warned about
MIN_VAL_CLIPS = 5


def select_genres(cfg: SplitConfig, data: DataConfig, available: set[str]) -> list[str]:
    """The genres to keep: ``split.genres`` ('all' = ``data.genres``) that have usable clips."""
    wanted = resolve_labels(data, available) if cfg.genres == "all" else list(cfg.genres)
    unknown = [g for g in wanted if g not in available]
    if cfg.genres != "all" and unknown:
        raise SplitError(
            f"split.genres: {unknown} have no usable clips; available: {sorted(available)}"
        )
    genres = [g for g in wanted if g in available]
    if len(genres) < 2:
        raise SplitError(f"need at least two genres with usable clips, found {genres}")
    return genres


def usable_clips(report: dict) -> pd.DataFrame:
    """The validation report's usable clips: ``clip_id, genre, path, group, given`` (``group``
    ``""`` for none, ``given`` the predefined split or None; reports before either had them
    read as none)."""
    rows = [{"clip_id": r["clip_id"], "genre": r["genre"], "path": r["path"],
             "group": "" if r.get("group") is None else str(r["group"]).strip(),
             "given": r.get("split")}
            for r in report["clips"] if r["status"] == "ok"]
    if not rows:
        raise SplitError("the validation report lists no usable clips")
    return pd.DataFrame(rows)


def make_split(
    report: dict,
    cfg: SplitConfig,
    data: DataConfig,
    log: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Split the usable clips of a validation report; one row per kept clip.

    Columns: ``clip_id, genre, path, split, group``. Clips are assigned whole, so no
    track can appear in two splits.
    """
    ok = usable_clips(report)
    genres = select_genres(cfg, data, set(ok["genre"]))
    ok = ok[ok["genre"].isin(genres)].sort_values("clip_id").reset_index(drop=True)
    out = METHODS[cfg.method](ok, genres, cfg, report.get("data_source", "unknown"), log)
    out = out[COLUMNS].sort_values(["split", "clip_id"]).reset_index(drop=True)
    check_split(out, genres, log)
    report_balance(out, genres, log)
    return out


def check_split(out: pd.DataFrame, genres: list[str], log: Callable[[str], None]) -> None:
    """Every split holds clips and every label is trained on; warn of labels not held out."""
    for s in SPLITS:
        if not (out["split"] == s).any():
            raise SplitError(f"split '{s}' is empty; add clips or change split.ratios")
    per = split_table(out).reindex(index=genres, fill_value=0)
    untrained = [g for g in genres if per.loc[g, "train"] == 0]
    if untrained:
        raise untrained_error(untrained)
    for s in ("val", "test"):
        unseen = [g for g in genres if per.loc[g, s] == 0]
        if unseen:
            log(f"warning: genre(s) {unseen} have no {s} clips: their {s} accuracy is not "
                "measured")


def balance_summary(manifest: pd.DataFrame) -> dict:
    """Clips per label and split, and the imbalance ratio: largest / smallest training count."""
    table = split_table(manifest)
    train = table["train"]
    return {
        "per_label": {g: {s: int(table.loc[g, s]) for s in SPLITS} for g in table.index},
        "imbalance": round(float(train.max() / max(int(train.min()), 1)), 3),
        "largest": str(train.idxmax()),
        "smallest": str(train.idxmin()),
    }


def report_balance(out: pd.DataFrame, genres: list[str], log: Callable[[str], None]) -> None:
    """Log the class imbalance when labels are unequal in train, and labels with few val clips."""
    summary = balance_summary(out)
    if summary["imbalance"] > 1:
        per = summary["per_label"]
        log(f"class imbalance: {summary['imbalance']}x between the largest and smallest training "
            f"label ({summary['largest']}: {per[summary['largest']]['train']}, "
            f"{summary['smallest']}: {per[summary['smallest']]['train']})"
            + ("; accuracy alone misleads here: read the per-class scores"
               if summary["imbalance"] >= UNBALANCED else ""))
    few = [g for g in genres if 0 < summary["per_label"][g]["val"] < MIN_VAL_CLIPS]
    if few:
        log(f"warning: {len(few)} label(s) have fewer than {MIN_VAL_CLIPS} validation clips "
            f"(e.g. {few[:5]}): their validation scores rest on very few tracks")


def split_table(manifest: pd.DataFrame) -> pd.DataFrame:
    """Counts per genre and split (rows: genres; columns: train, val, test)."""
    table = pd.crosstab(manifest["genre"], manifest["split"]).reindex(
        columns=list(SPLITS), fill_value=0)
    table.index.name = "genre"
    return table


def write_split(manifest: pd.DataFrame, report: dict, cfg: SplitConfig,
                manifest_path: Path, reports_dir: Path) -> dict:
    """Write the manifest CSV, the Fig. 7 table (CSV, PNG) and a summary JSON."""
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    reports_dir.mkdir(parents=True, exist_ok=True)
    manifest.to_csv(manifest_path, index=False)
    table = split_table(manifest)
    long = table.reset_index().melt(id_vars="genre", var_name="split", value_name="count")
    long.to_csv(reports_dir / "split_counts.csv", index=False)  # genre,split,count (DVC plot)
    summary = {
        "data_source": report["data_source"],
        "method": cfg.method,
        "seed": cfg.seed,
        "genres": list(table.index),
        "counts": {s: int(table[s].sum()) for s in SPLITS},
        **balance_summary(manifest),
    }
    if "group" in manifest:
        summary["groups"] = int(manifest.loc[manifest["group"].fillna("") != "", "group"].nunique())
    (reports_dir / "split.json").write_text(json.dumps(summary, indent=1))
    plot_class_counts(table, f"Clips per split and genre [{report['data_source']}]",
                      reports_dir / "split_counts.png")
    return summary


def format_table(manifest: pd.DataFrame) -> str:
    """Fig. 7 as text."""
    table = split_table(manifest)
    names = {"train": "Training", "val": "Validation", "test": "Test"}
    return "\n".join(f"{names[s]}: {table[s].to_dict()}" for s in SPLITS)
