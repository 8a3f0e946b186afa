"""Shared fixtures: tiny synthetic audio and a tiny, fully prepared project in ``tmp_path``.

Nothing here touches the network or the project's own tracking store.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from genreflow.core.config import AudioConfig
from genreflow.core.tfenv import set_tf_environment

set_tf_environment()

TINY_GENRES = ["blues", "classical", "metal"]
# the contract of the served tiny model: small limits so that tests reach every one cheaply
SERVED_CONTRACT = AudioConfig(min_seconds=1.0, max_seconds=8.0, max_request_mb=2.0, max_rows=4,
                              max_request_seconds=20.0)


def write_tone(path: Path, seconds: float = 3.0, sr: int = 22050, freq: float = 220.0,
               amp: float = 0.3, seed: int = 0, noise: float = 0.01) -> Path:
    """A short tone plus a little noise, written in the format the suffix names."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = amp * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(len(t))
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".ogg":  # libsndfile: write OGG in blocks
        with sf.SoundFile(path, "w", sr, 1, format="OGG", subtype="VORBIS") as f:
            for i in range(0, len(y), sr):
                f.write(y[i:i + sr].astype(np.float32))
    else:
        sf.write(path, y.astype(np.float32), sr)
    return path


@pytest.fixture(scope="session", autouse=True)
def _embedding_cache_in_tmp(tmp_path_factory):
    """The per-clip embedding cache writes only into a temporary folder."""
    os.environ["GENREFLOW_CACHE"] = str(tmp_path_factory.mktemp("genreflow-cache"))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """3 synthetic genres x 8 clips x 4 s, made once per test session."""
    from genreflow.data import synth

    dest = tmp_path_factory.mktemp("tiny") / "data"
    synth(dest, clips_per_genre=8, seconds=4.0, genres=TINY_GENRES, seed=0, log=lambda m: None)
    return dest


def tiny_config(root: Path, data_dir: Path):
    """A config shrunk for tests: short clips and segments, 2 epochs, tracking in ``root``."""
    from genreflow.core.config import Config
    from tests_helpers import all_settings

    cfg = Config()
    cfg.data = replace(cfg.data, dir=str(data_dir), genres=TINY_GENRES)
    cfg.audio = replace(cfg.audio, min_seconds=1.0, max_seconds=60.0)
    cfg.split = replace(cfg.split, ratios=[0.6, 0.2, 0.2])
    cfg.features = replace(cfg.features, clip_seconds=4.0, n_mels=32, n_fft=1024, workers=1)
    small = dict(filters=[4, 8], dense=8)
    k = all_settings(cfg.train)
    cfg.train = replace(
        cfg.train, max_epochs=2, patience=2, batch_size=8, experiment="test",
        kinds={**k, "cnn": replace(k["cnn"], **small),
               "segcnn": replace(k["segcnn"], **small, segment_seconds=1.0),
               "inception": replace(k["inception"], weights="none", image_size=75, dense=8)})
    cfg.tune = replace(cfg.tune, storage=f"sqlite:///{root / 'optuna.db'}", n_trials=2,
                       max_epochs=2, study="test-study")
    cfg.tracking = replace(cfg.tracking, uri=f"sqlite:///{root / 'mlflow.db'}",
                           artifact_root=str(root / "mlruns"))
    return cfg


@pytest.fixture(scope="session")
def tiny_features(tiny_data: Path, tmp_path_factory) -> Path:
    """The tiny data validated, split and featurised once per test process."""
    root = tmp_path_factory.mktemp("tiny-features")
    prepare_features(tiny_config(root, tiny_data), root)
    return root


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory) -> Path:
    """An empty MLflow store with its tables made, once per test process. A test's own store
    starts as a copy of it: MLflow makes a new SQLite store's tables by running its schema
    migrations, about 2 s of CPU each time (docs/benchmarks.md, Test suite)."""
    import mlflow

    db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def tiny_project(tiny_data: Path, tiny_features: Path, tmp_path: Path, monkeypatch,
                 mlflow_template: Path):
    """Validated, split and featurised tiny data; returns ``(cfg, features_dir)``.

    The working directory is ``tmp_path`` (with its own copy of the features and split) and
    MLFLOW_TRACKING_URI is unset, so every run lands in ``tmp_path/mlflow.db``.
    """
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = tiny_config(tmp_path, tiny_data)
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")
    shutil.copytree(tiny_features / "features", tmp_path / "features")
    shutil.copy(tiny_features / "split.csv", tmp_path / "split.csv")
    return cfg, tmp_path / "features"


def prepare_features(cfg, root: Path) -> Path:
    """Validate, split and featurise ``cfg.data``; the features folder under ``root``."""
    from genreflow.models.featurestore import write_features
    from genreflow.models.splits import split_digest
    from genreflow.stages.features import compute_features
    from genreflow.stages.split import make_split
    from genreflow.stages.validate import validate_dataset

    quiet = lambda m: None  # noqa: E731
    report = validate_dataset(cfg.data, cfg.validate, workers=1, log=quiet, audio=cfg.audio)
    manifest = make_split(report, cfg.split, cfg.data, log=quiet)
    feats, classes, failed = compute_features(manifest, cfg.features, log=quiet)
    feat_dir = root / "features"
    write_features(feats, classes, failed, cfg.features, "synthetic", feat_dir,
                   split_digest=split_digest(manifest))
    manifest.to_csv(root / "split.csv", index=False)
    return feat_dir


@pytest.fixture(scope="session")
def tiny_model(tiny_data, tmp_path_factory, mlflow_template):
    """A tiny segcnn, logged as an AudioGenreModel with :data:`SERVED_CONTRACT`, downloaded to a
    local MLflow model folder (served and loaded without a tracking store)."""
    import mlflow

    from genreflow.serving.pyfunc import log_audio_model
    from genreflow.stages.train import train_model
    from genreflow.tracking.store import setup_mlflow

    root = tmp_path_factory.mktemp("serve")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        cfg = tiny_config(root, tiny_data)
        shutil.copy(mlflow_template, root / "mlflow.db")
        feat_dir = prepare_features(cfg, root)
        bundle = root / "bundle"
        train_model(cfg, "segcnn", feat_dir, bundle_dir=bundle, report_dir=root / "rep",
                    log=lambda m: None)
        setup_mlflow(cfg.tracking, "serve-test")
        with mlflow.start_run():
            info = log_audio_model(bundle, audio=SERVED_CONTRACT)
        local = mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(root / "model"))
    return SimpleNamespace(root=root, bundle=bundle, model=Path(local), info=info)

