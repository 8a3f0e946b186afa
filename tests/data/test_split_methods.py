"""split.method stratified / group / predefined / fault_filtered and the class-balance report,
on validation reports built as dicts (no audio, no TensorFlow)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genreflow.core.config import ConfigError, DataConfig, SplitConfig, config_from_dict
from genreflow.models.splits import SPLITS, split_digest
from genreflow.stages.split import SplitError, make_split, write_split
from tests_helpers import Logs

quiet = lambda m: None  # noqa: E731


def clip(cid: str, genre: str, group: str | None = None, split: str | None = None,
         status: str = "ok") -> dict:
    """One validate record (contract: ``group`` and ``split`` optional)."""
    rec = {"clip_id": cid, "genre": genre, "path": f"/d/{genre}/{cid}.wav", "format": "wav",
           "seconds": 2.0, "sample_rate": 22050, "rms": 0.1, "status": status, "reason": ""}
    if group is not None or split is not None:
        rec.update(group=group, split=split)
    return rec


def report(clips: list[dict], source: str = "synthetic") -> dict:
    return {"data_source": source, "clips": clips}


def gtzan_like(counts: dict[str, int]) -> dict:
    """GTZAN-style ids, no group or split keys (a report from before issue #28), one refused."""
    clips = [clip(f"{g}.{i:05d}", g) for g, n in counts.items() for i in range(n)]
    return report(clips + [clip("blues.00099", "blues", status="silent")])


def labels_of(counts: dict) -> DataConfig:
    return DataConfig(genres=sorted(counts))


# ------------------------------------------------------------------------------ stratified
#: computed with the code before split.method group existed (commit 6ddc190): the stratified
#: split of the same clips and seed must not change
BEFORE = [
    ({"blues": 7, "jazz": 5, "metal": 6}, dict(ratios=[0.6, 0.2, 0.2], seed=3, balance=True),
     "0fdedf42c95855be5544e13c1b72732c"),
    ({"blues": 7, "jazz": 5, "metal": 6}, dict(ratios=[0.6, 0.2, 0.2], seed=3, balance=False),
     "f41bf857ca263d06eded0d4ce61e5709"),
    ({"blues": 30, "jazz": 12, "metal": 21, "rock": 4}, dict(seed=42, balance=False),
     "2d84220266e67b6496fe2c76c9580ad2"),
    ({"blues": 30, "jazz": 12, "metal": 21, "rock": 4}, dict(seed=0, balance=True),
     "c6fbda58fa2eec57e5736dede6914b87"),
]


@pytest.mark.parametrize(("counts", "settings", "digest"), BEFORE)
def test_stratified_split_unchanged(counts: dict, settings: dict, digest: str):
    m = make_split(gtzan_like(counts), SplitConfig(**settings), labels_of(counts), log=quiet)
    assert split_digest(m) == digest
    assert list(m.columns) == ["clip_id", "genre", "path", "split", "group"]
    assert (m["group"] == "").all()


def test_stratified_split_unchanged_clip_by_clip():
    counts = {"blues": 7, "jazz": 5, "metal": 6}
    m = make_split(gtzan_like(counts), SplitConfig(ratios=[0.6, 0.2, 0.2], seed=3),
                   labels_of(counts), log=quiet)
    got = {s: sorted(m[m["split"] == s]["clip_id"]) for s in SPLITS}
    assert got == {
        "train": ["blues.00002", "blues.00005", "blues.00006", "jazz.00000", "jazz.00001",
                  "jazz.00004", "metal.00000", "metal.00004", "metal.00005"],
        "val": ["blues.00001", "jazz.00002", "metal.00003"],
        "test": ["blues.00004", "jazz.00003", "metal.00001"],
    }


# ------------------------------------------------------------------------------ group
def random_collection(rng: np.random.Generator) -> tuple[dict, int]:
    """Labels of 12-40 clips in groups of 1-6 (some clips alone), a few groups spanning two
    labels; returns the report and the largest group's size."""
    labels = [f"label{i}" for i in range(int(rng.integers(2, 6)))]
    clips, largest, n_group = [], 1, 0
    for label in labels:
        left = int(rng.integers(12, 41))
        while left:
            size = min(left, int(rng.integers(1, 7)))
            name = None if size == 1 and rng.random() < 0.5 else f"artist {n_group}"
            n_group += 1
            for _ in range(size):
                clips.append(clip(f"{label}/{name or 'solo'}/{len(clips)}", label, group=name))
            largest, left = max(largest, size), left - size
    # a few groups spanning labels: some clips of one label join a group of another
    for rec in rng.choice(clips, size=min(6, len(clips) // 10), replace=False):
        other = clips[int(rng.integers(len(clips)))]
        if other.get("group") is not None:
            rec["group"] = other["group"]
    sizes = pd.Series([c["group"] for c in clips if c.get("group")]).value_counts()
    return report(clips, source="folder"), max(largest, int(sizes.max()))


@pytest.mark.parametrize("seed", range(12))
def test_group_split_never_puts_a_group_in_two_splits(seed: int):
    rng = np.random.default_rng(1000 + seed)
    rep, largest = random_collection(rng)
    cfg = SplitConfig(method="group", balance=False, seed=seed)
    data = DataConfig(genres="auto")
    m = make_split(rep, cfg, data, log=quiet)
    grouped = m[m["group"] != ""]
    assert (grouped.groupby("group")["split"].nunique() == 1).all()
    assert sorted(m["clip_id"]) == sorted(c["clip_id"] for c in rep["clips"])  # nothing lost
    assert m["clip_id"].is_unique
    # close to the ratios, per label, as whole groups allow
    share = np.array(cfg.ratios) / sum(cfg.ratios)
    for label, rows in m.groupby("genre"):
        got = rows["split"].value_counts().reindex(list(SPLITS), fill_value=0).to_numpy()
        assert np.all(np.abs(got - share * len(rows)) <= largest + 1), (label, got)
        n_groups = rows["group"].where(rows["group"] != "", rows["clip_id"]).nunique()
        assert (got > 0).all() if n_groups >= 3 else got[0] > 0 and got[1] + got[2] > 0
    pd.testing.assert_frame_equal(m, make_split(rep, cfg, data, log=quiet))  # deterministic


def test_group_split_depends_on_the_seed_and_keeps_every_label_apart():
    clips = [clip(f"{g}-{i}", g, group=f"{g} artist {i // 2}") for g in ("a", "b")
             for i in range(40)]
    splits = [make_split(report(clips), SplitConfig(method="group", seed=s), DataConfig(
        genres=["a", "b"]), log=quiet) for s in range(4)]
    assert len({split_digest(m) for m in splits}) > 1
    for m in splits:
        # 20 groups of 2 per label: 80/9/10 whole groups is 32/4/4 clips, +-1 group
        counts = m.groupby(["genre", "split"]).size().unstack()[list(SPLITS)]
        assert (abs(counts - [32, 3.6, 4]) <= 2).all().all(), counts


def test_group_split_puts_a_group_of_every_label_in_every_split():
    # 6 artists of 5 clips per label: 25/0/5 clips is the closest to 80/9/10, but leaves val
    # empty; like split_sizes for clips, a label of 3 groups or more gets one in every split
    clips = [clip(f"{g}-{i}", g, group=f"{g} artist {i % 6}") for g in ("a", "b")
             for i in range(30)]
    m = make_split(report(clips), SplitConfig(method="group"), DataConfig(genres="auto"),
                   log=quiet)
    counts = m.groupby(["genre", "split"]).size().unstack()[list(SPLITS)]
    assert (counts.to_numpy() == [[20, 5, 5], [20, 5, 5]]).all()


def test_group_split_balances_and_says_how_many_groups(tmp_path: Path):
    clips = [clip(f"a{i}", "a", group=f"x{i % 5}") for i in range(30)]
    clips += [clip(f"b{i}", "b", group=f"y{i % 4}" if i % 2 else None) for i in range(12)]
    log = Logs()
    cfg = SplitConfig(method="group", seed=1, ratios=[0.5, 0.25, 0.25])
    m = make_split(report(clips), cfg, DataConfig(genres="auto"), log=log)
    assert (m.groupby("genre").size() == 12).all()  # balanced to b's 12 clips
    assert "balancing 2 genres to 12" in log.text and "no group is in two splits" in log.text
    summary = write_split(m, report(clips), cfg, tmp_path / "split.csv", tmp_path / "rep")
    back = pd.read_csv(tmp_path / "split.csv", keep_default_na=False)
    assert list(back.columns) == ["clip_id", "genre", "path", "split", "group"]
    assert set(back.loc[back["genre"] == "a", "group"]) <= {f"x{i}" for i in range(5)}
    assert (back.loc[back["clip_id"].isin(["b0", "b2"]), "group"] == "").all()
    assert summary["groups"] == m.loc[m["group"] != "", "group"].nunique()
    # the split's identity is its clips and splits: the group column does not enter it
    assert split_digest(pd.read_csv(tmp_path / "split.csv")) == split_digest(
        m.drop(columns="group"))


def test_group_split_refuses_a_label_that_cannot_be_held_out():
    clips = [clip(f"a{i}", "a", group=f"x{i}") for i in range(10)]
    clips += [clip(f"b{i}", "b", group="one band") for i in range(8)]
    with pytest.raises(SplitError, match=r"label 'b' cannot reach train and val/test: all its "
                                         r"8 clips are in one group \('one band'\)"):
        make_split(report(clips), SplitConfig(method="group"), DataConfig(genres="auto"),
                   log=quiet)
    # two groups are enough: one trains, the other is held out, even against 80/9/10
    for rec in clips[-4:]:
        rec["group"] = "another band"
    m = make_split(report(clips), SplitConfig(method="group", balance=False),
                   DataConfig(genres="auto"), log=quiet)
    b = m[m["genre"] == "b"].groupby("group")["split"].first()
    assert sorted(b) in (["train", "val"], ["test", "train"])
    with pytest.raises(SplitError, match=r"label 'c' cannot reach train and val/test: it has a "
                                         r"single clip \('c0'\)"):
        make_split(report(clips + [clip("c0", "c")]), SplitConfig(method="group", balance=False),
                   DataConfig(genres="auto"), log=quiet)


# ------------------------------------------------------------------------------ predefined
def test_predefined_split_is_honoured_without_balance():
    given = {"a0": "train", "a1": "train", "a2": "val", "a3": "test", "a4": "train",
             "b0": "train", "b1": "val", "b2": "test"}
    clips = [clip(c, c[0], split=s) for c, s in given.items()]
    log = Logs()
    m = make_split(report(clips), SplitConfig(method="predefined", seed=7),
                   DataConfig(genres="auto"), log=log)
    assert dict(zip(m["clip_id"], m["split"], strict=True)) == given
    assert "split.balance and split.ratios are not applied" in log.text


@pytest.mark.parametrize(("value", "why"), [(None, "has no split"), ("", "has no split"),
                                            ("validation", "has split 'validation'")])
def test_predefined_split_refuses_a_clip_without_a_valid_split(value, why: str):
    clips = [clip(f"a{i}", "a", split=s) for i, s in enumerate(SPLITS)]
    clips += [clip(f"b{i}", "b", split=s) for i, s in enumerate(SPLITS)]
    clips[4]["split"] = value
    with pytest.raises(SplitError, match=rf"predefined: clip 'b1' {why} \(1 of 6 kept clips"):
        make_split(report(clips), SplitConfig(method="predefined"), DataConfig(genres="auto"),
                   log=quiet)
    # a report from before predefined splits has none: refused, not guessed
    with pytest.raises(SplitError, match="clip 'a.00000' has no split"):
        make_split(gtzan_like({"a": 3, "b": 3}), SplitConfig(method="predefined"),
                   DataConfig(genres="auto"), log=quiet)


# ------------------------------------------------------------------------------ fault_filtered
@pytest.mark.parametrize("source", ["folder", "manifest", "synthetic"])
def test_fault_filtered_refused_on_other_sources(source: str):
    rep = gtzan_like({"blues": 5, "rock": 5})
    rep["data_source"] = source
    with pytest.raises(SplitError, match=rf"fault_filtered: .*GTZAN's clips, and this data's "
                                         rf"source is '{source}'"):
        make_split(rep, SplitConfig(method="fault_filtered"), DataConfig(genres="auto"),
                   log=quiet)


def test_fault_filtered_refused_on_non_gtzan_ids():
    clips = [clip(f"blues.{i:05d}", "blues") for i in range(30, 40)]
    clips += [clip(f"rock/Some Artist/0{i} Song", "rock") for i in range(5)]
    with pytest.raises(SplitError, match=r"clip 'rock/Some Artist/00 Song' \(rock\) is not a "
                                         r"GTZAN clip .*5 such clips"):
        make_split(report(clips, source="unknown"), SplitConfig(method="fault_filtered"),
                   DataConfig(genres="auto"), log=quiet)
    # a GTZAN-looking id under another label is not GTZAN's either
    clips = clips[:10] + [clip("blues.00050", "rock")]
    with pytest.raises(SplitError, match=r"clip 'blues.00050' \(rock\) is not a GTZAN clip"):
        make_split(report(clips, source="gtzan"), SplitConfig(method="fault_filtered"),
                   DataConfig(genres="auto"), log=quiet)


# ------------------------------------------------------------------------------ balance report
def test_imbalance_reported_in_log_and_split_json(tmp_path: Path):
    counts = {"blues": 30, "rock": 10}
    rep = gtzan_like(counts)
    log = Logs()
    cfg = SplitConfig(balance=False, seed=0)
    m = make_split(rep, cfg, DataConfig(genres="auto"), log=log)
    summary = write_split(m, rep, cfg, tmp_path / "split.csv", tmp_path / "rep")
    on_disk = json.loads((tmp_path / "rep" / "split.json").read_text())
    assert on_disk == summary
    per = on_disk["per_label"]
    assert sum(per["blues"].values()) == 30 and sum(per["rock"].values()) == 10
    assert on_disk["imbalance"] == round(per["blues"]["train"] / per["rock"]["train"], 3) > 2.5
    assert (on_disk["largest"], on_disk["smallest"]) == ("blues", "rock")
    assert f"class imbalance: {on_disk['imbalance']}x" in log.text
    assert "fewer than 5 validation clips (e.g. ['blues', 'rock'])" in log.text
    # balanced: no imbalance line
    log = Logs()
    make_split(rep, replace(cfg, balance=True), DataConfig(genres="auto"), log=log)
    assert "class imbalance" not in log.text


# ------------------------------------------------------------------------------ labels, config
def test_auto_labels_and_split_genres_all():
    rep = gtzan_like({"rock": 4, "blues": 4, "jazz": 4})
    m = make_split(rep, SplitConfig(), DataConfig(genres="auto"), log=quiet)
    assert sorted(m["genre"].unique()) == ["blues", "jazz", "rock"]
    m = make_split(rep, SplitConfig(), DataConfig(genres=["rock", "jazz", "pop"]), log=quiet)
    assert sorted(m["genre"].unique()) == ["jazz", "rock"]


def test_split_config_names_the_field():
    for method in ("stratified", "group", "predefined", "fault_filtered"):
        assert config_from_dict({"split": {"method": method}}).split.method == method
    with pytest.raises(ConfigError, match=r"split\.method: expected one of .*'group'"):
        config_from_dict({"split": {"method": "artist"}})
    with pytest.raises(ConfigError, match=r"split\.genres: expected 'all' or a list"):
        config_from_dict({"split": {"genres": "blues"}})
