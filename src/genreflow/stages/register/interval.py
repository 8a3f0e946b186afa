"""Bootstrap intervals over validation tracks: how far a validation score can be trusted.

Resampling ``n`` tracks with replacement, an accuracy depends only on how many hits are
drawn, and a paired gain only on how many tracks the candidate wins, loses and ties. So the
bootstrap draws those counts (binomial, multinomial), which is the same distribution as
drawing track indices, in time and memory that do not grow with the number of tracks.
Each interval starts from its own generator of the same seed: the same scores always give
the same interval, whatever was computed before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from genreflow.models import metrics
from genreflow.models.metrics import SEED, percentile_interval


@dataclass(frozen=True)
class Resampling:
    """How intervals are drawn: ``resamples`` bootstrap draws, two-sided ``confidence``,
    generator ``seed``."""

    resamples: int = 2000
    confidence: float = 0.95
    seed: int = SEED

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    def bounds(self, draws: np.ndarray) -> tuple[float, float]:
        """The percentile interval of ``draws`` (:func:`genreflow.models.metrics.percentile_interval`)."""
        return percentile_interval(draws, self.confidence)


@dataclass(frozen=True)
class Interval:
    """A gain in validation accuracy (candidate minus champion), its bootstrap interval,
    the tracks it rests on and whether both models' outcomes were paired track by track."""

    estimate: float
    lo: float
    hi: float
    n_tracks: int
    paired: bool

    @property
    def width(self) -> float:
        return self.hi - self.lo


def accuracy_interval(hits: int, n: int, res: Resampling) -> tuple[float, float]:
    """The bootstrap interval of an accuracy of ``hits`` out of ``n`` tracks, drawn as
    training draws it (:func:`genreflow.models.metrics.accuracy_interval`)."""
    if n <= 0:
        return 0.0, 0.0
    return metrics.accuracy_interval(hits, n, res.resamples, res.confidence, res.seed)


def paired_gain(candidate: Sequence[bool], champion: Sequence[bool], res: Resampling) -> Interval:
    """The gain of ``candidate`` over ``champion`` (hits on the same tracks, in the same
    order), resampling tracks with both models' outcomes together."""
    cand, champ = np.asarray(candidate, dtype=bool), np.asarray(champion, dtype=bool)
    n = len(cand)
    if n == 0:
        return Interval(0.0, 0.0, 0.0, 0, paired=True)
    wins, losses = int(np.sum(cand & ~champ)), int(np.sum(~cand & champ))
    ties = n - wins - losses
    counts = res.rng().multinomial(n, [wins / n, losses / n, ties / n], size=res.resamples)
    lo, hi = res.bounds((counts[:, 0] - counts[:, 1]) / n)
    return Interval((wins - losses) / n, lo, hi, n, paired=True)


def unpaired_gain(candidate_acc: float, candidate_n: int, champion_acc: float, champion_n: int,
                  res: Resampling) -> Interval:
    """The gain from two accuracies alone (each of its own number of tracks), resampled
    independently: wider than the paired interval when the two models err on the same
    tracks, as models of the same data mostly do, so it decides conservatively."""
    if candidate_n <= 0 or champion_n <= 0:
        return Interval(candidate_acc - champion_acc, -1.0, 1.0, 0, paired=False)
    rng = res.rng()
    ours = rng.binomial(candidate_n, min(max(candidate_acc, 0.0), 1.0), res.resamples)
    theirs = rng.binomial(champion_n, min(max(champion_acc, 0.0), 1.0), res.resamples)
    lo, hi = res.bounds(ours / candidate_n - theirs / champion_n)
    return Interval(candidate_acc - champion_acc, lo, hi, min(candidate_n, champion_n),
                    paired=False)
