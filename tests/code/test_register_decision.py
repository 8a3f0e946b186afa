"""register's rule, pure: the paired bootstrap of the gain, the decision, the small-split
warning, the hits a version records. No MLflow (tests/model/test_register.py has it)."""

from __future__ import annotations

import numpy as np
import pytest

from genreflow.core.config import ConfigError, config_from_dict
from genreflow.stages.register.decide import (
    MIN_TRACKS,
    NO_CHAMPION,
    NOT_COMPARED,
    PAIRED,
    UNPAIRED,
    decide,
    small_split_warning,
)
from genreflow.stages.register.interval import (
    Resampling,
    accuracy_interval,
    paired_gain,
    unpaired_gain,
)
from genreflow.stages.register.score import MAX_HITS_TAG, Score, hits_from_tag, hits_tag


def scored(outcomes: str, loss: float = 0.5, prefix: str = "clip") -> Score:
    """A score from ``1``/``0`` per track (track ``i`` keyed ``<prefix>.<i>``)."""
    hits = {f"{prefix}.{i:03d}": c == "1" for i, c in enumerate(outcomes)}
    lo, hi = accuracy_interval(sum(hits.values()), len(hits), Resampling())
    return Score(sum(hits.values()) / len(hits), loss, len(hits), lo, hi, hits=hits)


def test_the_issues_example_stays_inside_the_interval():
    """10 validation clips, 0.80 against 0.60: a gain of two tracks is not a gain."""
    champion, candidate = scored("1111110000"), scored("1111111100")
    ruling = decide(candidate, champion)
    assert (ruling.alias, ruling.basis) == ("challenger", PAIRED)
    assert ruling.gain.estimate == pytest.approx(0.2) and ruling.gain.paired
    assert ruling.gain.lo <= 0 < ruling.gain.hi and ruling.gain.n_tracks == 10
    assert "does not beat the champion's 0.6000" in ruling.reason
    assert "on the same 10 validation tracks" in ruling.reason
    assert "95% interval [+0.0000, +0.5000] contains 0, so the champion stays" in ruling.reason


def test_a_clearly_better_candidate_moves_and_a_worse_one_does_not():
    champion = scored("10" * 50)             # 0.50 on 100 tracks
    candidate = scored("11" * 40 + "10" * 10)  # 0.90: 40 more tracks right, none fewer
    moved = decide(candidate, champion)
    assert moved.alias == "champion" and moved.gain.lo > 0.25, moved.reason
    assert "beats the champion's 0.5000" in moved.reason and "above 0" in moved.reason
    worse = decide(champion, candidate)
    assert worse.alias == "challenger" and worse.gain.hi < 0 and "is below 0" in worse.reason


def test_ties_stay_whatever_the_loss():
    """Equal accuracy no longer goes to the lower loss: a gain of 0 is inside any interval."""
    ruling = decide(scored("1100", loss=0.1), scored("1100", loss=0.9))
    assert ruling.alias == "challenger"
    assert (ruling.gain.lo, ruling.gain.hi) == (0.0, 0.0)


def test_a_champion_of_other_data_or_none_never_blocks():
    better = scored("1" * 20)
    ruling = decide(scored("0" * 20), better, "the champion was trained on other data")
    assert (ruling.alias, ruling.basis, ruling.gain) == ("champion", NOT_COMPARED, None)
    assert ruling.reason == "the champion was trained on other data"
    first = decide(scored("0" * 20), None)
    assert (first.alias, first.basis, first.reason) == ("champion", NO_CHAMPION,
                                                        "there was no champion yet")


def test_deterministic_and_seeded():
    a, b = scored("1101101110111011"), scored("1001100110101001")
    assert decide(a, b) == decide(a, b)
    assert paired_gain([True, False] * 7, [False, True, True] * 4 + [True, True],
                       Resampling(seed=1)) == paired_gain(
        [True, False] * 7, [False, True, True] * 4 + [True, True], Resampling(seed=1))
    assert accuracy_interval(7, 10, Resampling()) == accuracy_interval(7, 10, Resampling())


