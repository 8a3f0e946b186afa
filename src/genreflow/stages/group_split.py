"""Whole groups (artists, albums, sessions) to train / val / test, close to the ratios per label.

A greedy assignment: groups are placed largest first (ties in a seeded order), each in the
split that brings every label's counts closest to its targets (``ratios`` of the label's
clips; squared distance, each label weighted by 1 / its clips, so a large label does not
drown a small one). The last group of a label never goes where it would leave that label
without training clips, or without any validation and test clip, when another split can
take it. Groups may hold several labels. Pure numpy: no refusal here, the caller checks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from genreflow.models.splits import SPLITS

#: added to a split's cost when the group is a label's last and that split would leave the
#: label out of train, or out of both val and test
_STRANDED = 1e12


def assign_groups(counts: pd.DataFrame, ratios: list[float],
                  rng: np.random.Generator) -> pd.Series:
    """The split of every group: ``counts`` has one row per group (its index, sorted) and one
    column per label (clips of that label in the group). Deterministic for ``rng``'s seed."""
    c = counts.to_numpy(dtype=float)
    n = c.sum(axis=0)
    share = np.asarray(ratios, dtype=float) / float(sum(ratios))
    target = np.outer(share, n)                  # split x label
    have = np.zeros_like(target)
    left = n.copy()
    tiebreak = rng.permutation(len(c))
    order = sorted(range(len(c)), key=lambda i: (-c[i].sum(), tiebreak[i]))
    where = np.empty(len(c), dtype=object)
    for i in order:
        left -= c[i]
        best = int(np.argmin([_cost(s, c[i], have, target, n, left) for s in range(len(SPLITS))]))
        have[best] += c[i]
        where[i] = SPLITS[best]
    return pd.Series(where, index=counts.index, name="split")


def _cost(s: int, g: np.ndarray, have: np.ndarray, target: np.ndarray, n: np.ndarray,
          left: np.ndarray) -> float:
    """How much placing group ``g`` in split ``s`` moves the counts away from the targets."""
    before = have[s] - target[s]
    grows = ((before + g) ** 2 - before ** 2) / n
    last = (g > 0) & (left == 0)
    # train: no val or test clip would remain; val or test: no training clip would remain
    stranded = last & ((have[1:].sum(axis=0) if s == 0 else have[0]) == 0)
    return float(grows.sum() + _STRANDED * stranded.sum())
