"""The servable model: in process, behind the real ``mlflow models serve`` and behind
``genreflow serve`` (conftest's tiny model, one server of each kind for the whole module)."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import SERVED_CONTRACT as CONTRACT
from conftest import TINY_GENRES, write_tone
from tests_helpers import awkward_files, free_port, wait_for_http


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


def _table(*rows: str) -> dict:
    return {"dataframe_split": {"columns": ["audio"], "data": [[r] for r in rows]}}


@pytest.fixture(scope="module")
def servers(tiny_model):
    """``mlflow models serve`` and ``genreflow serve`` on loopback, started together."""
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    commands = {
        "mlflow": [str(bindir / "mlflow"), "models", "serve", "-m", str(tiny_model.model),
                   "--env-manager", "local", "--host", "127.0.0.1"],
        "genreflow": [sys.executable, "-m", "genreflow.cli", "serve", str(tiny_model.model),
                      "--params", str(tiny_model.root / "none.yaml"), "--host", "127.0.0.1"],
    }
    procs, bases, logs = {}, {}, {}
    for name, cmd in commands.items():
        port = free_port()
        logs[name] = tiny_model.root / f"{name}-server.log"
        procs[name] = subprocess.Popen(
            [*cmd, "--port", str(port)], env=env, stdout=logs[name].open("wb"),
            stderr=subprocess.STDOUT, start_new_session=True)
        bases[name] = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        for name, base in bases.items():
            wait_for_http(f"{base}/ping", procs[name], deadline, logs[name])
        yield SimpleNamespace(bases=bases, procs=procs, logs=logs)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def test_encode_file_roundtrip(tmp_path):
    from genreflow.serving.pyfunc import encode_file

    p = write_tone(tmp_path / "x.wav", seconds=0.5)
    assert base64.b64decode(encode_file(p)) == p.read_bytes()


def test_pyfunc_in_process(tiny_model, tmp_path):
    import mlflow
    from mlflow.exceptions import MlflowException

    from genreflow.serving.predictor import GenrePredictor
    from genreflow.serving.pyfunc import encode_file

    model = mlflow.pyfunc.load_model(str(tiny_model.model))
    expected_cols = ["genre", "probability", *[f"p_{g}" for g in TINY_GENRES]]
    assert [c.name for c in model.metadata.get_output_schema().inputs] == expected_cols
    assert model.unwrap_python_model().audio == CONTRACT  # the contract travelled
    files = [write_tone(tmp_path / "a.wav", seconds=3.0), _stereo_flac(tmp_path / "b.flac"),
             write_tone(tmp_path / "c.ogg", seconds=2.5, sr=16000, freq=440.0, seed=1)]
    out = model.predict(pd.DataFrame({"audio": [encode_file(f) for f in files]}))
    assert list(out.columns) == expected_cols
    probs = out[[f"p_{g}" for g in TINY_GENRES]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert out["genre"].tolist() == [TINY_GENRES[k] for k in probs.argmax(axis=1)]
    ref = GenrePredictor.from_bundle(tiny_model.bundle)
    for f, row in zip(files, probs, strict=True):
        assert np.allclose(row, ref.predict_file(f), atol=1e-5), f

    def bad(frame: pd.DataFrame, message_start: str) -> None:
        with pytest.raises(MlflowException) as exc:
            model.predict(frame)
        assert exc.value.get_http_status_code() == 400, exc.value.message
        assert exc.value.message.startswith(message_start), exc.value.message

    good = encode_file(files[0])
    with pytest.raises(MlflowException, match=r"missing inputs \['audio'\]"):  # MLflow's check
        model.predict(pd.DataFrame({"sound": [good]}))
    with pytest.raises(MlflowException, match="request: bad_request: missing column 'audio'"):
        model.unwrap_python_model().predict(None, pd.DataFrame({"sound": [good]}))
    bad(pd.DataFrame({"audio": [good, "not base64 at all!"]}), "row 1: bad_request: ")
    bad(pd.DataFrame({"audio": [good] * 5}), "request: too_many_rows: 5 rows")
    bad(pd.DataFrame({"audio": [_b64(_wav_bytes(7.0))] * 3}), "request: request_too_long: ")
    bad(pd.DataFrame({"audio": [_b64(os.urandom(2_200_000))]}), "request: request_too_large")

    # a file whose header gives no length is stopped by the request's budget as it decodes
    inner = model.unwrap_python_model()
    half = int(0.6 * CONTRACT.max_request_seconds * inner.predictor.sample_rate)  # 12 s each
    blocks = inner._request_budget()(iter([np.zeros(half, np.float32)] * 3))
    assert len(next(blocks)) == half
    with pytest.raises(MlflowException, match="request: request_too_long: more than 20 s"):
        next(blocks)


@pytest.mark.parametrize("idle_core", [True, False])
def test_both_serving_paths_give_the_same_answer(tiny_model, tmp_path, monkeypatch, idle_core):
    """A lone request on an idle machine streams its decode beside the front-end, any other
    runs the front-end over the whole signal: the probabilities are the same."""
    import mlflow

    from genreflow.serving import pyfunc
    from genreflow.serving.predictor import GenrePredictor

    monkeypatch.setattr(pyfunc, "_a_core_is_idle", lambda: idle_core)
    model = mlflow.pyfunc.load_model(str(tiny_model.model))
    f = write_tone(tmp_path / "d.ogg", seconds=7.5, sr=44100, freq=220.0, seed=3)
    out = model.predict(pd.DataFrame({"audio": [pyfunc.encode_file(f)]}))
    ref = GenrePredictor.from_bundle(tiny_model.bundle).predict_file(f)
    np.testing.assert_allclose(out[[f"p_{g}" for g in TINY_GENRES]].to_numpy()[0], ref,
                               atol=1e-5)


def _served_verdict(response, server: str) -> str:
    from genreflow.serving.messages import clean_message

    if response.status_code == 200:
        return "ok"
    assert response.status_code == 400, (server, response.status_code, response.text[:300])
    body = response.json()
    message, reason = clean_message(body["message"])
    if server == "genreflow":  # the guard already cleaned it and named the reason
        assert body["message"] == message and body.get("reason") == reason, body
        assert "Failed to predict" not in body["message"] and "\n" not in message, body
    return reason


@pytest.mark.integration
def test_same_verdict_from_validate_predict_and_both_servers(tiny_model, servers, tmp_path):
    import requests

    from genreflow.audio.decode import Clip
    from genreflow.serving.predict import predict_files
    from genreflow.serving.pyfunc import encode_file
    from genreflow.stages.validate import check_clip

    files = awkward_files(tmp_path / "awkward", CONTRACT.max_seconds)
    paths = [p for p, _ in files.values()]
    predicted = predict_files(paths, model_uri=str(tiny_model.model))
    for (name, (path, expected)), pred in zip(files.items(), predicted, strict=True):
        verdicts = {"validate": check_clip(Clip(name, "x", path), CONTRACT)["status"],
                    "predict": pred.get("reason", "ok")}
        for server, base in servers.bases.items():
            r = requests.post(f"{base}/invocations", json=_table(encode_file(path)), timeout=30)
            verdicts[server] = _served_verdict(r, server)
            if expected == "ok":
                served = r.json()["predictions"][0]
                assert served["probability"] == pytest.approx(pred["probability"], abs=1e-5)
        assert set(verdicts.values()) == {expected}, (name, verdicts, pred.get("error"))


@pytest.mark.integration
def test_request_limits_on_both_servers(servers):
    import requests

    good = _b64(_wav_bytes(3.0))
    cases = [(_table(*[good] * 5), "too_many_rows"),
             (_table(*[_b64(_wav_bytes(7.0))] * 3), "request_too_long"),
             ({"dataframe_split": {"columns": ["sound"], "data": [["abc"]]}}, "bad_request")]
    for server, base in servers.bases.items():
        for payload, reason in cases:
            r = requests.post(f"{base}/invocations", json=payload, timeout=30)
            assert _served_verdict(r, server) == reason, (server, r.text[:300])


@pytest.mark.integration
def test_genreflow_serve_guard(servers):
    """Oversized bodies get 413 at once, without the server's memory growing; a request
    without Content-Type is JSON."""
    import psutil
    import requests

    base = servers.bases["genreflow"]
    server = psutil.Process(servers.procs["genreflow"].pid)
    good = json.dumps(_table(_b64(_wav_bytes(3.0)))).encode()
    r = requests.post(f"{base}/invocations", data=good, timeout=30)  # no Content-Type
    assert r.status_code == 200 and r.json()["predictions"][0]["genre"] in TINY_GENRES, r.text
    r = requests.post(f"{base}/invocations", data=good, timeout=30,  # what curl -d sends
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text

    oversized = b'{"dataframe_split": {"columns": ["audio"], "data": [["' + b"A" * (
        24 * 2**20) + b'"]]}}'
    requests.post(f"{base}/invocations", data=oversized, timeout=30)  # warm-up
    rss_before = server.memory_info().rss
    for _ in range(3):
        t0 = time.monotonic()
        r = requests.post(f"{base}/invocations", data=oversized,
                          headers={"Content-Type": "application/json"}, timeout=30)
        assert time.monotonic() - t0 < 1.0
        assert r.status_code == 413 and r.json()["reason"] == "request_too_large", r.text
        assert "maximum is 2 MB" in r.json()["message"]
    assert server.memory_info().rss - rss_before < 8 * 2**20

    # a client that asks first (Expect: 100-continue, as curl does) never uploads the body
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    t0 = time.monotonic()
    conn.putrequest("POST", "/invocations")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(10**9))
    conn.putheader("Expect", "100-continue")
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413 and time.monotonic() - t0 < 1.0
    conn.close()
    assert requests.post(f"{base}/invocations", data=good, timeout=30).status_code == 200

    # a chunked upload (no Content-Length) is counted as it arrives
    r = requests.post(f"{base}/invocations", data=iter([oversized[i:i + 2**20] for i in range(
        0, len(oversized), 2**20)]), headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 413, r.text
    assert "a request body over 2 MB (chunked upload), the maximum is 2 MB" in r.json()["message"]
    # a body that is not JSON: one line saying why, not MLflow's echo of the whole body
    for broken in (good[: len(good) // 2], b""):
        r = requests.post(f"{base}/invocations", data=broken, timeout=30)
        assert r.status_code == 400 and r.json()["reason"] == "bad_request", r.text
        assert r.json()["message"].startswith("request: bad_request: the body is not valid JSON")
        assert len(r.content) < 500, r.text[:300]


@pytest.mark.integration
def test_predict_cli_exit_code(tiny_model, tmp_path):
    from typer.testing import CliRunner

    from genreflow.cli import app

    good = write_tone(tmp_path / "good.wav", seconds=3.0)
    silent = write_tone(tmp_path / "quiet.wav", seconds=3.0, amp=0.0, noise=0.0)
    (tmp_path / "folder").mkdir()
    args = ["predict", str(good), str(silent), str(tmp_path / "folder"), "/dev/null",
            str(tmp_path / "gone.mp3"), "--model", str(tiny_model.model), "--json",
            "--params", str(tmp_path / "none.yaml")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    rows = json.loads(result.stdout)
    assert rows[0]["genre"] in TINY_GENRES
    assert [r.get("reason") for r in rows[1:]] == ["silent", "not_a_file", "not_a_file",
                                                   "missing"]
    assert "is a directory" in rows[2]["error"] and "character device" in rows[3]["error"]
    ok = CliRunner().invoke(app, args[:2] + args[6:])
    assert ok.exit_code == 0, ok.output


def test_predict_outside_a_project_does_not_create_a_store(tmp_path, monkeypatch):
    import mlflow
    from typer.testing import CliRunner

    from genreflow.cli import app
    from genreflow.core.config import RegisterConfig

    before = mlflow.get_tracking_uri()  # an earlier test in this process may have set one
    absent = tmp_path / "mlflow.db"  # its folder exists: SQLite would create it
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{absent}")
    mlflow.set_tracking_uri(f"sqlite:///{absent}")
    try:
        song = write_tone(tmp_path / "song.wav", seconds=3.0)
        result = CliRunner().invoke(app, ["predict", str(song), "--model",
                                          RegisterConfig().champion_uri,
                                          "--params", str(tmp_path / "none.yaml")])
        served = CliRunner().invoke(app, ["serve", RegisterConfig().champion_uri,
                                          "--port", str(free_port()),
                                          "--params", str(tmp_path / "none.yaml")])
    finally:
        mlflow.set_tracking_uri(before)
    assert result.exit_code == 1 and "no model registry at sqlite:///" in result.output
    assert not absent.exists() and "Traceback" not in result.output
    assert served.exit_code == 1 and "no model registry at sqlite:///" in served.output


def test_serve_and_predict_refuse_a_model_that_does_not_take_audio(tiny_model, tmp_path):
    """A training run's window-level model (or any other MLflow model) is refused by both,
    with the same message, before a server starts or a file is read."""
    import mlflow.pyfunc
    from typer.testing import CliRunner

    from genreflow.cli import app
    from genreflow.serving.pyfunc import is_audio_model_folder

    class Doubler(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input: list[str], params=None) -> list[str]:
            return model_input * 2

    other = tmp_path / "other"
    mlflow.pyfunc.save_model(str(other), python_model=Doubler())
    assert is_audio_model_folder(tiny_model.model) and not is_audio_model_folder(other)
    none = ["--params", str(tmp_path / "none.yaml")]
    served = subprocess.run(  # a process with a timeout: without the check a server starts
        [sys.executable, "-m", "genreflow.cli", "serve", str(other), "--port", str(free_port()),
         *none], capture_output=True, text=True, timeout=120)
    song = write_tone(tmp_path / "song.wav", seconds=3.0)
    predicted = CliRunner().invoke(app, ["predict", str(song), "--model", str(other), *none])
    # a training run's own Keras model (genreflow's layers are not known to a plain load)
    import mlflow.keras

    from genreflow.serving.predictor import GenrePredictor

    keras_only = tmp_path / "keras_only"
    mlflow.keras.save_model(GenrePredictor.from_bundle(tiny_model.bundle).model, str(keras_only))
    windows = CliRunner().invoke(app, ["predict", str(song), "--model", str(keras_only), *none])
    for code, output in ((served.returncode, served.stderr), (predicted.exit_code,
                                                              predicted.output),
                         (windows.exit_code, windows.output)):
        assert code == 1, output
        assert "not a genreflow audio model" in output and "log-mel windows, not audio" in output
        assert "Traceback" not in output


@pytest.mark.skipif(__import__("platform").libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_keep_request_memory_sets_glibc_thresholds(monkeypatch):
    """On glibc the serving worker raises the mmap and trim thresholds; the environment
    switch keeps glibc's defaults (and says so by returning False)."""
    from genreflow.serving.http import ENV_MALLOC, keep_request_memory

    code = ("import sys; from genreflow.serving.http import keep_request_memory; "
            "sys.exit(0 if keep_request_memory() else 3)")
    env = {k: v for k, v in os.environ.items() if k != ENV_MALLOC}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0
    monkeypatch.setenv(ENV_MALLOC, "default")
    assert keep_request_memory() is False


def test_serve_on_a_taken_port_says_so_before_loading(tiny_model, tmp_path):

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        t0 = time.monotonic()
        served = subprocess.run(
            [sys.executable, "-m", "genreflow.cli", "serve", str(tiny_model.model), "--port",
             str(port), "--params", str(tmp_path / "none.yaml")],
            capture_output=True, text=True, timeout=120)
    assert served.returncode == 1, served.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in served.stderr and "--port" in served.stderr
    assert time.monotonic() - t0 < 60
