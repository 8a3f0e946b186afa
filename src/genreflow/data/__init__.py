"""Raw audio into ``data/``: real GTZAN (folder, archive or URL) or a synthetic stand-in.

- :mod:`.acquire` brings GTZAN in (:func:`get_data`), using :mod:`.archive` (tar/zip,
  download with progress and SHA-256) and :mod:`.layout` (finding the genre folders);
- :mod:`.synth` generates the synthetic set (:class:`SynthSpec`, :func:`synth`) from the
  class styles in :mod:`.styles`;
- :mod:`.prepare` picks one of the two for ``make repro`` (:func:`prepare_default`) and
  runs ``dvc add`` (:func:`track_with_dvc`).

Every writer builds the new tree in a hidden sibling of ``dest`` and swaps it in with a
rename (:mod:`.staging`), so a failure at any point leaves the previous data untouched.
``dest/SOURCE.json`` records where the audio came from; every later stage reports it, so
synthetic results can never pass for GTZAN results.
"""

from __future__ import annotations

from genreflow.core.errors import DataError
from genreflow.data.acquire import GTZAN_URL, get_data
from genreflow.data.prepare import prepare_default, track_with_dvc
from genreflow.data.synth import SynthSpec, synth

__all__ = [
    "GTZAN_URL",
    "DataError",
    "SynthSpec",
    "get_data",
    "prepare_default",
    "synth",
    "track_with_dvc",
]
