"""The one error audio input raises: :class:`AudioError`, with a stable ``reason`` class.

Its own module so that the decoder (:mod:`.decode`) and the sniffer that explains a failed
open (:mod:`.sniff`) both build refusals without importing each other.
"""

from __future__ import annotations

from genreflow.core.errors import GenreflowError
from genreflow.core.safe_text import printable


class AudioError(GenreflowError, ValueError):
    """Audio that cannot be decoded or is refused by the input contract.

    ``reason`` is a stable class (see :data:`genreflow.audio.contract.REASONS`); the message
    is one line, ``"<file or row>: <reason>: <detail>"``.
    """

    def __init__(self, message: str, reason: str = "not_audio", detail: str | None = None):
        super().__init__(message)
        self.reason = reason
        self.detail = detail if detail is not None else message


def refused(where: str, reason: str, detail: str) -> AudioError:
    """An :class:`AudioError` with the one-line message ``where: reason: detail`` (``where``,
    a file name or a row, and ``detail`` with control characters escaped)."""
    detail = printable(detail)
    return AudioError(f"{printable(where)}: {reason}: {detail}", reason, detail)
