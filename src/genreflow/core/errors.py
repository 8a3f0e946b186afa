"""genreflow's user errors: failures the user can fix, reported by the CLI as one line.

Every error meant for the user derives from :class:`GenreflowError`; the CLI
prints those as ``error: <message>`` and exits with status 1. Anything else
(a ``ValueError`` from Keras or pandas, say) is a bug and keeps its traceback.
``ConfigError`` (config.py), ``AudioError`` (audio.py) and ``SplitError``
(split.py) subclass it next to the code that raises them; they also remain
``ValueError`` subclasses, so callers that caught ``ValueError`` still work.
:class:`TrialPruned` is no user error: the signal that a study pruned a training run.
"""

from __future__ import annotations

from pathlib import Path


class GenreflowError(Exception):
    """A failure with a message meant for the user (bad input, missing prerequisite)."""


class DataError(GenreflowError):
    """Raw audio is missing, unusable, or could not be obtained; the message says what to do."""


class MissingInputError(GenreflowError, FileNotFoundError):
    """A file or folder an earlier step makes is absent; the message names the step to run."""


class TrialPruned(Exception):
    """A tuning study pruned the trial a training run belongs to: raised by the epoch callback
    that :mod:`genreflow.stages.tune` passes to training, it ends the run early and FINISHED (tagged
    ``trial_state=pruned``); ``tune`` tells Optuna. A control signal, not a user error."""


def require(path: str | Path, how: str) -> Path:
    """``path`` if it exists, else :class:`MissingInputError` ``"<path>: not found; <how>"``."""
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"{path}: not found; {how}")
    return path
