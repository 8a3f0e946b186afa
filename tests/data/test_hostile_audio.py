"""A plausible signal: absurd sample rates refused at open (before any decoding), headers
that promise more than the file holds called ``truncated`` for every format, and file names
printed with their control characters escaped. Cross-path verdicts (validate, predict, both
servers) for these files: ``awkward_files`` in tests/model/test_serve.py."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genreflow.audio.contract import (
    ALL_REASONS,
    check_path,
    from_model_config,
    header_seconds,
    load_audio,
    to_model_config,
)
from genreflow.audio.decode import decode
from genreflow.audio.refusal import AudioError
from genreflow.core.config import AudioConfig, ConfigError, config_from_dict
from tests_helpers import awkward_files, with_wav_rate

CONTRACT = AudioConfig(min_seconds=1.0, max_seconds=8.0)
SR = 22050


def _tone_wav(path: Path, seconds: float = 3.0, sr: int = SR) -> Path:
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), sr, subtype="PCM_16")
    return path


def test_bad_sample_rate_is_a_stable_reason():
    assert "bad_sample_rate" in ALL_REASONS


@pytest.mark.parametrize("rate", [1, 3999, 384001, 2**31 - 1, 2**31, 2**32 - 1])
def test_absurd_rates_are_refused_at_open_and_fast(rate, tmp_path):
    """A 2 GHz WAV cost 1.3 s of resampling before it was refused; now nothing is decoded."""
    raw = with_wav_rate(_tone_wav(tmp_path / "x.wav").read_bytes(), rate)
    for source in (raw, _write(tmp_path / "hostile.wav", raw)):
        start = time.perf_counter()
        with pytest.raises(AudioError) as exc:
            load_audio(source, CONTRACT, SR, where="row 0")
        assert time.perf_counter() - start < 0.2
        assert exc.value.reason == "bad_sample_rate", str(exc.value)
        assert str(exc.value).startswith("row 0: bad_sample_rate: ") and "Hz" in str(exc.value)


def test_a_one_hertz_header_does_not_count_as_500_seconds(tmp_path):
    """The served model adds header durations against audio.max_request_seconds first: an
    out-of-range rate gives none (decoding then refuses the row)."""
    short = tmp_path / "short.wav"
    sf.write(short, np.full(500, 0.1, np.float32), SR, subtype="PCM_16")
    raw = with_wav_rate(short.read_bytes(), 1)
    assert len(raw) < 1100
    assert header_seconds(raw, CONTRACT) is None
    assert header_seconds(with_wav_rate(raw, SR), CONTRACT) == pytest.approx(500 / SR)


def test_the_configured_range_decides(tmp_path):
    path = _tone_wav(tmp_path / "8k.wav", sr=8000)
    assert load_audio(path, CONTRACT, SR)[1] == SR  # 8 kHz is within the default range
    narrow = AudioConfig(min_seconds=1.0, min_sample_rate=16000, max_sample_rate=48000)
    with pytest.raises(AudioError) as exc:
        load_audio(path, narrow, SR)
    assert exc.value.reason == "bad_sample_rate" and "16000 .. 48000" in str(exc.value)
    with pytest.raises(AudioError):  # validate's path: decode with the contract's range
        decode(path, sample_rates=(16000, 48000))


def test_sample_rate_limits_in_params_and_model_config():
    cfg = config_from_dict({"audio": {"min_sample_rate": 8000, "max_sample_rate": 96000}})
    assert (cfg.audio.min_sample_rate, cfg.audio.max_sample_rate) == (8000, 96000)
    with pytest.raises(ConfigError, match="min_sample_rate"):
        config_from_dict({"audio": {"min_sample_rate": 50000, "max_sample_rate": 48000}})
    with pytest.raises(ConfigError, match="audio.max_sample_rate"):
        config_from_dict({"audio": {"max_sample_rate": "fast"}})
    assert from_model_config(to_model_config(cfg.audio)) == cfg.audio
    old = from_model_config({"min_seconds": 3.0, "max_seconds": 600.0})  # logged before
    assert (old.min_sample_rate, old.max_sample_rate) == (4000, 384000)


@pytest.mark.parametrize("fmt,ext", [("AU", "au"), ("AIFF", "aiff"), ("WAV", "wav")])
def test_a_header_promising_more_than_the_file_holds_is_truncated(fmt, ext, tmp_path):
    whole = tmp_path / f"whole.{ext}"
    sf.write(whole, np.full(3 * SR, 0.1, np.float32), SR, format=fmt, subtype="PCM_16")
    raw = whole.read_bytes()
    for cut in (64, len(raw) // 2, len(raw) - 2):
        with pytest.raises(AudioError) as exc:
            load_audio(raw[:cut], CONTRACT, SR, where="x")
        assert exc.value.reason == "truncated", (cut, str(exc.value))
        assert fmt in str(exc.value)


def test_every_new_awkward_file_gets_its_reason(tmp_path):
    files = awkward_files(tmp_path, CONTRACT.max_seconds)
    for name in ("one_hertz.wav", "two_ghz.wav", "rate_2_31.wav", "cut.au", "cut.aiff",
                 "header_only.au", "header_only.aiff"):
        path, expected = files[name]
        with pytest.raises(AudioError) as exc:
            load_audio(path, CONTRACT, SR)
        assert exc.value.reason == expected, (name, str(exc.value))


HOSTILE_NAME = "evil\x1b[31m\nERROR forged line\u2028.wav"


def _no_control(text: str) -> bool:
    return all(ch.isprintable() for ch in text)


def test_file_names_are_escaped_in_every_message(tmp_path):
    from genreflow.audio.decode import Clip
    from genreflow.serving.predict import format_table
    from genreflow.stages.validate import check_clip

    path = tmp_path / HOSTILE_NAME
    path.write_bytes(_tone_wav(tmp_path / "ok.wav").read_bytes()[:2000])  # cut short
    with pytest.raises(AudioError) as exc:
        load_audio(path, CONTRACT, SR)
    msg = str(exc.value)
    assert exc.value.reason == "truncated" and _no_control(msg), msg
    assert "evil\\x1b[31m\\x0aERROR forged line\\u2028.wav: truncated: " in msg

    missing = check_path(tmp_path / f"gone{HOSTILE_NAME}")
    assert missing.reason == "missing" and _no_control(str(missing))

    rec = check_clip(Clip("x", "blues", path), CONTRACT)
    assert rec["status"] == "truncated" and _no_control(rec["reason"])

    table = format_table([{"file": str(path), "error": msg, "reason": "truncated"}])
    assert all(_no_control(line) for line in table.splitlines()) and len(table.splitlines()) == 3


def test_validate_logs_escaped_names(tmp_path):
    from genreflow.core.config import DataConfig, ValidateConfig
    from genreflow.stages.validate import validate_dataset

    genre = tmp_path / "data" / "blues"
    genre.mkdir(parents=True)
    _tone_wav(genre / "blues.00000.wav")
    (genre / f"{HOSTILE_NAME[:-4]}.00001.wav").write_bytes(b"not audio at all\n" * 20)
    lines: list[str] = []
    validate_dataset(DataConfig(dir=str(tmp_path / "data"), genres=["blues"]), ValidateConfig(),
                     workers=1, log=lines.append, audio=CONTRACT)
    excluded = [line for line in lines if line.startswith("excluded")]
    assert len(excluded) == 1 and "\\x1b" in excluded[0]
    assert all("\n" not in line and "\x1b" not in line for line in lines), lines


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
