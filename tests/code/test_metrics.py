"""Per-class metrics, macro-F1 and bootstrap intervals on known confusion matrices."""

from __future__ import annotations

import numpy as np
import pytest

from genreflow.models.metrics import (
    accuracy,
    bootstrap_interval,
    bootstrap_values,
    classification_summary,
    confusion,
    macro_f1,
    metric_names,
    per_class,
    resample_indices,
)


def test_perfect_predictions_score_one_everywhere():
    y = np.array([0, 0, 1, 2, 2, 2])
    s = classification_summary(y, y, ["a", "b", "c"])
    assert s["accuracy"] == 1.0 and s["macro_f1"] == 1.0
    assert s["accuracy_interval"] == (1.0, 1.0) and s["macro_f1_interval"] == (1.0, 1.0)
    assert s["per_class"]["c"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 3}


def test_all_one_class_predicted():
    y = np.array([0, 0, 1, 1, 2, 2])
    cm = confusion(y, np.zeros(6, int), 3)
    assert cm.tolist() == [[2, 0, 0], [2, 0, 0], [2, 0, 0]]
    t = per_class(cm)
    assert t["precision"].tolist() == pytest.approx([1 / 3, 0, 0])  # no prediction: 0, not NaN
    assert t["recall"].tolist() == [1.0, 0.0, 0.0]
    assert t["f1"].tolist() == pytest.approx([0.5, 0, 0])
    assert macro_f1(cm) == pytest.approx(0.5 / 3) and accuracy(cm) == pytest.approx(1 / 3)


def test_unbalanced_data_high_accuracy_low_macro_f1():
    # 95 tracks of the common class, 5 of the rare one; the model always says "common"
    y = np.array([0] * 95 + [1] * 5)
    s = classification_summary(y, np.zeros(100, int), ["common", "rare"])
    assert s["accuracy"] == pytest.approx(0.95)
    assert s["macro_f1"] == pytest.approx((2 * 95 / 195) / 2)  # about 0.49
    assert s["per_class"]["rare"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 5}
    assert s["per_class"]["common"]["support"] == 95


def test_a_class_absent_from_the_split_and_never_predicted_is_left_out_of_macro_f1():
    cm = confusion(np.array([0, 1, 1]), np.array([0, 1, 0]), 3)  # class 2 never seen
    f1 = per_class(cm)["f1"]
    assert macro_f1(cm) == pytest.approx((f1[0] + f1[1]) / 2)
    assert macro_f1(np.zeros((3, 3), int)) == 0.0 and accuracy(np.zeros((2, 2), int)) == 0.0


def test_labels_outside_the_classes_or_unequal_lengths_are_refused():
    with pytest.raises(ValueError, match=r"pred: label indices must be in \[0, 2\)"):
        confusion(np.array([0, 1]), np.array([0, 2]), 2)
    with pytest.raises(ValueError, match="y has 2 labels, pred 1"):
        confusion(np.array([0, 1]), np.array([0]), 2)


def _hits(n: int, rate: float, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).random(n) < rate


@pytest.mark.parametrize("statistic", ["accuracy", "macro_f1"])
def test_interval_contains_the_estimate_and_narrows_with_more_tracks(statistic):
    rng = np.random.default_rng(0)
    widths = []
    for n in (20, 200, 2000):
        y = rng.integers(0, 4, n)
        pred = np.where(rng.random(n) < 0.7, y, rng.integers(0, 4, n))
        cm = confusion(y, pred, 4)
        point = accuracy(cm) if statistic == "accuracy" else macro_f1(cm)
        lo, hi = bootstrap_interval((y, pred), statistic=statistic, n_classes=4)
        assert 0 <= lo <= point <= hi <= 1
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]
    assert widths[2] < 0.06 and widths[0] > 0.2  # 20 tracks cannot tell 0.6 from 0.8


def test_interval_is_deterministic_for_a_seed_and_hits_equal_pairs():
    hits = _hits(300, 0.6)
    a = bootstrap_interval(hits, seed=7)
    assert a == bootstrap_interval(hits, seed=7)
    assert a != bootstrap_interval(hits, seed=8)
    y = np.zeros(300, int)
    assert bootstrap_interval((y, np.where(hits, 0, 1)), seed=7) == a
    lo, hi = bootstrap_interval(hits, level=0.5, seed=7)
    assert a[0] < lo < hi < a[1]  # a lower level, a narrower interval


def test_interval_of_no_tracks_is_everything_and_bad_arguments_are_refused():
    assert bootstrap_interval(np.zeros(0, bool)) == (0.0, 1.0)
    with pytest.raises(ValueError, match="macro_f1 needs"):
        bootstrap_interval(_hits(10, 0.5), statistic="macro_f1")
    with pytest.raises(ValueError, match="statistic"):
        bootstrap_interval(_hits(10, 0.5), statistic="auc")
    with pytest.raises(ValueError, match="level"):
        bootstrap_interval(_hits(10, 0.5), level=1.0)


def test_resampling_is_chunked_within_the_memory_bound_and_general():
    chunks = list(resample_indices(1000, 50, seed=1, max_cells=10_000))
    assert [c.shape for c in chunks] == [(10, 1000)] * 5
    assert all(c.min() >= 0 and c.max() < 1000 for c in chunks)
    # any statistic of the index matrix: here a paired difference of two models' hits
    a, b = _hits(400, 0.8, seed=1), _hits(400, 0.6, seed=2)
    diff = bootstrap_values(lambda idx: a[idx].mean(1) - b[idx].mean(1), 400, n_boot=500)
    assert diff.shape == (500,) and np.quantile(diff, 0.025) > 0
    # thousands of tracks stay quick and bounded: 2000 resamples in chunks of MAX_CELLS
    assert bootstrap_interval(_hits(20_000, 0.7))[0] == pytest.approx(0.7, abs=0.02)


def test_metric_names_are_mlflow_safe_and_distinct():
    names = metric_names(["hip hop", "r+b", "r_b", "drum'n'bass", "música"])
    assert names == {"hip hop": "hip_hop", "r+b": "r_b", "r_b": "r_b_2",
                     "drum'n'bass": "drum_n_bass", "música": "música"}
