"""Small helpers shared by test modules (importable because tests/ is on sys.path)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from conftest import write_tone

FREQS = {"blues": 110.0, "classical": 440.0, "metal": 880.0, "jazz": 220.0, "rock": 330.0}


def make_dataset(root: Path, counts: dict[str, int], seconds: float = 2.0) -> Path:
    """``root/<genre>/<genre>.000NN.wav`` tones, distinct per genre."""
    for genre, n in counts.items():
        for i in range(n):
            write_tone(root / genre / f"{genre}.{i:05d}.wav", seconds=seconds,
                       freq=FREQS.get(genre, 500.0) * (1 + 0.01 * i), seed=i)
    return root


class Logs(list):
    """A ``log`` callable that keeps the messages."""

    def __call__(self, msg: str) -> None:
        self.append(msg)

    @property
    def text(self) -> str:
        return "\n".join(self)


def with_kind(cfg, name: str, **changes):
    """``cfg`` with ``train.<name>`` settings changed (parsed by the kind's config class)."""
    from dataclasses import replace

    from genreflow.kinds import settings

    kinds = {**cfg.train.kinds, name: settings(cfg.train, name, changes)}
    cfg.train = replace(cfg.train, kinds=kinds)
    return cfg


def all_settings(train) -> dict:
    """Every kind's parsed settings of a ``TrainConfig`` (for ``replace`` in tests)."""
    from genreflow.kinds import kind_names, settings

    return {n: settings(train, n) for n in kind_names()}


def awkward_files(root: Path, max_seconds: float) -> dict[str, tuple[Path, str]]:
    """Inputs users really send, each with the verdict the input contract must give
    (``min_seconds`` 1 s, ``max_seconds`` as given, the default silence threshold)."""
    import os

    import numpy as np
    import soundfile as sf

    root.mkdir(parents=True, exist_ok=True)
    sr = 22050
    tone = (0.3 * np.sin(2 * np.pi * 330 * np.arange(3 * sr) / sr)).astype(np.float32)
    files: dict[str, tuple[Path, str]] = {}

    def add(name: str, reason: str, data: bytes | None = None, **write) -> None:
        path = root / name
        if data is not None:
            path.write_bytes(data)
        else:
            sf.write(path, write.pop("y"), write.pop("sr", sr), **write)
        files[name] = (path, reason)

    add("good.wav", "ok", y=tone)
    tone44 = (0.3 * np.sin(2 * np.pi * 330 * np.arange(3 * 44100) / 44100)).astype(np.float32)
    add("stereo_44k.flac", "ok", y=np.stack([tone44, 0.5 * tone44], axis=1), sr=44100)
    add("empty.wav", "empty", b"")
    add("random.wav", "not_audio", os.urandom(6000))
    add("text.mp3", "not_audio", b"this is not an mp3, it is a text file\n" * 40)
    add("movie.m4a", "unsupported_format", b"\x00\x00\x00\x20ftypM4A " + os.urandom(4000))
    nan = tone.copy()
    nan[1000:1010] = np.nan
    add("nan.wav", "non_finite", y=nan, subtype="FLOAT")
    add("half_second.wav", "too_short", y=tone[: sr // 2])
    add("silence.wav", "silent", y=np.zeros(3 * sr, np.float32))
    add("too_long.wav", "too_long", y=np.tile(tone, int(max_seconds // 3) + 1))
    full = (root / "good.wav").read_bytes()
    add("cut.wav", "truncated", full[: len(full) // 2])
    # a sample rate its header declares, outside the contract's range (4 kHz .. 384 kHz)
    add("short.wav", "too_short", y=tone[:500])
    add("one_hertz.wav", "bad_sample_rate", with_wav_rate((root / "short.wav").read_bytes(), 1))
    add("two_ghz.wav", "bad_sample_rate", with_wav_rate(full, 2**31 - 1))  # the decoder opens it
    add("rate_2_31.wav", "bad_sample_rate", with_wav_rate(full, 2**31))  # the decoder cannot
    for fmt, ext in (("AU", "au"), ("AIFF", "aiff")):  # a header that promises more than the file
        add(f"whole.{ext}", "ok", y=tone, format=fmt, subtype="PCM_16")
        whole = (root / f"whole.{ext}").read_bytes()
        add(f"cut.{ext}", "truncated", whole[: len(whole) // 2])
        add(f"header_only.{ext}", "truncated", whole[:64])
    return files


def with_wav_rate(wav: bytes, rate: int) -> bytes:
    """A canonical WAV file's bytes with the sample rate (and byte rate) its header declares
    replaced by ``rate``."""
    import struct

    out = bytearray(wav)
    assert out[12:16] == b"fmt ", "expected a canonical WAV (fmt chunk first)"
    block_align = struct.unpack("<H", out[32:34])[0]
    out[24:28] = struct.pack("<I", rate)
    out[28:32] = struct.pack("<I", (rate * block_align) % 2**32)
    return bytes(out)


#: params.yaml overrides that shrink `dvc repro` to seconds (slow pipeline tests)
TINY_PIPELINE = {
    "data": {"genres": ["blues", "classical", "metal"]},
    "audio": {"min_seconds": 1.0},
    "split": {"ratios": [0.6, 0.2, 0.2]},
    "features": {"clip_seconds": 4.0, "n_mels": 32, "n_fft": 1024, "workers": 1},
    "figures": {"clips": ["blues.00000"], "dpi": 50},
    "tune": {"n_trials": 1, "max_epochs": 1},
}
#: small networks for the log-mel kinds (segcnn's windows: TINY_PIPELINE's audio.min_seconds)
SMALL_KINDS = {"cnn": {"filters": [4, 8], "dense": 8},
               "segcnn": {"filters": [4, 8], "dense": 8, "segment_seconds": 1.0},
               "inception": {"weights": "none", "image_size": 75, "dense": 8}}


def merge_params(base: dict, over: dict) -> dict:
    """``base`` with ``over`` merged in, section by section."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge_params(base.get(k) or {}, v) if isinstance(v, dict) else v
    return out


def pipeline_copy(tmp: Path, over: dict) -> Path:
    """``tmp/repo``: a copy of the pipeline (dvc.yaml, .dvcignore, pyproject.toml, src/) with
    the repository's params.yaml merged with ``over``, a git and DVC repository of its own."""
    import shutil
    import subprocess
    import sys

    import yaml

    root = Path(__file__).resolve().parents[1]
    repo = tmp / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", ".dvcignore", "pyproject.toml"):
        shutil.copy(root / name, repo / name)
    shutil.copytree(root / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__"))
    params = merge_params(yaml.safe_load((root / "params.yaml").read_text()), over)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False,
                                                     allow_unicode=True))
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=repo, check=True, capture_output=True, timeout=120)
    return repo


def free_port() -> int:
    """A TCP port free on loopback right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, proc, deadline: float, log: Path | None = None) -> None:
    """Poll ``url`` until it answers 200; fail with the server's log if ``proc`` exits or
    ``deadline`` (``time.monotonic()``) passes."""
    import time

    import requests

    while True:
        assert proc.poll() is None, log.read_text()[-3000:] if log else f"{url}: server exited"
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):  # not up, or too busy to answer yet
            pass
        assert time.monotonic() < deadline, f"{url} did not answer in time"
        time.sleep(0.5)


@contextlib.contextmanager
def started_server(cmd: list[str], port: int, log: Path, *, cwd: Path | None = None,
                   env: dict | None = None, health: str = "/ping", wait: float = 180):
    """``cmd`` (a server listening on 127.0.0.1:``port``) started in its own session with its
    output in ``log``; yields ``(base URL, process)`` once ``health`` answers 200, and stops
    it (SIGTERM, then SIGKILL) however the block ends."""
    import os
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}{health}", proc, time.monotonic() + wait, log)
        yield base, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@contextlib.contextmanager
def running_server(cmd: list[str], port: int, log: Path, **kwargs):
    """:func:`started_server`, yielding only the base URL."""
    with started_server(cmd, port, log, **kwargs) as (base, _):
        yield base


def audio_request(*paths: Path) -> dict:
    """The scoring server's JSON body for audio files, one base64 row each."""
    import base64

    return {"dataframe_split": {"columns": ["audio"], "data": [
        [base64.b64encode(Path(p).read_bytes()).decode("ascii")] for p in paths]}}


@contextlib.contextmanager
def mlflow_server(backend_uri: str, *extra: str, log: Path):
    """A real ``mlflow server`` on loopback over ``backend_uri``; yields its base URL."""
    import os
    import signal
    import subprocess
    import sys
    import time

    port = free_port()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri,
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1", *extra],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/health", server, time.monotonic() + 120, log)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def tune_worker(cfg, features_dir: Path, tracking_uri: str, n_trials: int) -> dict:
    """One `genreflow tune` worker in its own process (for ProcessPoolExecutor)."""
    import os

    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    from genreflow.core.tfenv import set_tf_environment

    set_tf_environment()
    from genreflow.stages.tune import tune

    return tune(cfg, features_dir, n_trials=n_trials, log=lambda m: None)
