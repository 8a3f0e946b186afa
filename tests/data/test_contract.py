"""The input contract on its own: reason classes, bounded decoding, quiet decoders, config."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genreflow.audio.contract import (
    ALL_REASONS,
    check_path,
    from_model_config,
    load_audio,
    to_model_config,
)
from genreflow.audio.decode import decode
from genreflow.audio.refusal import AudioError
from genreflow.core.config import AudioConfig, ConfigError, config_from_dict
from tests_helpers import awkward_files

CONTRACT = AudioConfig(min_seconds=1.0, max_seconds=8.0)


def test_every_awkward_file_gets_its_reason(tmp_path):
    for name, (path, expected) in awkward_files(tmp_path, CONTRACT.max_seconds).items():
        for source in (path, path.read_bytes()):  # predict reads paths, the server bytes
            if expected == "ok":
                y, sr = load_audio(source, CONTRACT, 22050, where=name)
                assert sr == 22050 and y.ndim == 1 and y.dtype == np.float32, name
                assert abs(len(y) / sr - 3.0) < 0.01, name
                continue
            with pytest.raises(AudioError) as exc:
                load_audio(source, CONTRACT, 22050, where=name)
            assert exc.value.reason == expected, (name, str(exc.value))
            msg = str(exc.value)
            assert msg.startswith(f"{name}: {expected}: ") and "\n" not in msg, msg
            assert expected in ALL_REASONS


def test_too_long_is_refused_from_the_header_without_decoding(tmp_path):
    """A 10-minute WAV whose data is never read: the header length decides."""
    path = tmp_path / "ten_minutes.wav"
    with sf.SoundFile(path, "w", 8000, 1, format="WAV", subtype="PCM_16") as f:
        for _ in range(60):
            f.write(np.full(80000, 0.1, np.float32))
    with pytest.raises(AudioError, match="header") as exc:
        decode(path, max_seconds=30)
    assert exc.value.reason == "too_long"


def test_downmix_and_resample(tmp_path):
    sr = 48000
    t = np.arange(2 * sr) / sr
    left, right = np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)
    buf = io.BytesIO()
    sf.write(buf, np.stack([left, right, left, right, left, right], 1).astype(np.float32) * 0.2,
             sr, format="WAV", subtype="FLOAT")
    y, out_sr = load_audio(buf.getvalue(), CONTRACT, 22050)
    assert out_sr == 22050 and len(y) == 2 * 22050
    spectrum = np.abs(np.fft.rfft(y))
    freqs = np.fft.rfftfreq(len(y), 1 / 22050)
    peaks = sorted(freqs[np.argsort(spectrum)[-2:]])
    assert peaks == pytest.approx([440, 660], abs=2)


def test_decoder_noise_stays_out_of_stderr(tmp_path, capfd, monkeypatch):
    """mpg123 prints warnings for a cut MP3 on the C-level stderr; decode silences them."""
    sr = 22050
    buf = io.BytesIO()
    try:
        sf.write(buf, (0.3 * np.sin(np.arange(4 * sr) / 10)).astype(np.float32), sr, format="MP3")
    except Exception:
        pytest.skip("this libsndfile cannot write MP3")
    cut = buf.getvalue()[: len(buf.getvalue()) // 3]
    capfd.readouterr()
    decode(cut)
    assert capfd.readouterr().err == ""
    monkeypatch.setenv("GENREFLOW_DECODER_STDERR", "1")  # the noise is real: shown when asked
    decode(cut)
    assert "Xing" in capfd.readouterr().err


def test_check_path_kinds(tmp_path):
    assert check_path(tmp_path / "nope.wav").reason == "missing"
    assert check_path(tmp_path).reason == "not_a_file"
    err = check_path(Path("/dev/null"))
    assert err.reason == "not_a_file" and "character device" in str(err)
    (tmp_path / "x.wav").write_bytes(b"x")
    assert check_path(tmp_path / "x.wav") is None


def test_contract_config():
    assert from_model_config(to_model_config(CONTRACT)) == CONTRACT
    # a model logged before the contract existed
    assert from_model_config({"max_seconds": 600.0, "min_seconds": 1.0}).silence_rms == 1e-4
    with pytest.raises(ConfigError, match="min_seconds"):
        AudioConfig(min_seconds=10, max_seconds=5)
    # shorter than segcnn's windows: that kind's check (tests/code/test_segcnn_settings.py)
    cfg = config_from_dict({"audio": {"min_seconds": 1.0}})
    assert cfg.audio.min_seconds == 1.0 and cfg.audio.max_rows == 32
    with pytest.raises(ConfigError, match="audio.max_rows"):
        config_from_dict({"audio": {"max_rows": 0}})
