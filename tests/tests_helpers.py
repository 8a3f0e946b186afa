"""Small helpers shared by test modules (importable because tests/ is on sys.path)."""

from __future__ import annotations

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
