"""A deterministic, GTZAN-shaped synthetic data set: up to 10 classes of generated music.

Each class has its own tempo, drum pattern and instrument timbres (see
:mod:`genreflow.data.styles`); every clip varies key, tempo (+-5%), gain, mix
and noise. :class:`SynthSpec` is the one home of the set's parameters and
defaults; the same spec gives byte-identical files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from genreflow.core.config import GTZAN_GENRES
from genreflow.core.errors import DataError
from genreflow.data.staging import Log, Staging, resolve_dest
from genreflow.data.styles import STYLES, Style

SYNTH_ORIGIN = "genreflow data synth"
SYNTH_VERSION = 1  # bump whenever the generator's output changes


@dataclass(frozen=True)
class SynthSpec:
    """What to generate. ``genres=None`` means GTZAN's ten genre names."""

    clips_per_genre: int = 30
    seconds: float = 30.0
    genres: tuple[str, ...] | None = None
    seed: int = 0
    sample_rate: int = 22050

    def __post_init__(self) -> None:
        names = tuple(self.genres) if self.genres is not None else tuple(GTZAN_GENRES)
        if not names or len(names) > len(STYLES) or len(set(names)) != len(names):
            raise DataError(
                f"synth: expected 1 to {len(STYLES)} distinct genre names, got {list(names)}"
            )
        bad = [g for g in names if not re.fullmatch(r"[a-z]+", g)]
        if bad:
            raise DataError(f"synth: genre names must be lowercase letters only, got {bad}")
        if not 1 <= self.clips_per_genre <= 99999:
            raise DataError(f"synth: clips_per_genre must be 1..99999, got {self.clips_per_genre}")
        if not self.seconds > 0 or not self.sample_rate > 0:
            raise DataError(
                f"synth: seconds and sample_rate must be positive "
                f"({self.seconds}, {self.sample_rate})"
            )
        object.__setattr__(self, "genres", names)

    @property
    def names(self) -> tuple[str, ...]:
        return self.genres  # type: ignore[return-value]  (set in __post_init__)

    def source_info(self) -> dict:
        """The ``SOURCE.json`` record of the set this spec writes."""
        return {
            "source": "synthetic",
            "origin": SYNTH_ORIGIN,
            "seed": self.seed,
            "clips_per_genre": self.clips_per_genre,
            "seconds": self.seconds,
            "sample_rate": self.sample_rate,
            "generator_version": SYNTH_VERSION,
            "n_clips": self.clips_per_genre * len(self.names),
            "genres": {g: self.clips_per_genre for g in self.names},
        }


def synth(dest: Path = Path("data"), log: Log = print, **spec: object) -> dict:
    """Write the synthetic set as 16-bit WAV into ``dest``; return its SOURCE.json record.

    Keyword arguments are the fields of :class:`SynthSpec` (``clips_per_genre``,
    ``seconds``, ``genres``, ``seed``, ``sample_rate``); omitted ones take its
    defaults. ``dest`` is replaced only once the new set is complete.
    """
    want = SynthSpec(**spec)  # type: ignore[arg-type]
    styles = _style_for(want.names)
    dest = resolve_dest(Path(dest))
    staging = Staging(dest)
    try:
        for genre in want.names:
            (staging.path / genre).mkdir()
            style_index = list(STYLES).index(styles[genre])
            for ci in range(want.clips_per_genre):
                rng = np.random.default_rng([want.seed, style_index, ci])
                y = _render(STYLES[styles[genre]], rng, want.seconds, want.sample_rate)
                pcm = np.round(np.clip(y, -1.0, 1.0) * 32767).astype("<i2")
                sf.write(
                    staging.path / genre / f"{genre}.{ci:05d}.wav",
                    pcm,
                    want.sample_rate,
                    subtype="PCM_16",
                    format="WAV",
                )
        info = want.source_info()
        staging.commit(info)
    finally:
        staging.cleanup()
    log(
        f"synthesised {info['n_clips']} clips ({len(want.names)} classes x "
        f"{want.clips_per_genre}, {want.seconds:g} s) in {dest}"
    )
    return info


