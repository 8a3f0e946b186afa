"""Robustness of a trained model to how users send audio (used by ``benchmark.py --robustness``).

Each held-out clip is sent again as a 44.1 kHz stereo WAV, an MP3 (libsndfile's LAME, about
50 kbit/s), an Ogg Opus (about 32 kbit/s: a codec that no training augmentation imitates), an
8 kHz WAV, 12 dB quieter, and as a 10 s excerpt from the middle, through the path the served model uses
(bytes -> input contract -> the kind's front-end). Accuracy per variant and how often the
answer matches the one for the original file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from genreflow.audio.codec import encode  # libsndfile, written in blocks
from genreflow.audio.decode import resample  # soxr HQ, as in the served path

VARIANTS: dict[str, Callable[[np.ndarray, int], bytes]] = {
    "44.1 kHz stereo WAV": lambda y, sr: encode(
        np.stack([resample(y, sr, 44100)] * 2, axis=1), 44100, "WAV", "PCM_16"),
    "MP3": lambda y, sr: encode(y, sr, "MP3"),
    # a codec no augmentation imitates: Opus at 48 kHz, about 32 kbit/s
    "Opus": lambda y, sr: encode(resample(y, sr, 48000), 48000, "OGG", "OPUS",
                                 compression_level=0.9),
    "8 kHz WAV": lambda y, sr: encode(resample(y, sr, 8000), 8000, "WAV", "PCM_16"),
    "12 dB quieter": lambda y, sr: encode(y * 10 ** (-12 / 20), sr, "WAV", "PCM_16"),
    "10 s excerpt": lambda y, sr: encode(
        y[max(0, len(y) // 2 - 5 * sr):len(y) // 2 + 5 * sr], sr, "WAV", "PCM_16"),
}


def evaluate(bundle: Path, paths: list[str], genres: list[str], audio) -> dict:
    """Accuracy on the original files and on every variant, and agreement with the original."""
    from genreflow.audio.decode import decode
    from genreflow.audio.refusal import AudioError
    from genreflow.serving.predictor import GenrePredictor

    pred = GenrePredictor.from_bundle(bundle)

    def answer(source, where: str) -> str | None:
        try:
            probs = pred.probs_from_source(source, audio, where=where)
        except AudioError:
            return None
        return pred.classes[int(np.argmax(probs))]

    original = [answer(p, p) for p in paths]
    by_variant: dict[str, list] = {name: [] for name in VARIANTS}
    for p in paths:  # each clip decoded once for all its copies
        y, sr = decode(p)
        for name, make in VARIANTS.items():
            by_variant[name].append(answer(make(y, sr), f"{p} ({name})"))

    def score(answers: list) -> dict:
        return {
            "accuracy": float(np.mean([a == g for a, g in zip(answers, genres, strict=True)])),
            "same_as_original": float(np.mean([a == o for a, o in zip(answers, original,
                                                                        strict=True)])),
            "refused": answers.count(None),
            "answers": answers}  # per clip, in ``paths`` order: for paired comparisons

    return {"original": score(original), **{n: score(a) for n, a in by_variant.items()}}


def markdown(results: dict[str, list[dict]], key: str = "robustness",
             clips: str = "test clips") -> list[str]:
    """Rows per model: mean accuracy (and agreement) over seeds for each variant."""
    names = ["original", *VARIANTS]
    if not any(key in r for runs in results.values() for r in runs):
        return []
    lines = ["", f"Robustness ({clips}, mean over seeds; accuracy / same answer as the original):",
             "", "| model | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for model, runs in results.items():
        rob = [r[key] for r in runs if key in r]
        if not rob:
            continue
        cells = [f"{np.mean([r[n]['accuracy'] for r in rob]):.3f} / "
                 f"{np.mean([r[n]['same_as_original'] for r in rob]):.2f}" for n in names]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return lines
