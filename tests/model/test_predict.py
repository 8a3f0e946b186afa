"""``genreflow predict``: local files through a bundle or a registered model."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import TINY_GENRES, write_tone
from genreflow.core.errors import GenreflowError
from genreflow.serving.predict import predict_files
from genreflow.stages.train import train_model


def _try_mp3(path: Path, seconds: float = 3.0, sr: int = 22050) -> Path | None:
    """An MP3 (libsndfile >= 1.1), or None when this libsndfile cannot write one."""
    t = np.arange(int(seconds * sr)) / sr
    try:
        sf.write(path, (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), sr, format="MP3")
    except Exception:
        return None
    return path


def test_predict_files_bundle_and_registry(tiny_project, tmp_path):
    import mlflow
    from mlflow import MlflowClient

    from genreflow.serving.predict import format_table
    from genreflow.serving.predictor import GenrePredictor
    from genreflow.serving.pyfunc import log_audio_model
    from genreflow.tracking.store import setup_mlflow

    cfg, feat_dir = tiny_project
    bundle = tmp_path / "bundle"
    train_model(cfg, "segcnn", feat_dir, bundle_dir=bundle, report_dir=tmp_path / "rep",
                log=lambda m: None)

    files = [write_tone(tmp_path / "in" / "song.wav", seconds=3.0),
             write_tone(tmp_path / "in" / "long.wav", seconds=25.0, sr=8000, freq=150.0)]
    mp3 = _try_mp3(tmp_path / "in" / "song.mp3")
    if mp3 is not None:
        files.append(mp3)
    corrupt = tmp_path / "in" / "corrupt.wav"
    corrupt.write_bytes(b"RIFF" + os.urandom(3000))
    all_files = [*files, corrupt, tmp_path / "in" / "missing.ogg"]

    res = predict_files(all_files, model_uri=str(bundle), top=2, audio=cfg.audio)
    assert [r["file"] for r in res] == [str(f) for f in all_files]
    ref = GenrePredictor.from_bundle(bundle)
    for f, r in zip(files, res, strict=False):
        assert "error" not in r, r
        assert set(r["probabilities"]) == set(TINY_GENRES)
        assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert len(r["top"]) == 2 and r["top"][0] == [r["genre"], r["probability"]]
        assert r["top"][0][1] >= r["top"][1][1]
        assert np.allclose([r["probabilities"][g] for g in ref.pre.classes],
                           ref.predict_file(f), atol=1e-5)
    assert res[-2]["reason"] == "not_audio" and str(corrupt) in res[-2]["error"]
    assert res[-1]["reason"] == "missing" and "no such file" in res[-1]["error"]

    table = format_table(res)
    assert "song.wav" in table and "corrupt.wav" in table and "error" in table
    assert any(g in table for g in TINY_GENRES) and "%" in table

    # the same through the registry (models:/<name>@champion) and the logged model's URI
    setup_mlflow(cfg.tracking, "predict-test")
    with mlflow.start_run():
        info = log_audio_model(bundle)
    mv = mlflow.register_model(info.model_uri, "predict-test-model")
    MlflowClient().set_registered_model_alias("predict-test-model", "champion", mv.version)
    for uri in ("models:/predict-test-model@champion", info.model_uri):
        via = predict_files(files[:1], model_uri=uri)
        assert via[0]["probabilities"] == pytest.approx(res[0]["probabilities"], abs=1e-5)


def test_load_predictor_missing_model(tmp_path, monkeypatch):
    from genreflow.serving.loader import load_predictor

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'empty.db'}")
    for uri in ("models:/no-such-model@champion", "models:/no-such-model/3"):
        with pytest.raises(GenreflowError) as exc:
            load_predictor(uri)
        msg = str(exc.value)
        assert uri in msg and "genreflow register" in msg and "dvc repro" in msg
    with pytest.raises(GenreflowError, match="no such model folder"):
        load_predictor(str(tmp_path / "nowhere"))


def test_format_table_shapes():
    from genreflow.serving.predict import format_table

    res = [{"file": "/x/a.mp3", "genre": "metal", "probability": 0.873,
            "top": [["metal", 0.873], ["rock", 0.091], ["blues", 0.02]],
            "probabilities": {"metal": 0.873, "rock": 0.091, "blues": 0.02}},
           {"file": "/x/b.wav", "error": "b.wav: not a readable audio file"}]
    table = format_table(res)
    lines = table.splitlines()
    assert lines[0].split() == ["file", "#1", "#2", "#3"]
    assert lines[2].split() == ["a.mp3", "metal", "87.3", "%", "rock", "9.1", "%", "blues",
                                "2.0", "%"]
    assert lines[2].index("rock") == lines[0].index("#2")
    assert lines[-1].startswith("b.wav") and "error: b.wav: not a readable" in lines[-1]
    assert format_table([]) == "(no files)"
