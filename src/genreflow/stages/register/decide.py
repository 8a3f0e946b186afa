"""register's rule: does the candidate replace the champion?

On the same data, split and classes, both models are scored on the same validation tracks,
so their outcomes pair up track by track. The gain in accuracy (candidate minus champion)
gets a paired bootstrap interval (:mod:`.interval`): the challenger replaces the champion
only when the interval's lower end is above 0. If the interval contains 0, the champion
stays, whatever the two point estimates and losses say: on a small validation split a
difference of a track or two is noise (the issue's case: 10 validation clips, segcnn 0.80
over musicnn 0.60 on validation, 0.50 against 0.70 on test). A champion of other data,
another split or other classes is not compared and never blocks.

A champion that another ``register`` set while this one was scoring is compared from what
its version records: paired, from its per-track hits tag; unpaired (two binomials), from its
accuracy and number of tracks, when it recorded none (an older version, or a split too long
for the tag). The unpaired interval is the wider one for models that err on the same
tracks, so the fallback keeps the champion more often, never less.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mlflow import MlflowClient

from genreflow.models.metrics import WIDE_INTERVAL
from genreflow.stages.register.champion import Champion, current_champion, recorded_champion
from genreflow.stages.register.interval import Interval, Resampling, paired_gain, unpaired_gain
from genreflow.stages.register.score import Score

Log = Callable[[str], None]

#: Below this many validation tracks one track moves accuracy by more than 3 points and a
#: bootstrap interval is itself rough: too few to choose between models.
MIN_TRACKS = 30
#: A gain's interval wider than this cannot tell apart models 20 points of accuracy apart
#: (the same limit train, tune and the report warn at).
MAX_WIDTH = WIDE_INTERVAL

# which rule decided (``basis``)
NO_CHAMPION = "no champion"
NOT_COMPARED = "champion not comparable"
ALREADY = "already the champion"
PAIRED = "paired bootstrap"
UNPAIRED = "unpaired bootstrap"


@dataclass
class Ruling:
    """Where the alias goes, why, which rule decided (``basis``) and, when the two models
    were compared, the gain's interval."""

    alias: str
    reason: str
    basis: str
    gain: Interval | None = None


@dataclass
class Verdict:
    """The ruling, and the champion it was made against."""

    alias: str
    reason: str
    champion: Champion
    basis: str = ""
    gain: Interval | None = None


def gain_interval(candidate: Score, champion: Score, res: Resampling) -> Interval:
    """The candidate's gain over the champion: paired on the tracks both were scored on when
    both carry per-track hits, unpaired from the two accuracies otherwise."""
    common = sorted(candidate.hits.keys() & champion.hits.keys())
    if common:
        return paired_gain([candidate.hits[k] for k in common],
                           [champion.hits[k] for k in common], res)
    return unpaired_gain(candidate.accuracy, candidate.n_tracks, champion.accuracy,
                         champion.n_tracks, res)


def decide(candidate: Score, champion: Score | None, mismatch: str | None = None,
           res: Resampling | None = None) -> Ruling:
    """Champion/challenger rule on a shared validation split: the candidate wins only when
    its gain's interval is above 0; a champion that cannot be compared never blocks."""
    if mismatch is not None:
        return Ruling("champion", mismatch, NOT_COMPARED)
    if champion is None:
        return Ruling("champion", "there was no champion yet", NO_CHAMPION)
    res = res or Resampling()
    gain = gain_interval(candidate, champion, res)
    ours = f"{candidate.text()} (loss {candidate.loss:.4f})"
    theirs = f"{champion.text()} (loss {champion.loss:.4f})"
    where = (f"on the same {gain.n_tracks} validation tracks, from raw audio" if gain.paired
             else f"(its score on {champion.n_tracks} tracks, without per-track outcomes: "
                  "compared unpaired)")
    interval = (f"gain {gain.estimate:+.4f}, {res.confidence:.0%} interval "
                f"[{gain.lo:+.4f}, {gain.hi:+.4f}]")
    basis = PAIRED if gain.paired else UNPAIRED
    if gain.lo > 0:
        return Ruling("champion", f"validation {ours} beats the champion's {theirs} {where}: "
                      f"{interval}, above 0", basis, gain)
    return Ruling("challenger", f"validation {ours} does not beat the champion's {theirs} "
                  f"{where}: {interval} {'contains' if gain.hi >= 0 else 'is below'} 0, so "
                  "the champion stays", basis, gain)


def decide_alias(client: MlflowClient, name: str, metric: str, candidate_val: Score,
                 champion: Champion, run_id: str, ident: dict, log: Log = print, *,
                 keys: Sequence[str] = (), res: Resampling | None = None) -> Verdict:
    """The rule against ``champion``; if another ``register`` moved ``@champion`` meanwhile,
    against the version it holds now, from the raw-audio scores that version records (its
    hits over ``keys``, this split's sorted validation clip ids, when it recorded them)."""
    if champion.already:
        return Verdict("champion", f"run {run_id} is already the champion (version "
                       f"{champion.number}); nothing new to register", champion, ALREADY)
    ruling = decide(candidate_val, champion.score, champion.mismatch, res)
    now = current_champion(client, name)
    if now is None or str(now.version) == champion.number:
        return Verdict(ruling.alias, ruling.reason, champion, ruling.basis, ruling.gain)
    moved = recorded_champion(now, ident, candidate_val, metric, keys)
    ruling = decide(candidate_val, moved.score, moved.mismatch, res)
    log(f"the champion moved to version {moved.number} while this run was scoring: "
        f"{ruling.reason}")
    return Verdict(ruling.alias, ruling.reason, moved, ruling.basis, ruling.gain)


def small_split_warning(candidate: Score, gain: Interval | None) -> str | None:
    """Why this validation split is too small to choose between models, if it is: fewer
    than :data:`MIN_TRACKS` tracks, or an interval (the gain's; without a comparison, the
    candidate's accuracy's) wider than :data:`MAX_WIDTH`."""
    n = gain.n_tracks if gain is not None else candidate.n_tracks
    width = gain.width if gain is not None else (
        None if candidate.lo is None or candidate.hi is None else candidate.hi - candidate.lo)
    what = "the gain's" if gain is not None else "the candidate's accuracy"
    why = []
    if n < MIN_TRACKS:
        why.append(f"{n} validation tracks (fewer than {MIN_TRACKS})")
    if width is not None and width > MAX_WIDTH:
        why.append(f"{what} interval is {width:.2f} wide (over {MAX_WIDTH:g})")
    if not why:
        return None
    return (f"the validation split is too small to choose between models: {' and '.join(why)}; "
            "differences inside the interval are noise (more data, or a larger validation "
            "share in split.ratios, narrows it)")
