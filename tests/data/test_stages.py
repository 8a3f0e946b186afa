"""Contracts of the validate, split and features stages on small synthetic audio."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genreflow.core.config import (
    AudioConfig,
    Config,
    DataConfig,
    FeaturesConfig,
    SplitConfig,
    ValidateConfig,
)
from genreflow.models.featurestore import load_features, write_features
from genreflow.stages.features import compute_features
from genreflow.stages.split import SplitError, make_split, split_sizes, write_split
from genreflow.stages.validate import validate_dataset, write_report
from tests_helpers import make_dataset

quiet = lambda m: None  # noqa: E731


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "data", {"blues": 7, "metal": 6, "jazz": 5})


def test_validate_reports_and_skips_corrupt_silent_short(dataset: Path, tmp_path: Path):
    (dataset / "blues" / "blues.00090.wav").write_bytes(b"RIFF not really a wav file")
    from conftest import write_tone

    write_tone(dataset / "metal" / "metal.00091.wav", seconds=3.0, amp=0.0, noise=0.0)       # silent
    write_tone(dataset / "jazz" / "jazz.00092.ogg", seconds=0.5)                   # too short
    messages: list[str] = []
    report = validate_dataset(DataConfig(dir=str(dataset)), ValidateConfig(), workers=1,
                              log=messages.append, audio=AudioConfig(min_seconds=1.0))
    status = {r["clip_id"]: r["status"] for r in report["clips"]}
    assert status["blues.00090"] == "not_audio"
    assert status["metal.00091"] == "silent"
    assert status["jazz.00092"] == "too_short"
    assert report["n_ok"] == 18 and report["n_files"] == 21
    assert {e["clip_id"] for e in report["excluded"]} == {"blues.00090", "metal.00091",
                                                          "jazz.00092"}
    assert any("blues.00090" in m and "not_audio" in m for m in messages)
    assert report["genres"]["blues"]["ok"] == 7
    write_report(report, tmp_path / "rep")
    assert json.loads((tmp_path / "rep" / "validate.json").read_text())["n_ok"] == 18
    assert (tmp_path / "rep" / "validate_genres.png").stat().st_size > 1000


def test_validate_names_missing_gtzan_clips(dataset: Path):
    (dataset / "SOURCE.json").write_text(json.dumps({"source": "gtzan", "origin": "x"}))
    report = validate_dataset(DataConfig(dir=str(dataset), genres=["blues"]), ValidateConfig(),
                              workers=1, log=quiet, audio=AudioConfig(min_seconds=1.0))
    assert len(report["missing"]) == 100 - 7
    assert "blues.00099" in report["missing"] and "metal.00004" not in report["missing"]


def _report(dataset: Path) -> dict:
    return validate_dataset(DataConfig(dir=str(dataset)), ValidateConfig(), workers=1,
                            log=quiet, audio=AudioConfig(min_seconds=1.0))


def test_split_sizes_match_paper():
    assert split_sizes(99, [0.8, 0.09, 0.1]) == (80, 9, 10)
    assert split_sizes(3, [0.8, 0.09, 0.1]) == (1, 1, 1)


def test_split_balanced_by_track_and_seeded(dataset: Path):
    report = _report(dataset)
    data = DataConfig(dir=str(dataset), genres=["blues", "jazz", "metal"])
    cfg = SplitConfig(ratios=[0.6, 0.2, 0.2], seed=3)
    a = make_split(report, cfg, data, log=quiet)
    b = make_split(report, cfg, data, log=quiet)
    pd.testing.assert_frame_equal(a, b)
    assert a.groupby("genre").size().nunique() == 1  # balanced to the smallest (jazz: 5)
    assert len(a) == 15
    assert a["clip_id"].is_unique  # no track in two splits
    assert set(a["split"]) == {"train", "val", "test"}
    c = make_split(report, replace(cfg, seed=4), data, log=quiet)
    assert not a.equals(c)


def test_split_genre_subset_and_errors(dataset: Path):
    report = _report(dataset)
    data = DataConfig(dir=str(dataset))
    m = make_split(report, SplitConfig(genres=["blues", "metal"], ratios=[0.6, 0.2, 0.2]), data,
                   log=quiet)
    assert set(m["genre"]) == {"blues", "metal"}
    with pytest.raises(SplitError, match="pop"):
        make_split(report, SplitConfig(genres=["blues", "pop"]), data, log=quiet)


def test_fault_filtered_split_applied_exactly(tmp_path: Path):
    from genreflow.stages.split import fault_filtered_lists

    lists = fault_filtered_lists()
    def first(split: str, genre: str, n: int) -> list[str]:
        return [c for c in lists[split] if c.startswith(genre)][:n]

    picks = {s: first(s, "classical", 2) + first(s, "metal", 1) for s in ("train", "val", "test")}
    ids = [cid for v in picks.values() for cid in v]
    from conftest import write_tone

    assert "metal.00004" not in {c for v in lists.values() for c in v}
    for cid in ids + ["metal.00004"]:  # metal.00004 is a fault left out of the filtered lists
        g = cid.split(".")[0]
        write_tone(tmp_path / "d" / g / f"{cid}.wav", seconds=1.5)
    report = validate_dataset(DataConfig(dir=str(tmp_path / "d")), ValidateConfig(),
                              workers=1, log=quiet, audio=AudioConfig(min_seconds=1))
    genres = sorted({c.split(".")[0] for c in ids})
    m = make_split(report, SplitConfig(method="fault_filtered"),
                   DataConfig(dir=str(tmp_path / "d"), genres=genres), log=quiet)
    got = {s: sorted(m[m["split"] == s]["clip_id"]) for s in ("train", "val", "test")}
    assert got == {s: sorted(v) for s, v in picks.items()}
    assert "metal.00004" not in set(m["clip_id"])

    # a genre whose listed training clips are all missing cannot be learnt: refused, named
    for cid in picks["train"]:
        if cid.startswith("metal"):
            (tmp_path / "d" / "metal" / f"{cid}.wav").unlink()
    report = validate_dataset(DataConfig(dir=str(tmp_path / "d")), ValidateConfig(),
                              workers=1, log=quiet, audio=AudioConfig(min_seconds=1))
    with pytest.raises(SplitError, match=r"\['metal'\] would have no training clips \(the "
                                         "fault-filtered lists name clips"):
        make_split(report, SplitConfig(method="fault_filtered"),
                   DataConfig(dir=str(tmp_path / "d"), genres=genres), log=quiet)


def test_features_shapes_and_train_only_normaliser(dataset: Path, tmp_path: Path):
    (dataset / "metal" / "metal.00050.wav").write_bytes(b"garbage")
    report = _report(dataset)
    data = DataConfig(dir=str(dataset))
    manifest = make_split(report, SplitConfig(ratios=[0.6, 0.2, 0.2]), data, log=quiet)
    write_split(manifest, report, SplitConfig(), tmp_path / "split.csv", tmp_path / "rep")
    # a clip that breaks between validation and features is reported and skipped
    broken = manifest[manifest["split"] == "train"].iloc[0]
    Path(broken["path"]).write_bytes(b"broken later")
    cfg = FeaturesConfig(clip_seconds=2.0, n_mels=16, n_fft=512, workers=2)
    feats, classes, failed = compute_features(manifest, cfg, log=quiet)
    assert [f["clip_id"] for f in failed] == [broken["clip_id"]]
    assert classes == sorted(set(manifest["genre"]))
    assert feats["train"].x.shape[1:] == (16, cfg.clip_frames)
    meta = write_features(feats, classes, failed, cfg, "synthetic", tmp_path / "f")
    assert meta["data_source"] == "synthetic"
    fs = load_features(tmp_path / "f")
    train = fs.splits["train"].x
    assert np.allclose(train.mean(axis=(0, 2)), 0, atol=1e-3)   # fitted on train ...
    assert np.allclose(train.std(axis=(0, 2)), 1, atol=1e-2)
    stats = json.loads((tmp_path / "f" / "stats.json").read_text())
    raw_train = feats["train"].x.astype(np.float32)
    assert np.allclose(stats["mean"], raw_train.mean(axis=(0, 2)), atol=1e-3)  # ... only
    assert "segment_frames" not in meta and "segment_seconds" not in meta["features"]
    from genreflow.kinds import get_kind, settings

    segcnn = get_kind("segcnn")
    mcfg = settings(Config().train, "segcnn", {"segment_seconds": 0.5})
    x = segcnn.windows(fs.splits["val"].x[0], segcnn.front_end_of(fs, mcfg))
    assert x.shape[1:] == (16, 22) and len(x) >= 1  # 0.5 s of 512-sample hops at 22050 Hz


def test_mp3_copies_are_made_for_training_clips_only_aligned_and_repeatable(dataset: Path,
                                                                          tmp_path: Path):
    from genreflow.audio.codec import MP3_LEVELS, mp3_level

    manifest = make_split(_report(dataset), SplitConfig(ratios=[0.6, 0.2, 0.2]),
                          DataConfig(dir=str(dataset)), log=quiet)
    # one worker: in this process (worker start-up would cost more than these few clips)
    cfg = FeaturesConfig(clip_seconds=2.0, n_mels=16, n_fft=512, workers=1, mp3_copies=True)
    feats, classes, failed = compute_features(manifest, cfg, log=quiet)
    train = feats["train"]
    assert train.mp3.shape == train.x.shape and not failed
    assert feats["val"].mp3 is None and feats["test"].mp3 is None  # never on held-out clips
    diff = np.abs(train.mp3.astype(np.float32) - train.x.astype(np.float32))
    assert diff.mean() > 0.05  # a lossy copy, not the clip again ...
    assert np.median(diff) < 6.0  # ... of the same clip (dB), frame for frame
    again, _, _ = compute_features(manifest, cfg, log=quiet)
    assert np.array_equal(again["train"].mp3, train.mp3)  # one encoder level per clip
    assert len({mp3_level(c) for c in train.ids}) == len(train.ids)
    assert all(MP3_LEVELS[0] <= mp3_level(c) <= MP3_LEVELS[1] for c in train.ids)
    write_features(feats, classes, failed, cfg, "synthetic", tmp_path / "f")
    fs = load_features(tmp_path / "f")
    stats = json.loads((tmp_path / "f" / "stats.json").read_text())
    assert np.allclose(stats["mean"], train.x.astype(np.float32).mean(axis=(0, 2)), atol=1e-3)
    assert np.allclose(fs.splits["train"].mp3, fs.splits["train"].x, atol=12)  # same normaliser
    off, _, _ = compute_features(manifest, replace(cfg, mp3_copies=False), log=quiet)
    assert off["train"].mp3 is None and np.array_equal(off["train"].x, train.x)


def test_config_errors_name_the_field(tmp_path: Path):
    from genreflow.core.config import ConfigError, config_from_dict, load_config

    with pytest.raises(ConfigError, match=r"split\.method"):
        config_from_dict({"split": {"method": "random"}})
    with pytest.raises(ConfigError, match=r"features\.n_mels: expected an integer"):
        config_from_dict({"features": {"n_mels": "many"}})
    from genreflow.kinds import check_models, settings

    # a kind's section is parsed by the kind (when a stage needs it), naming the field
    with pytest.raises(ConfigError, match=r"train\.cnn\.learning_rate"):
        settings(config_from_dict({"train": {"cnn": {"learning_rate": -1.0}}}).train, "cnn")
    with pytest.raises(ConfigError, match=r"train\.segcnn: unknown field.*crops_per_clp"):
        check_models(config_from_dict({"train": {"segcnn": {"crops_per_clp": 2}}}).train)
    with pytest.raises(ConfigError, match=r"train\.models: unknown model\(s\) \['vgg'\]"):
        check_models(config_from_dict({"train": {"models": ["vgg"]}}).train)
    with pytest.raises(ConfigError, match="unknown field"):
        config_from_dict({"tune": {"n_trails": 3}})
    with pytest.raises(ConfigError, match=r"train\.batch_size: expected a whole number >= 1"):
        config_from_dict({"train": {"batch_size": -1}})
    with pytest.raises(ConfigError, match=r"train\.max_epochs: expected a whole number >= 1"):
        config_from_dict({"train": {"max_epochs": 0}})
    with pytest.raises(ConfigError, match=r"register\.max_latency_ms: expected null or a posi"):
        config_from_dict({"register": {"max_latency_ms": 0}})
    real = load_config(Path(__file__).parents[2] / "params.yaml")
    assert isinstance(real, Config)
    check_models(real.train)
