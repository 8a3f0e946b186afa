"""The tune study's sampler: TPE whose random draws are seeded by the trial's number.

Optuna numbers a study's trials in its storage, so the numbers are unique even when
several processes (or machines) work on one study at once. Seeding each trial's draws by
``seed + trial.number`` keeps a study reproducible (a resumed study draws what an
uninterrupted one would) and keeps concurrent workers from proposing the same settings:
a sampler seeded once per process would give two workers started together the same
start-up trials. The "constant liar" makes TPE treat trials still running elsewhere as
bad, so workers also spread out after the start-up phase. Nothing runs at import.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import optuna

if TYPE_CHECKING:
    from collections.abc import Sequence

    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial, TrialState


class TrialSeededTPE(optuna.samplers.BaseSampler):
    """A fresh :class:`~optuna.samplers.TPESampler` per trial, seeded ``seed + number``.

    TPE keeps no state between trials besides its random generator (it reads the
    finished trials from the storage each time), so a fresh one per trial loses nothing.
    """

    def __init__(self, seed: int, n_startup_trials: int = 5) -> None:
        self._seed = seed
        self._n_startup = n_startup_trials
        self._tpe = self._make(seed)

    def _make(self, seed: int) -> optuna.samplers.TPESampler:
        with warnings.catch_warnings():  # constant_liar is "experimental"
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=self._n_startup,
                                              constant_liar=True)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._tpe = self._make(self._seed + trial.number)
        self._tpe.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study,
                                    trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._tpe.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._tpe.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._tpe.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._tpe.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._tpe.reseed_rng()
