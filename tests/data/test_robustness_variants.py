"""The robustness benchmark's copies (scripts/robustness.py) are what they claim to be, and the
input contract accepts every one of them (otherwise its figures would measure refusals)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

SR = 22050


def _band_share(y: np.ndarray, sr: int, above_hz: float) -> float:
    """Share of the signal's energy above ``above_hz``."""
    power = np.abs(np.fft.rfft(y)) ** 2
    return float(power[np.fft.rfftfreq(len(y), 1 / sr) > above_hz].sum() / power.sum())


@pytest.fixture(scope="module")
def copies():
    import robustness

    from genreflow.audio.contract import load_audio
    from genreflow.core.config import AudioConfig

    rng = np.random.default_rng(0)
    t = np.arange(12 * SR) / SR
    # a tone with overtones up to 9 kHz, in noise: energy on both sides of 4 kHz
    y = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (220, 1320, 5500, 9000))
    y = (y + 0.02 * rng.standard_normal(len(t))).astype(np.float32)
    out = {}
    for name, make in robustness.VARIANTS.items():
        z, sr = load_audio(make(y, SR), AudioConfig(), SR, where=name)
        out[name] = z
    return y, out


def test_every_variant_is_accepted_and_keeps_its_length_except_the_excerpt(copies):
    y, out = copies
    assert set(out) >= {"44.1 kHz stereo WAV", "MP3", "Opus", "8 kHz WAV", "12 dB quieter",
                        "10 s excerpt"}
    for name, z in out.items():
        want = 10 * SR if name == "10 s excerpt" else len(y)
        assert abs(len(z) - want) < 0.05 * SR, (name, len(z), want)
        assert np.isfinite(z).all(), name


def test_the_variants_change_what_they_say_and_only_that(copies):
    y, out = copies
    rms = {n: float(np.sqrt(np.mean(z ** 2))) for n, z in out.items()}
    full = float(np.sqrt(np.mean(y ** 2)))
    assert rms["12 dB quieter"] / full == pytest.approx(10 ** (-12 / 20), rel=0.02)
    for name in ("44.1 kHz stereo WAV", "MP3", "Opus"):
        assert rms[name] / full == pytest.approx(1.0, rel=0.1), name
    # 8 kHz audio holds nothing above 4 kHz; the original holds about half its energy there
    assert _band_share(y, SR, 4200) > 0.3
    assert _band_share(out["8 kHz WAV"], SR, 4200) < 1e-3
    assert _band_share(out["44.1 kHz stereo WAV"], SR, 4200) > 0.3
    # the lossy copies differ from the original, but not beyond recognition
    for name in ("MP3", "Opus"):
        n = min(len(y), len(out[name]))
        assert 0 < np.mean((out[name][:n] - y[:n]) ** 2) < np.mean(y ** 2), name