def _style_for(names: tuple[str, ...]) -> dict[str, str]:
    """Style key per class: GTZAN names get their own, others take the unused ones in order."""
    free = [k for k in STYLES if k not in names]
    return {g: g if g in STYLES else free.pop(0) for g in names}


# ------------------------------------------------------------------------------ rendering
def _wavetable(n_harm: int, tilt: float, odd: bool, rng: np.random.Generator) -> np.ndarray:
    size = 2048
    phase = np.arange(size, dtype=np.float64) / size
    table = np.zeros(size)
    for h in range(1, n_harm + 1):
        if odd and h % 2 == 0:
            continue
        amp = h**-tilt * rng.uniform(0.8, 1.2)
        table += amp * np.sin(2 * np.pi * h * phase + rng.uniform(0, 2 * np.pi))
    return (table / (np.abs(table).max() or 1.0)).astype(np.float32)


def _voice(
    onsets: np.ndarray,
    freqs: np.ndarray,
    n: int,
    table: np.ndarray,
    attack: float,
    decay: float,
    sr: int,
) -> np.ndarray:
    """Notes from ``onsets`` (samples, ascending) with ``freqs`` of shape (notes, voices).

    Wavetable oscillators with 32-bit fixed-point phase (wrap-around is the modulo)
    and an attack/exponential-decay envelope looked up by time since note onset.
    """
    out = np.zeros(n, dtype=np.float32)
    keep = onsets < n
    onsets, freqs = onsets[keep], freqs[keep]
    if len(onsets) == 0:
        return out
    durations = np.diff(np.append(onsets, n))
    start = int(onsets[0])
    idx = np.repeat(np.arange(len(onsets), dtype=np.int32), durations)
    if start < 0:  # the first note began before the clip
        idx, start = idx[-start:], 0
    t = (np.arange(start, n, dtype=np.int64) - onsets[idx]).astype(np.uint32)
    te = np.arange(int(durations.max()) + 1, dtype=np.float32) / sr
    env = np.minimum(1.0, te / max(attack, 1e-4)) * np.exp(-te / decay)
    amp = env[t] * np.float32(1.0 / freqs.shape[1])
    shift = np.uint32(32 - int(np.log2(len(table))))
    acc = np.zeros(n - start, dtype=np.float32)
    for v in range(freqs.shape[1]):
        inc = np.round(freqs[:, v] / sr * 2.0**32).astype(np.uint64).astype(np.uint32)
        acc += table[(t * inc[idx]) >> shift]
    out[start:] = acc * amp
    return out


def _midi_hz(m: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=np.float64) - 69) / 12)


