"""From raw audio to genre probabilities: a trained model (a bundle, :mod:`genreflow.models.bundle`)
through its model kind's own front-end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from genreflow.audio.contract import audio_blocks
from genreflow.audio.decode import decode, join_blocks, read_ahead
from genreflow.core.config import AudioConfig
from genreflow.kinds import get_kind, load_servable
from genreflow.models.bundle import BUNDLE_META, BUNDLE_MODEL, Preprocess
from genreflow.models.forward import forward


class GenrePredictor:
    """A trained Keras model plus its kind's front-end."""

    def __init__(self, model, pre: Preprocess, where: str = BUNDLE_META):
        self.model = model
        self.pre = pre
        self.kind = get_kind(pre.kind)
        #: the kind's typed front-end, read from the bundle by the kind itself
        self.front_end = self.kind.front_end(pre.front_end, where)

    @classmethod
    def from_bundle(cls, bundle: str | Path) -> GenrePredictor:
        bundle = Path(bundle)
        pre = Preprocess.load(bundle / BUNDLE_META)
        kind = get_kind(pre.kind)
        kind.front_end(pre.front_end, str(bundle / BUNDLE_META))  # a stale bundle: one line
        return cls(load_servable(kind, bundle / BUNDLE_MODEL), pre, str(bundle / BUNDLE_META))

    @property
    def classes(self) -> list[str]:
        return list(self.pre.classes)

    @property
    def sample_rate(self) -> int:
        """The rate raw audio is decoded at for this model's front-end."""
        return self.kind.sample_rate(self.front_end)

    def warm_up(self, seconds: float = 10.0) -> None:
        """Run the whole path once on quiet noise, so that the first request does not pay
        for building the frozen graph, the filter banks and the imports (see docs/benchmarks.md,
        Warm-up)."""
        self.probs_from_audio(self._quiet_noise(seconds))

    def latency_ms(self, seconds: float = 30.0, repeat: int = 5) -> float:
        """Median wall time in ms of :meth:`probs_from_audio` on a ``seconds`` clip, after one
        warm-up call: the model's share of a served request (decoding comes on top), here."""
        y = self._quiet_noise(seconds)
        self.probs_from_audio(y)
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            self.probs_from_audio(y)
            times.append(time.perf_counter() - t0)
        return 1000 * float(np.median(times))

    def _quiet_noise(self, seconds: float) -> np.ndarray:
        """Seeded quiet noise at :attr:`sample_rate`: a stand-in clip for timing and warm-up."""
        noise = np.random.default_rng(0).standard_normal(int(seconds * self.sample_rate))
        return (0.01 * noise).astype(np.float32)

    def probs_from_blocks(self, blocks: Iterable[np.ndarray]) -> np.ndarray:
        """Track probabilities of a mono signal at :attr:`sample_rate` given in blocks: the
        kind's front-end works on each block as it comes, the model runs on the windows."""
        fe = self.front_end
        stream = self.kind.window_stream(fe)
        for block in blocks:
            stream.feed(block)
        return self.kind.aggregate(forward(self.model, stream.windows(), frozen=True), fe)

    def probs_from_audio(self, y: np.ndarray) -> np.ndarray:
        """Track probabilities of a whole mono signal at :attr:`sample_rate`."""
        return self.probs_from_blocks([y])

    def probs_from_source(self, source: str | Path | bytes, audio: AudioConfig,
                          where: str | None = None, *, overlap: bool = True,
                          limit: Callable[[Iterator[np.ndarray]], Iterator[np.ndarray]]
                          | None = None) -> np.ndarray:
        """Decode a file (path or bytes) under the input contract ``audio`` and predict: the
        path of the served model, ``genreflow predict`` and ``register``'s scoring.

        ``overlap``: decode in a background thread while the front-end works on the blocks
        already out (the two overlap, so the whole takes little more than the longer of them;
        see docs/benchmarks.md, Decoding beside the front-end), for when a core is free;
        otherwise decode, then run the front-end
        once over the whole signal. ``limit`` wraps the decoded blocks (the server's
        per-request budget). Refusals raise :class:`~genreflow.audio.refusal.AudioError`."""
        blocks = audio_blocks(source, audio, self.sample_rate, where)
        if limit is not None:
            blocks = limit(blocks)
        return self.probs_from_blocks(read_ahead(blocks) if overlap else [join_blocks(blocks)])

    def predict_file(self, source: str | Path | bytes) -> np.ndarray:
        """Decode any supported audio (path or bytes), resample, and predict, in one thread
        and without the contract's checks (a reference for tests)."""
        y, _ = decode(source, self.sample_rate)
        return self.probs_from_audio(y)
