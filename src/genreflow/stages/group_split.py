"""Whole groups (artists, albums, sessions) to train / val / test, close to the ratios per label.

A greedy assignment: groups are placed largest first (ties in a seeded order), each in the
split that brings every label's counts closest to its targets (``ratios`` of the label's
clips; squared distance, each label weighted by 1 / its clips, so a large label does not
drown a small one). As :func:`~genreflow.stages.split_methods.split_sizes` does for clips, a
label of three groups or more gets one in every split of a positive ratio, and a label of two
gets one in train and one held out: a group never goes where the label's remaining groups
could no longer cover that. Groups may hold several labels, so this is a preference (a
label's groups may be taken by other labels' needs). Pure numpy: the caller checks and refuses.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from genreflow.models.splits import SPLITS

#: added to a split's cost per label whose coverage (above) it would make unreachable
_UNCOVERED = 1e12


def assign_groups(counts: pd.DataFrame, ratios: list[float],
                  rng: np.random.Generator) -> pd.Series:
    """The split of every group: ``counts`` has one row per group (its index, sorted) and one
    column per label (clips of that label in the group). Deterministic for ``rng``'s seed."""
    c = counts.to_numpy(dtype=float)
    n = c.sum(axis=0)
    share = np.asarray(ratios, dtype=float) / float(sum(ratios))
    target = np.outer(share, n)                  # split x label
    have = np.zeros_like(target)
    groups_left = (c > 0).sum(axis=0)
    every_split = groups_left >= 3               # else: train and one of val / test
    tiebreak = rng.permutation(len(c))
    order = sorted(range(len(c)), key=lambda i: (-c[i].sum(), tiebreak[i]))
    where = np.empty(len(c), dtype=object)
    for i in order:
        groups_left -= c[i] > 0
        costs = [_cost(s, c[i], have, target, n) + _UNCOVERED * _uncoverable(
            s, c[i], have, share, groups_left, every_split) for s in range(len(SPLITS))]
        best = int(np.argmin(costs))
        have[best] += c[i]
        where[i] = SPLITS[best]
    return pd.Series(where, index=counts.index, name="split")


def _cost(s: int, g: np.ndarray, have: np.ndarray, target: np.ndarray, n: np.ndarray) -> float:
    """How much placing group ``g`` in split ``s`` moves the counts away from the targets."""
    before = have[s] - target[s]
    return float((((before + g) ** 2 - before ** 2) / n).sum())


def _uncoverable(s: int, g: np.ndarray, have: np.ndarray, share: np.ndarray,
                 groups_left: np.ndarray, every_split: np.ndarray) -> int:
    """Labels of ``g`` whose remaining groups could no longer cover the splits they need
    once ``g`` is in split ``s``."""
    covered = have > 0
    covered[s] |= g > 0
    wanted = covered | (share[:, None] <= 0)     # a split of ratio 0 needs nothing
    missing_all = (~wanted).sum(axis=0)
    missing_two = (~covered[0]).astype(int) + (~(covered[1] | covered[2])).astype(int)
    missing = np.where(every_split, missing_all, missing_two)
    return int(((g > 0) & (missing > groups_left)).sum())