def _render(style: Style, rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    """One clip as float32 in [-1, 1]."""
    n = int(round(seconds * sr))
    bpm = style.bpm * rng.uniform(0.95, 1.05)
    step = 60.0 / bpm / 4 * sr  # samples per 16th note
    offset = rng.uniform(0, 16 * step)  # start somewhere inside a bar
    n_steps = int(np.ceil((n + offset) / step)) + 1
    s = np.arange(n_steps)
    pos = s * step - offset + np.where(s % 4 == 2, style.swing * step, 0.0)
    pos += rng.normal(0, 0.002 * sr, n_steps)  # human timing
    pos = np.round(pos).astype(np.int64)
    bar = s // 16
    prog = np.roll(np.array(style.progression), -int(rng.integers(len(style.progression))))
    key = int(rng.integers(12))
    rel_root = prog[bar % len(prog)]

    def hits(pattern: str) -> tuple[np.ndarray, np.ndarray]:
        vel = np.array([{"x": 1.0, "o": 0.45}.get(c, 0.0) for c in pattern])[s % 16]
        vel = vel * rng.uniform(0.75, 1.0, n_steps) * (rng.random(n_steps) > 0.04)
        sel = (vel > 0) & (pos >= 0) & (pos < n)
        return pos[sel], vel[sel]

    def onsets(pattern: str) -> np.ndarray:
        sel = np.array([c != "." for c in pattern])[s % 16] & (pos < n)
        first = np.flatnonzero(sel & (pos >= 0))
        if len(first) == 0:
            return np.zeros(0, dtype=np.int64)
        before = np.flatnonzero(sel & (pos < 0))  # a note still ringing at t = 0
        keep = np.concatenate([before[-1:], first])
        return keep

    mix = np.zeros(n, dtype=np.float32)

    # drums: one-shots added at the hit positions
    if style.drums > 0:
        tk = np.arange(int(0.35 * sr), dtype=np.float32) / sr
        f_k = rng.uniform(45, 60)
        kick = np.sin(2 * np.pi * (f_k * tk + (150 - f_k) * 0.03 * (1 - np.exp(-tk / 0.03))))
        kick *= np.exp(-tk / 0.12)
        ts = np.arange(int(0.3 * sr), dtype=np.float32) / sr
        snare = 0.7 * rng.standard_normal(len(ts)).astype(np.float32) * np.exp(
            -ts / style.snare_noise_decay
        ) + 0.5 * np.sin(2 * np.pi * rng.uniform(170, 220) * ts) * np.exp(-ts / 0.05)
        th = np.arange(int(min(0.5, 5 * style.hat_decay) * sr), dtype=np.float32) / sr
        hat = np.diff(rng.standard_normal(len(th) + 1).astype(np.float32)) * np.exp(
            -th / style.hat_decay
        )
        for shot, pattern, gain in (
            (kick, style.kick, 1.0),
            (snare, style.snare, 0.6),
            (hat, style.hat, 0.18),
        ):
            for p, v in zip(*hits(pattern), strict=True):
                m = min(len(shot), n - p)
                mix[p : p + m] += (gain * v * style.drums) * shot[:m]

    # bass
    on = onsets(style.bass)
    if len(on):
        notes = np.array(style.bass_notes)[np.arange(len(on)) % len(style.bass_notes)]
        midi = style.bass_octave + key + rel_root[on] + notes
        table = _wavetable(style.bass_harm, style.bass_tilt * rng.uniform(0.9, 1.1), False, rng)
        decay = style.bass_decay * rng.uniform(0.8, 1.2)
        bass = _voice(pos[on], _midi_hz(midi)[:, None], n, table, 0.005, decay, sr)
        mix += style.bass_gain * rng.uniform(0.8, 1.2) * bass

    # chords
    on = onsets(style.chord_steps)
    if len(on):
        midi = 48 + key + rel_root[on][:, None] + np.array(style.chord)[None, :]
        tilt = style.chord_tilt * rng.uniform(0.9, 1.1)
        table = _wavetable(style.chord_harm, tilt, style.chord_odd, rng)
        decay = style.chord_decay * rng.uniform(0.8, 1.2)
        chords = _voice(pos[on], _midi_hz(midi), n, table, style.chord_attack, decay, sr)
        if style.drive:
            chords = np.tanh(style.drive * chords) / np.tanh(style.drive)
        mix += style.chord_gain * rng.uniform(0.8, 1.2) * chords

    # lead: random walk over the scale
    on = onsets(style.lead) if style.lead else np.zeros(0, dtype=np.int64)
    if len(on):
        scale = np.array(style.scale)
        degree = np.cumsum(rng.integers(-2, 3, len(on))) % (2 * len(scale))
        midi = 60 + key + scale[degree % len(scale)] + 12 * (degree // len(scale))
        table = _wavetable(style.lead_harm, style.lead_tilt, style.lead_odd, rng)
        decay = style.lead_decay * rng.uniform(0.8, 1.2)
        lead = _voice(pos[on], _midi_hz(midi)[:, None], n, table, style.lead_attack, decay, sr)
        mix += style.lead_gain * rng.uniform(0.8, 1.2) * lead

    noise = (style.noise * rng.uniform(0.5, 1.5) + 0.002) * rng.standard_normal(n, np.float32)
    mix += noise
    peak = float(np.abs(mix).max()) or 1.0
    return mix * np.float32(rng.uniform(0.3, 0.9) / peak)

