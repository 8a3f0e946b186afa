"""The ways ``split.method`` assigns the kept clips to train / val / test, one function each.

Every method takes the kept clips (columns ``clip_id, genre, path, group, given``: ``group``
is ``""`` for none, ``given`` the predefined split or ``None``), sorted by ``clip_id``, and
returns the clips it keeps with a ``split`` column. The checks every split gets (no empty
split, every label trained) are :mod:`genreflow.stages.split`'s.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from importlib import resources

import numpy as np
import pandas as pd

from genreflow.core.config import GTZAN_GENRES, SplitConfig
from genreflow.core.errors import GenreflowError
from genreflow.core.safe_text import printable
from genreflow.models.splits import SPLITS
from genreflow.stages.group_split import assign_groups

Log = Callable[[str], None]

#: a GTZAN clip id: ``<genre>.NNNNN`` for one of GTZAN's ten genres
GTZAN_ID = re.compile(rf"({'|'.join(GTZAN_GENRES)})\.\d{{5}}")

#: data sources whose clips may be GTZAN's (``unknown``: a folder without ``SOURCE.json``,
#: such as a copy placed by hand; its clip ids decide)
GTZAN_SOURCES = ("gtzan", "unknown")


class SplitError(GenreflowError, ValueError):
    """The requested split cannot be made from the available clips."""


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


def untrained_error(untrained: list[str], why: str = "") -> SplitError:
    """The refusal of a split that leaves labels without training clips."""
    return SplitError(f"genre(s) {untrained} would have no training clips{why}; add their "
                      "clips, leave them out of split.genres, or change split.method")


def balance_count(ok: pd.DataFrame, cfg: SplitConfig, log: Log) -> int | None:
    """Clips to keep per label (the smallest label's count), or None when not balancing."""
    if not cfg.balance:
        return None
    counts = ok.groupby("genre").size()
    log(f"balancing {len(counts)} genres to {int(counts.min())} clips each "
        f"(smallest: {counts.idxmin()})")
    return int(counts.min())


# ------------------------------------------------------------------------------ methods
def stratified(ok: pd.DataFrame, genres: list[str], cfg: SplitConfig, source: str,
               log: Log) -> pd.DataFrame:
    """Seeded, per label: shuffle, keep the balanced count, cut at the ratios (paper Fig. 7)."""
    rng = np.random.default_rng(cfg.seed)
    n_keep = balance_count(ok, cfg, log)
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
    return pd.concat(parts)


def group(ok: pd.DataFrame, genres: list[str], cfg: SplitConfig, source: str,
          log: Log) -> pd.DataFrame:
    """Whole groups per split, stratified by label (:mod:`genreflow.stages.group_split`); a
    clip without a group is a group of its own. Refuses a label that cannot be both trained
    on and held out."""
    rng = np.random.default_rng(cfg.seed)
    n_keep = balance_count(ok, cfg, log)
    if n_keep is not None:
        ok = pd.concat(g.iloc[np.sort(rng.permutation(len(g))[:n_keep])]
                       for _, g in ok.groupby("genre", sort=True))
    key = np.where(ok["group"] != "", "g:" + ok["group"], "c:" + ok["clip_id"])
    counts = pd.crosstab(pd.Series(key, index=ok.index, name="key"), ok["genre"])
    where = assign_groups(counts.sort_index(), cfg.ratios, rng)
    out = ok.assign(split=where.reindex(key).to_numpy())
    _refuse_unsplittable(out, key, genres)
    log(f"group split: {len(counts)} groups ({int((ok['group'] != '').sum())} clips "
        "in named groups, the others alone); no group is in two splits")
    return out


def _refuse_unsplittable(out: pd.DataFrame, key: np.ndarray, genres: list[str]) -> None:
    """A label must reach train and at least one of val / test; name the first that cannot."""
    for genre in genres:
        rows = out[out["genre"] == genre]
        held_out = rows["split"].isin(["val", "test"]).any()
        if (rows["split"] == "train").any() and held_out:
            continue
        keys = set(key[(out["genre"] == genre).to_numpy()])
        only = printable(next(iter(keys))[2:])
        if keys == {f"c:{rows['clip_id'].iloc[0]}"}:
            why = f"it has a single clip ('{only}')"
        elif len(keys) == 1:
            why = f"all its {len(rows)} clips are in one group ('{only}')"
        else:
            why = f"its {len(keys)} groups also hold other labels' clips, split elsewhere"
        raise SplitError(f"split.method group: label '{printable(genre)}' cannot reach train and val/test: "
                         f"{why}; give it clips of other groups, leave it out of split.genres, "
                         "or use split.method stratified")


def predefined(ok: pd.DataFrame, genres: list[str], cfg: SplitConfig, source: str,
               log: Log) -> pd.DataFrame:
    """The split each clip was given (the manifest's ``split`` column), as given."""
    given = ok["given"].map(lambda v: v.strip() if isinstance(v, str) else v)
    bad = ok[~given.isin(SPLITS)]
    if not bad.empty:
        row = bad.iloc[0]
        what = ("has no split" if _blank(row["given"])
                else f"has split {printable(repr(row['given']))}")
        raise SplitError(f"split.method predefined: clip '{printable(row['clip_id'])}' {what} "
                         f"({len(bad)} of {len(ok)} kept clips lack a valid one); expected "
                         f"one of {list(SPLITS)} for every clip, in the manifest's split column")
    log("predefined split: used as given; split.balance and split.ratios are not applied")
    straddling = ok.assign(split=given)[ok["group"] != ""].groupby("group")["split"].nunique()
    if (straddling > 1).any():
        log(f"warning: {int((straddling > 1).sum())} group(s) of the predefined split are in "
            f"more than one split (e.g. '{printable(straddling[straddling > 1].index[0])}')")
    return ok.assign(split=given)


def _blank(value: object) -> bool:
    """None, NaN (pandas' missing) or an empty string."""
    return value is None or value != value or (isinstance(value, str) and not value.strip())


def fault_filtered_lists() -> dict[str, list[str]]:
    """The fault-filtered GTZAN split (Kereliuk, Sturm & Larsen 2015), as shipped."""
    text = resources.files("genreflow.stages.resources").joinpath(
        "gtzan_fault_filtered.json").read_text()
    raw = json.loads(text)
    return {"train": raw["train"], "val": raw["valid"], "test": raw["test"]}


def fault_filtered(ok: pd.DataFrame, genres: list[str], cfg: SplitConfig, source: str,
                   log: Log) -> pd.DataFrame:
    """GTZAN's fault-filtered lists applied to the clips present (GTZAN data only)."""
    _refuse_non_gtzan(ok, source)
    lists = fault_filtered_lists()
    where = {cid: s for s, ids in lists.items() for cid in ids}
    ok = ok.assign(split=ok["clip_id"].map(where))
    dropped = ok[ok["split"].isna()]["clip_id"].tolist()
    if dropped:
        log(f"fault-filtered split leaves out {len(dropped)} clips (e.g. {dropped[:5]})")
    wanted = {cid for cid in where if cid.split(".")[0] in genres}
    absent = sorted(wanted - set(ok["clip_id"]))
    if absent:
        log(f"fault-filtered split: {len(absent)} listed clips are not available "
            f"(e.g. {absent[:5]})")
    out = ok.dropna(subset=["split"])
    untrained = [g for g in genres if not ((out["genre"] == g) & (out["split"] == "train")).any()]
    if untrained:
        raise untrained_error(untrained, " (the fault-filtered lists name clips this data set "
                                         "does not have)")
    return out


def _refuse_non_gtzan(ok: pd.DataFrame, source: str) -> None:
    if source not in GTZAN_SOURCES:
        raise SplitError(f"split.method fault_filtered: the fault-filtered lists name GTZAN's "
                         f"clips, and this data's source is '{printable(source)}'; use split."
                         "method group (with a group per artist) or stratified")
    ids = ok["clip_id"].astype(str)
    foreign = ok[[not (GTZAN_ID.fullmatch(c) and c.split(".")[0] == g)
                  for c, g in zip(ids, ok["genre"], strict=True)]]
    if not foreign.empty:
        raise SplitError(f"split.method fault_filtered: clip '{printable(foreign.iloc[0]['clip_id'])}"
                         f"' ({foreign.iloc[0]['genre']}) is not a GTZAN clip "
                         f"(<genre>.NNNNN for GTZAN's genres; {len(foreign)} such clips); the "
                         "fault-filtered lists apply to GTZAN only: use split.method group or "
                         "stratified")


#: ``split.method`` -> its function (the names are core.config.SPLIT_METHODS)
METHODS: dict[str, Callable[..., pd.DataFrame]] = {
    "stratified": stratified, "group": group, "predefined": predefined,
    "fault_filtered": fault_filtered,
}
