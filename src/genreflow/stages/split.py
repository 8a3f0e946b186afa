"""Stage 2, split: choose genres, balance them and split by track (paper Fig. 7)."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from genreflow.core.config import DataConfig, SplitConfig
from genreflow.core.errors import GenreflowError
from genreflow.models.splits import SPLITS
from genreflow.stages.plots import plot_class_counts


class SplitError(GenreflowError, ValueError):
    """The requested split cannot be made from the available clips."""


def fault_filtered_lists() -> dict[str, list[str]]:
    """The fault-filtered GTZAN split (Kereliuk, Sturm & Larsen 2015), as shipped."""
    text = resources.files("genreflow.stages.resources").joinpath(
        "gtzan_fault_filtered.json").read_text()
    raw = json.loads(text)
    return {"train": raw["train"], "val": raw["valid"], "test": raw["test"]}


def split_sizes(n: int, ratios: list[float]) -> tuple[int, int, int]:
    """Per-genre train/val/test counts; val and test are rounded, train takes the rest.

    With 99 clips and 80/9/10 this gives 80/9/10, as in the paper. Every split
    gets at least one clip when there are three or more.
    """
    total = sum(ratios)
    n_val = int(round(n * ratios[1] / total))
    n_test = int(round(n * ratios[2] / total))
    if n >= 3:
        n_val = max(n_val, 1) if ratios[1] > 0 else 0
        n_test = max(n_test, 1) if ratios[2] > 0 else 0
    n_train = n - n_val - n_test
    if n_train < 1:
        raise SplitError(f"{n} clips cannot be split with ratios {ratios}")
    return n_train, n_val, n_test


def select_genres(cfg: SplitConfig, data: DataConfig, available: set[str]) -> list[str]:
    """The genres to keep: ``split.genres`` ('all' = ``data.genres``) that have usable clips."""
    wanted = list(data.genres) if cfg.genres == "all" else list(cfg.genres)
    unknown = [g for g in wanted if g not in available]
    if cfg.genres != "all" and unknown:
        raise SplitError(
            f"split.genres: {unknown} have no usable clips; available: {sorted(available)}"
        )
    genres = [g for g in wanted if g in available]
    if len(genres) < 2:
        raise SplitError(f"need at least two genres with usable clips, found {genres}")
    return genres


def make_split(
    report: dict,
    cfg: SplitConfig,
    data: DataConfig,
    log: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Split the usable clips of a validation report; one row per kept clip.

    Columns: ``clip_id, genre, path, split``. Clips are assigned whole, so no
    track can appear in two splits.
    """
    ok = pd.DataFrame([r for r in report["clips"] if r["status"] == "ok"])
    if ok.empty:
        raise SplitError("the validation report lists no usable clips")
    genres = select_genres(cfg, data, set(ok["genre"]))
    ok = ok[ok["genre"].isin(genres)].sort_values("clip_id").reset_index(drop=True)
    rng = np.random.default_rng(cfg.seed)

    if cfg.method == "fault_filtered":
        lists = fault_filtered_lists()
        where = {cid: s for s, ids in lists.items() for cid in ids}
        ok["split"] = ok["clip_id"].map(where)
        dropped = ok[ok["split"].isna()]["clip_id"].tolist()
        if dropped:
            log(f"fault-filtered split leaves out {len(dropped)} clips (e.g. {dropped[:5]})")
        wanted = {cid for cid in where if cid.split(".")[0] in genres}
        absent = sorted(wanted - set(ok["clip_id"]))
        if absent:
            log(f"fault-filtered split: {len(absent)} listed clips are not available "
                f"(e.g. {absent[:5]})")
        out = ok.dropna(subset=["split"])
    else:
        counts = ok.groupby("genre").size()
        n_keep = int(counts.min()) if cfg.balance else None
        if cfg.balance:
            log(f"balancing {len(genres)} genres to {n_keep} clips each "
                f"(smallest: {counts.idxmin()})")
        parts = []
        for genre in genres:
            g = ok[ok["genre"] == genre]
            order = rng.permutation(len(g))
            if n_keep is not None:
                order = order[:n_keep]
            n_train, n_val, _ = split_sizes(len(order), cfg.ratios)
            labels = np.array(["test"] * len(order), dtype=object)
            labels[:n_train] = "train"
            labels[n_train:n_train + n_val] = "val"
            picked = g.iloc[order].copy()
            picked["split"] = labels
            parts.append(picked)
        out = pd.concat(parts)
    out = out[["clip_id", "genre", "path", "split"]].sort_values(["split", "clip_id"])
    for s in SPLITS:
        if not (out["split"] == s).any():
            raise SplitError(f"split '{s}' is empty; add clips or change split.ratios")
    per = split_table(out).reindex(index=genres, fill_value=0)
    untrained = [g for g in genres if per.loc[g, "train"] == 0]
    if untrained:
        why = (" (the fault-filtered lists name clips this data set does not have)"
               if cfg.method == "fault_filtered" else "")
        raise SplitError(f"genre(s) {untrained} would have no training clips{why}; add their "
                         "clips, leave them out of split.genres, or change split.method")
    for s in ("val", "test"):
        unseen = [g for g in genres if per.loc[g, s] == 0]
        if unseen:
            log(f"warning: genre(s) {unseen} have no {s} clips: their {s} accuracy is not "
                "measured")
    return out.reset_index(drop=True)


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
    }
    (reports_dir / "split.json").write_text(json.dumps(summary, indent=1))
    plot_class_counts(table, f"Clips per split and genre [{report['data_source']}]",
                      reports_dir / "split_counts.png")
    return summary


def format_table(manifest: pd.DataFrame) -> str:
    """Fig. 7 as text."""
    table = split_table(manifest)
    names = {"train": "Training", "val": "Validation", "test": "Test"}
    return "\n".join(f"{names[s]}: {table[s].to_dict()}" for s in SPLITS)
