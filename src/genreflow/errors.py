"""The errors that the CLI reports as one clear line instead of a traceback."""

from __future__ import annotations


def _collect() -> tuple[type[BaseException], ...]:
    from genreflow.audio import AudioError
    from genreflow.config import ConfigError
    from genreflow.split import SplitError

    errors: list[type[BaseException]] = [ConfigError, AudioError, SplitError,
                                         FileNotFoundError, ValueError]
    try:
        from genreflow.data import DataError

        errors.append(DataError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


class GenreflowError(RuntimeError):
    """A failure with a message meant for the user (bad input, missing prerequisite)."""


USER_ERRORS: tuple[type[BaseException], ...] = (GenreflowError, *_collect())
