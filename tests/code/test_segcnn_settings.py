"""segcnn owns its windows: ``train.segcnn.segment_seconds``/``segment_overlap``, their checks
against the rest of ``params.yaml``, the moved keys' message, and bundles from before the move."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_cli import _user_error, runner

from genreflow.cli import app
from genreflow.core.config import ConfigError, FeaturesConfig, config_from_dict, load_config
from genreflow.core.errors import GenreflowError
from genreflow.kinds import check_models, get_kind, settings
from genreflow.kinds.segcnn.config import segment_frames
from genreflow.models.featurestore import SplitFeatures, load_features, write_features

#: a segcnn bundle's preprocess.json front-end as genreflow wrote it before the windows moved
#: (front-end version 1: the windows in ``features``, here 1 s overlapping by a quarter)
V1_SEGCNN = {"sample_rate": 22050, "version": 1,
             "features": {"sample_rate": 22050, "n_fft": 1024, "hop_length": 512, "n_mels": 4,
                          "clip_seconds": 4.0, "segment_seconds": 1.0, "segment_overlap": 0.25,
                          "mp3_copies": False, "workers": 1},
             "stats": {"mean": [0.0] * 4, "std": [1.0] * 4}, "floor_db": -70.0,
             "loudness_dbfs": -20.0}


def test_defaults_and_frames_are_unchanged():
    mcfg = settings(config_from_dict({}).train, "segcnn")
    assert (mcfg.segment_seconds, mcfg.segment_overlap) == (3.0, 0.5)
    # what features.segment_frames / segment_hop_frames gave: 3 s -> 129 frames, hop 64
    assert segment_frames(FeaturesConfig(), 3.0, 0.5) == (129, 64)
    assert segment_frames(FeaturesConfig(), 1.0, 0.25) == (43, 32)
    real = load_config(Path(__file__).parents[2] / "params.yaml")  # the repository's moved too
    assert settings(real.train, "segcnn", project=real) == mcfg


@pytest.mark.parametrize(("section", "message"), [
    ({"segment_overlap": 1.0}, r"^train\.segcnn\.segment_overlap: expected 0 <= x < 1, got 1\.0$"),
    ({"segment_seconds": 0}, r"^train\.segcnn\.segment_seconds: expected a positive number"),
    ({"segment_seconds": "3 s"}, r"^train\.segcnn\.segment_seconds: expected a number"),
])
def test_bad_windows_name_the_segcnn_field(section, message):
    train = config_from_dict({"train": {"segcnn": section}}).train
    with pytest.raises(ConfigError, match=message):
        settings(train, "segcnn")
    with pytest.raises(ConfigError, match=message):
        check_models(train)


def test_an_override_is_checked_too():
    with pytest.raises(ConfigError, match=r"^train\.segcnn\.segment_overlap: expected 0 <= x"):
        settings(config_from_dict({}).train, "segcnn", {"segment_overlap": -0.1})


@pytest.mark.parametrize("key", ["segment_seconds", "segment_overlap"])
def test_old_features_keys_say_where_they_moved(tmp_path: Path, key: str, monkeypatch):
    expected = f"features.{key}: moved to train.segcnn.{key}, move the line there"
    with pytest.raises(ConfigError) as err:
        config_from_dict({"features": {"n_mels": 64, key: 0.5}})
    assert str(err.value) == expected
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(f"features:\n  clip_seconds: 30.0\n  {key}: 0.5\n")
    with pytest.raises(ConfigError, match=f"^{expected}$"):
        load_config(tmp_path / "params.yaml")
    assert _user_error(runner.invoke(app, ["validate"])) == f"error: {expected}"


def test_windows_must_fit_the_accepted_clips_when_segcnn_is_used():
    short = config_from_dict({"audio": {"min_seconds": 1.0}})  # parses: core knows no windows
    rule = (r"^audio\.min_seconds \(1\.0\) must be at least train\.segcnn\.segment_seconds "
            r"\(3\.0\): every accepted clip needs one whole window$")
    with pytest.raises(ConfigError, match=rule):
        check_models(short.train, short)  # segcnn is in the default train.models
    with pytest.raises(ConfigError, match=rule):
        settings(short.train, "segcnn", project=short)  # used although not in train.models
    only_cnn = config_from_dict({"audio": {"min_seconds": 1.0}, "train": {"models": ["cnn"]}})
    check_models(only_cnn.train, only_cnn)  # no segcnn: no window to fit
    fits = config_from_dict({"audio": {"min_seconds": 1.0},
                             "train": {"segcnn": {"segment_seconds": 1.0}}})
    check_models(fits.train, fits)


def test_windows_must_fit_a_clip_of_the_features():
    cfg = config_from_dict({"features": {"clip_seconds": 2.0},
                            "train": {"segcnn": {"segment_seconds": 2.5}}})
    with pytest.raises(ConfigError, match=r"^train\.segcnn\.segment_seconds \(2\.5\) must not "
                                          r"exceed features\.clip_seconds \(2\.0\)$"):
        check_models(cfg.train, cfg)


def test_tune_checks_the_windows_before_any_trial(tmp_path: Path):
    from genreflow.stages.tune import tune

    cfg = config_from_dict({"audio": {"min_seconds": 1.0},
                            "tune": {"model": "segcnn",
                                     "storage": f"sqlite:///{tmp_path / 'optuna.db'}"},
                            "train": {"models": ["cnn"]},
                            "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}})
    with pytest.raises(ConfigError, match=r"train\.segcnn\.segment_seconds \(3\.0\)"):
        tune(cfg, tmp_path / "features", out_dir=tmp_path / "out")
    assert not list(tmp_path.iterdir())  # no study, no run


def test_a_bundle_from_before_the_move_serves_its_own_windows():
    kind = get_kind("segcnn")
    fe = kind.front_end(json.loads(json.dumps(V1_SEGCNN)), "old/preprocess.json")
    assert fe.version == 2 and (fe.segment_seconds, fe.segment_overlap) == (1.0, 0.25)
    assert fe.frames == (43, 32)  # the old features.segment_frames / segment_hop_frames
    y = np.random.default_rng(0).standard_normal(3 * 22050).astype(np.float32) * 0.1
    x = kind.audio_windows(y, fe)
    # 130 frames: starts 0, 32, 64 and 87 (the end); 3 s windows would give 1, a hop of 22, 5
    assert x.shape == (4, 4, 43, 1)
    again = kind.front_end(json.loads(json.dumps(fe.to_json())))
    assert again == fe
    saved = fe.to_json()
    assert saved["version"] == 2 and saved["segment_seconds"] == 1.0
    assert "segment_seconds" not in saved["features"]


def test_other_kinds_read_old_bundles_without_the_moved_keys():
    fe = get_kind("cnn").front_end(V1_SEGCNN, "old/preprocess.json")
    assert fe.version == 1 and fe.features == FeaturesConfig(
        sample_rate=22050, n_fft=1024, hop_length=512, n_mels=4, clip_seconds=4.0, workers=1)


@pytest.mark.parametrize(("field", "value"), [("segment_overlap", "half"),
                                              ("segment_seconds", -1.0)])
def test_a_bad_segcnn_front_end_is_one_line(field, value):
    raw = {**V1_SEGCNN, "version": 2, "segment_seconds": 1.0, "segment_overlap": 0.25,
           field: value}
    with pytest.raises(GenreflowError, match=rf"^b/preprocess.json: front_end\.{field}: .*retrain"):
        get_kind("segcnn").front_end(raw, "b/preprocess.json")


def test_a_feature_set_from_before_the_move_still_loads(tmp_path: Path):
    split = SplitFeatures(x=np.zeros((2, 4, 9), np.float16), y=np.array([0, 1]),
                          ids=np.array(["a.00000", "b.00000"]))
    cfg = FeaturesConfig(n_mels=4, clip_seconds=0.2)
    write_features({"train": split, "val": split, "test": split}, ["a", "b"], [], cfg, "test",
                   tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert "segment_frames" not in meta and "segment_hop_frames" not in meta
    meta["features"].update(segment_seconds=3.0, segment_overlap=0.5)  # as written before
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    assert load_features(tmp_path).cfg == cfg
