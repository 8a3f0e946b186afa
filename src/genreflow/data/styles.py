"""How each synthetic class sounds: tempo, drum patterns and instrument timbres, one
:class:`Style` per GTZAN genre name. Pure data; :mod:`genreflow.data.synth` renders it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Style:
    """How one synthetic class sounds. Patterns are one 4/4 bar of 16th-note steps."""

    bpm: float
    kick: str = "." * 16
    snare: str = "." * 16
    hat: str = "." * 16
    swing: float = 0.0  # delay of the off-beat 8ths, in 16th steps
    hat_decay: float = 0.03
    snare_noise_decay: float = 0.08
    drums: float = 1.0
    bass: str = "x.......x......."
    bass_notes: tuple[int, ...] = (0,)
    bass_octave: int = 36  # MIDI note of the lowest key
    bass_harm: int = 4
    bass_tilt: float = 1.5  # harmonic amplitude ~ 1 / h**tilt (small = bright)
    bass_decay: float = 0.5
    bass_gain: float = 0.6
    chord: tuple[int, ...] = (0, 4, 7)
    chord_steps: str = "x.......x......."
    chord_harm: int = 8
    chord_tilt: float = 1.3
    chord_odd: bool = False
    chord_attack: float = 0.005
    chord_decay: float = 0.8
    chord_gain: float = 0.35
    drive: float = 0.0  # tanh distortion of the chord voice
    lead: str = ""  # optional melody voice (random scale notes)
    lead_harm: int = 3
    lead_tilt: float = 2.0
    lead_odd: bool = False
    lead_attack: float = 0.01
    lead_decay: float = 0.4
    lead_gain: float = 0.25
    progression: tuple[int, ...] = (0, 5, 7, 0)
    scale: tuple[int, ...] = (0, 2, 4, 5, 7, 9, 11)
    noise: float = 0.005


_X8 = "x.x.x.x.x.x.x.x."
_BACKBEAT = "....x.......x..."
STYLES: dict[str, Style] = {
    "blues": Style(
        bpm=76,
        swing=0.67,
        kick="x.....x.x.......",
        snare=_BACKBEAT,
        hat=_X8,
        drums=0.7,
        bass="x...x...x...x...",
        bass_notes=(0, 4, 7, 9),
        bass_harm=5,
        bass_decay=0.5,
        chord=(0, 4, 7, 10),
        chord_steps="x.....x.x.....x.",
        chord_harm=9,
        chord_tilt=1.2,
        chord_decay=0.5,
        drive=1.5,
        lead="x..x....x..x....",
        lead_harm=7,
        lead_tilt=1.3,
        progression=(0, 0, 0, 0, 5, 5, 0, 0, 7, 5, 0, 7),
        scale=(0, 3, 5, 6, 7, 10),
        noise=0.01,
    ),
    "classical": Style(
        bpm=64,
        drums=0.0,
        bass="x.......x.......",
        bass_harm=10,
        bass_tilt=1.8,
        bass_decay=3.0,
        bass_gain=0.4,
        bass_octave=43,
        chord=(0, 4, 7, 12),
        chord_steps="x...............",
        chord_harm=12,
        chord_tilt=1.7,
        chord_attack=0.25,
        chord_decay=4.0,
        chord_gain=0.4,
        lead=_X8,
        lead_harm=3,
        lead_tilt=2.6,
        lead_attack=0.03,
        lead_decay=0.6,
        lead_gain=0.35,
        progression=(0, 5, 7, 0, 9, 5, 7, 7),
        noise=0.001,
    ),
    "country": Style(
        bpm=108,
        kick="x.......x.......",
        snare=_BACKBEAT,
        hat="..x...x...x...x.",
        drums=0.8,
        bass="x.......x.......",
        bass_notes=(0, 7),
        bass_harm=3,
        bass_decay=0.4,
        chord_steps=_X8,
        chord_harm=12,
        chord_tilt=0.9,
        chord_decay=0.25,
        chord_gain=0.3,
        lead="x.x...x.x.x...x.",
        lead_harm=10,
        lead_tilt=1.0,
        lead_decay=0.3,
        progression=(0, 0, 5, 5, 7, 7, 0, 0),
        noise=0.004,
    ),
    "disco": Style(
        bpm=120,
        kick="x...x...x...x...",
        snare=_BACKBEAT,
        hat="..x...x...x...x.",
        hat_decay=0.12,
        bass=_X8,
        bass_notes=(0, 12),
        bass_harm=6,
        bass_tilt=1.1,
        bass_decay=0.2,
        chord=(0, 3, 7, 10),
        chord_steps="..x...x...x...x.",
        chord_harm=12,
        chord_tilt=0.9,
        chord_decay=0.15,
        progression=(0, 0, 5, 5),
        scale=(0, 2, 3, 5, 7, 8, 10),
    ),
    "hiphop": Style(
        bpm=88,
        swing=0.35,
        kick="x......x.x......",
        snare=_BACKBEAT,
        hat="x.xxx.x.x.xxx.x.",
        hat_decay=0.02,
        drums=1.2,
        bass="x......x.x......",
        bass_harm=1,
        bass_decay=0.9,
        bass_gain=0.9,
        bass_octave=28,
        chord=(0, 3, 7, 10),
        chord_steps="x...............",
        chord_harm=4,
        chord_tilt=2.2,
        chord_decay=1.5,
        chord_gain=0.3,
        progression=(0, 0, 8, 8),
        scale=(0, 3, 5, 7, 10),
        noise=0.02,
    ),
    "jazz": Style(
        bpm=150,
        swing=0.67,
        kick="o...............",
        snare="....o.......o...",
        snare_noise_decay=0.25,
        hat="x...x.x.x...x.x.",
        hat_decay=0.35,
        drums=0.5,
        bass="x...x...x...x...",
        bass_notes=(0, 2, 4, 7),
        bass_harm=3,
        bass_tilt=2.2,
        bass_decay=0.4,
        chord=(0, 4, 7, 11),
        chord_steps="x.....x.........",
        chord_harm=6,
        chord_tilt=1.8,
        chord_decay=0.5,
        lead="x.xx..x.x..x.x..",
        lead_harm=5,
        lead_tilt=1.6,
        lead_attack=0.02,
        progression=(2, 7, 0, 0),
        scale=(0, 2, 3, 5, 7, 9, 10),
        noise=0.006,
    ),
    "metal": Style(
        bpm=170,
        kick="x" * 16,
        snare=_BACKBEAT,
        hat=_X8,
        hat_decay=0.2,
        drums=1.1,
        bass=_X8,
        bass_harm=8,
        bass_tilt=1.0,
        bass_decay=0.2,
        chord=(0, 7, 12),
        chord_steps=_X8,
        chord_harm=16,
        chord_tilt=0.7,
        chord_decay=0.3,
        chord_gain=0.5,
        drive=6.0,
        progression=(0, 0, 1, 3),
        scale=(0, 1, 3, 5, 7, 8, 10),
        noise=0.03,
    ),
    "pop": Style(
        bpm=116,
        kick="x.......x.......",
        snare=_BACKBEAT,
        hat=_X8,
        bass=_X8,
        bass_harm=4,
        bass_decay=0.25,
        chord_steps="x.......x.......",
        chord_harm=8,
        chord_attack=0.03,
        chord_decay=1.0,
        lead="x..x..x.x..x..x.",
        lead_harm=9,
        lead_tilt=1.0,
        lead_odd=True,
        lead_gain=0.3,
        progression=(0, 7, 9, 5),
    ),
    "reggae": Style(
        bpm=76,
        kick="........x.......",
        snare="........x.......",
        snare_noise_decay=0.03,
        hat=_X8,
        drums=0.8,
        bass="x.....x...x.....",
        bass_notes=(0, 7, 12),
        bass_harm=2,
        bass_tilt=2.5,
        bass_decay=0.5,
        bass_gain=0.9,
        bass_octave=31,
        chord_steps="..x...x...x...x.",
        chord_harm=10,
        chord_tilt=1.2,
        chord_decay=0.08,
        progression=(0, 5),
        noise=0.008,
    ),
    "rock": Style(
        bpm=128,
        kick="x.....x.x.......",
        snare=_BACKBEAT,
        hat=_X8,
        hat_decay=0.08,
        bass=_X8,
        bass_harm=6,
        bass_decay=0.25,
        chord=(0, 7, 12),
        chord_steps="x.......x.......",
        chord_harm=12,
        chord_tilt=1.0,
        chord_decay=1.5,
        chord_gain=0.45,
        drive=3.0,
        progression=(0, 5, 7, 5),
        noise=0.01,
    ),
}