def test_paired_only_on_the_tracks_both_scored_else_unpaired():
    candidate, champion = scored("1111"), scored("0000")
    del champion.hits["clip.000"]  # a clip the champion's run skipped
    assert decide(candidate, champion).gain.n_tracks == 3
    no_outcomes = Score(champion.accuracy, 0.5, 4)  # a recorded score: accuracy and n only
    ruling = decide(candidate, no_outcomes)
    assert ruling.basis == UNPAIRED and not ruling.gain.paired
    assert "without per-track outcomes: compared unpaired" in ruling.reason


def test_counts_resampling_matches_resampling_tracks():
    """The bootstrap draws win/loss/tie counts; drawing track indices gives the same interval."""
    rng = np.random.default_rng(0)
    cand, champ = rng.random(60) < 0.7, rng.random(60) < 0.55
    res = Resampling(resamples=20000, confidence=0.9)
    fast = paired_gain(cand, champ, res)
    idx = rng.integers(0, 60, size=(20000, 60))
    slow = np.quantile((cand[idx].astype(int) - champ[idx]).mean(axis=1), [0.05, 0.95])
    assert fast.estimate == pytest.approx(cand.mean() - champ.mean())
    assert fast.lo == pytest.approx(slow[0], abs=1.5 / 60)
    assert fast.hi == pytest.approx(slow[1], abs=1.5 / 60)


def test_unpaired_is_no_narrower_than_paired_for_models_that_agree():
    cand, champ = [True] * 70 + [False] * 30, [True] * 60 + [False] * 40
    paired = paired_gain(cand, champ, Resampling())
    unpaired = unpaired_gain(0.7, 100, 0.6, 100, Resampling())
    assert paired.lo > 0 >= unpaired.lo and unpaired.width > paired.width
    assert unpaired_gain(0.7, 0, 0.6, 10, Resampling()).lo == -1.0  # no tracks: no claim


def test_small_split_warning():
    few = decide(scored("1111111100"), scored("1111110000"))
    warning = small_split_warning(scored("1111111100"), few.gain)
    assert f"10 validation tracks (fewer than {MIN_TRACKS})" in warning
    assert "the gain's interval is 0.50 wide (over 0.2)" in warning
    many = scored("1" * 150 + "0" * 50)
    assert small_split_warning(many, decide(many, scored("1" * 150 + "0" * 50)).gain) is None
    # no champion to compare with: the candidate's own interval and size
    assert "fewer than" in small_split_warning(scored("1" * 12), None)
    wide = scored("10" * 20)  # 40 tracks, accuracy interval about 0.3 wide
    assert "the candidate's accuracy interval" in small_split_warning(wide, None)


def test_a_versions_hits_tag_round_trips_over_the_same_clips_only():
    score = scored("1011")
    del score.hits["clip.002"]
    keys = sorted(score.hits) + ["clip.002"]
    keys.sort()
    tag = hits_tag(score, keys)
    assert tag == "10-1"
    assert hits_from_tag(tag, keys) == score.hits
    assert hits_from_tag(tag, keys[:3]) == {}  # another split's clips: nothing to pair
    assert hits_from_tag("10x1", keys) == {} and hits_from_tag(None, keys) == {}
    long = [f"c{i}" for i in range(MAX_HITS_TAG + 1)]
    assert hits_tag(Score(1.0, 0.0, len(long), hits=dict.fromkeys(long, True)), long) is None


@pytest.mark.parametrize("field, value, message", [
    ("bootstrap", 10, "register.bootstrap: expected a whole number of resamples from 100"),
    ("confidence", 1.0, "register.confidence: expected a number between 0 and 1"),
    ("confidence", "high", "register.confidence: expected a number"),
])
def test_register_settings_are_checked(field, value, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"register": {field: value}})
