"""The tune sampler: draws seeded by trial number, so studies resume and share exactly."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from genreflow.tracking.sampler import TrialSeededTPE

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _draw(trial: optuna.Trial) -> float:
    opt = trial.suggest_categorical("optimizer", ["sgd", "adam", "rmsprop", "adagrad"])
    lr = trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
    return lr * (2 if opt == "adam" else 1)


def _params(study: optuna.Study) -> list[dict]:
    return [t.params for t in sorted(study.trials, key=lambda t: t.number)]


@pytest.mark.parametrize("n_trials", [3, 8])  # start-up (random) draws, then TPE's
def test_a_resumed_study_draws_what_an_uninterrupted_one_would(tmp_path: Path, n_trials: int):
    whole = optuna.create_study(sampler=TrialSeededTPE(42), direction="maximize")
    whole.optimize(_draw, n_trials=n_trials)

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    first = optuna.create_study(storage=storage, study_name="s", sampler=TrialSeededTPE(42),
                                direction="maximize")
    first.optimize(_draw, n_trials=2)
    resumed = optuna.load_study(storage=storage, study_name="s", sampler=TrialSeededTPE(42))
    resumed.optimize(_draw, n_trials=n_trials - 2)
    assert _params(resumed) == _params(whole)


def test_workers_started_together_draw_different_settings(tmp_path: Path):
    """Two processes' samplers (same seed) on one storage: each asks before either tells."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(storage=storage, study_name="s", direction="maximize")
    workers = [optuna.load_study(storage=storage, study_name="s", sampler=TrialSeededTPE(42))
               for _ in range(2)]
    trials = [w.ask() for w in workers]
    drawn = [(_draw(t), t.params) for t in trials]
    assert {t.number for t in trials} == {0, 1}
    assert drawn[0][1] != drawn[1][1]
    for w, t, (value, _) in zip(workers, trials, drawn, strict=True):
        w.tell(t, value)
