"""The servable pyfunc model: in process, and behind the real ``mlflow models serve``."""

from __future__ import annotations

import base64
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import TINY_GENRES, write_tone

MAX_SECONDS = 8.0


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _wav_bytes(seconds: float, sr: int = 22050) -> bytes:
    buf = io.BytesIO()
    t = np.arange(int(seconds * sr)) / sr
    sf.write(buf, (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), sr, format="WAV")
    return buf.getvalue()


def _stereo_flac(path: Path, seconds: float = 3.0, sr: int = 44100) -> Path:
    t = np.arange(int(seconds * sr)) / sr
    y = np.stack([0.3 * np.sin(2 * np.pi * 110 * t), 0.2 * np.sin(2 * np.pi * 880 * t)], axis=1)
    sf.write(path, y.astype(np.float32), sr, format="FLAC")
    return path


def _logged_model(tiny_project, tmp_path: Path):
    """Train a tiny segcnn bundle and log it as an AudioGenreModel; ``(cfg, bundle, info)``."""
    import mlflow

    from genreflow.serve import log_audio_model
    from genreflow.tracking import setup_mlflow
    from genreflow.train import train_model

    cfg, feat_dir = tiny_project
    bundle = tmp_path / "bundle"
    train_model(cfg, "segcnn", feat_dir, bundle_dir=bundle, report_dir=tmp_path / "rep",
                log=lambda m: None)
    setup_mlflow(cfg.tracking, "serve-test")
    with mlflow.start_run():
        info = log_audio_model(bundle, max_seconds=MAX_SECONDS, min_seconds=1.0)
    return cfg, bundle, info


def _audio_files(tmp_path: Path) -> list[Path]:
    return [write_tone(tmp_path / "a.wav", seconds=3.0, freq=220.0),
            _stereo_flac(tmp_path / "b.flac"),
            write_tone(tmp_path / "c.ogg", seconds=2.5, sr=16000, freq=440.0, seed=1)]


def test_encode_file_roundtrip(tmp_path):
    from genreflow.serve import encode_file

    p = write_tone(tmp_path / "x.wav", seconds=0.5)
    assert base64.b64decode(encode_file(p)) == p.read_bytes()


def test_pyfunc_in_process(tiny_project, tmp_path):
    import mlflow
    from mlflow.exceptions import MlflowException

    from genreflow.inference import GenrePredictor

    _, bundle, info = _logged_model(tiny_project, tmp_path)
    model = mlflow.pyfunc.load_model(info.model_uri)
    sig_out = [c.name for c in model.metadata.get_output_schema().inputs]
    expected_cols = ["genre", "probability", *[f"p_{g}" for g in TINY_GENRES]]
    assert sig_out == expected_cols
    assert [c.name for c in model.metadata.get_input_schema().inputs] == ["audio"]

    files = _audio_files(tmp_path)
    from genreflow.serve import encode_file

    out = model.predict(pd.DataFrame({"audio": [encode_file(f) for f in files]}))
    assert list(out.columns) == expected_cols
    probs = out[[f"p_{g}" for g in TINY_GENRES]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert out["genre"].tolist() == [TINY_GENRES[k] for k in probs.argmax(axis=1)]
    assert np.allclose(out["probability"], probs.max(axis=1))
    ref = GenrePredictor.from_bundle(bundle)
    for f, row in zip(files, probs, strict=True):
        assert np.allclose(row, ref.predict_file(f), atol=1e-5), f

    def bad(frame: pd.DataFrame, *fragments: str) -> None:
        with pytest.raises(MlflowException) as exc:
            model.predict(frame)
        msg = exc.value.message
        assert exc.value.get_http_status_code() == 400, msg
        for frag in fragments:
            assert frag in msg, msg

    good = encode_file(files[0])
    bad(pd.DataFrame({"sound": [good]}), "audio")
    bad(pd.DataFrame({"audio": [good, "not base64 at all!"]}), "row 1", "base64")
    bad(pd.DataFrame({"audio": [_b64(os.urandom(5000))]}), "row 0", "not a supported audio")
    bad(pd.DataFrame({"audio": [""]}), "row 0", "empty audio")
    bad(pd.DataFrame({"audio": [_b64(_wav_bytes(0.0))]}), "empty audio")
    bad(pd.DataFrame({"audio": [_b64(_wav_bytes(0.3))]}), "shorter than", "1 s")
    bad(pd.DataFrame({"audio": [_b64(_wav_bytes(MAX_SECONDS + 2))]}), "longer than", "8 s")

    # the python model itself reports a missing column in its own words
    py = model.unwrap_python_model()
    with pytest.raises(MlflowException, match="missing column 'audio'"):
        py.predict(None, pd.DataFrame({"x": [good]}))


# ------------------------------------------------------------------ real scoring server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.integration
def test_mlflow_models_serve(tiny_project, tmp_path):
    import mlflow
    import requests
    from mlflow import MlflowClient

    from genreflow.serve import encode_file

    cfg, _, info = _logged_model(tiny_project, tmp_path)
    name = "serve-test-model"
    mv = mlflow.register_model(info.model_uri, name)
    MlflowClient().set_registered_model_alias(name, "champion", mv.version)
    uri = f"models:/{name}@champion"

    files = _audio_files(tmp_path)
    good = {"dataframe_split": {"columns": ["audio"], "data": [[encode_file(f)] for f in files]}}
    expected = mlflow.pyfunc.load_model(uri).predict(
        pd.DataFrame({"audio": [encode_file(f) for f in files]}))

    port = _free_port()
    bindir = Path(sys.executable).parent
    env = {**os.environ, "MLFLOW_TRACKING_URI": cfg.tracking.resolved_uri(),
           "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(bindir / "mlflow"), "models", "serve", "-m", uri, "--env-manager", "local",
         "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                if requests.get(f"{base}/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "server did not answer /ping within 120 s"
            time.sleep(1)

        def post(payload: dict) -> requests.Response:
            return requests.post(f"{base}/invocations", json=payload, timeout=60)

        def check_good() -> None:
            r = post(good)
            assert r.status_code == 200, r.text
            got = pd.DataFrame(r.json()["predictions"])
            assert list(got.columns) == list(expected.columns)
            assert got["genre"].tolist() == expected["genre"].tolist()
            cols = [c for c in expected.columns if c.startswith("p_")]
            assert np.allclose(got[cols].to_numpy(), expected[cols].to_numpy(), atol=1e-5)

        check_good()
        bad_requests = [
            ({"dataframe_split": {"columns": ["audio"], "data": [[_b64(os.urandom(4000))]]}},
             "not a supported audio"),
            ({"dataframe_split": {"columns": ["audio"], "data": [["%%%not-base64%%%"]]}},
             "base64"),
            ({"dataframe_split": {"columns": ["audio"], "data": [[_b64(_wav_bytes(0.2))]]}},
             "shorter than"),
            ({"dataframe_split": {"columns": ["audio"],
                                  "data": [[_b64(_wav_bytes(MAX_SECONDS + 1))]]}},
             "longer than"),
            ({"dataframe_split": {"columns": ["sound"], "data": [["abc"]]}}, "audio"),
        ]
        for payload, fragment in bad_requests:
            r = post(payload)
            assert 400 <= r.status_code < 500, (r.status_code, r.text[:500])
            assert fragment in r.json()["message"], r.text[:1000]
        check_good()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()
