"""From raw audio to genre probabilities, through the model kind's own front-end.

A *model bundle* is a folder with ``model.keras`` and ``preprocess.json`` (model
kind, class names, the kind's front-end description, data source). Training
writes it; the served pyfunc model, ``register`` and ``genreflow predict`` read it.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from genreflow.audio import decode, join_blocks, read_ahead
from genreflow.config import AudioConfig
from genreflow.contract import audio_blocks

BUNDLE_MODEL = "model.keras"
BUNDLE_META = "preprocess.json"


def forward(model, x: np.ndarray | list[np.ndarray], batch: int = 64, *,
            frozen: bool = False) -> np.ndarray:
    """Softmax outputs of ``model`` for ``x`` in batches, through a compiled graph (one
    trace per model and input shape; half the time of an eager call on a 30 s clip).

    ``frozen`` is for a model whose weights no longer change (a loaded bundle): its weights
    become graph constants, so TensorFlow's graph optimiser folds each batch normalisation
    into the convolution before it (segcnn on a 30 s clip: 18 -> 13 ms; outputs equal to
    float32 rounding). Training code must not freeze: the next epoch would not be seen.
    """
    if isinstance(x, list):  # a model with several inputs: eager calls on aligned batches
        return np.concatenate([np.asarray(model([a[i:i + batch] for a in x], training=False))
                               for i in range(0, len(x[0]), batch)])
    if len(x) == 0:
        return np.zeros((0, model.output_shape[-1]), np.float32)
    call = _compiled(model, frozen)
    return np.concatenate([np.asarray(call(x[i:i + batch]))
                           for i in range(0, len(x), batch)])


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compiled(model, frozen: bool):
    """``model(x, training=False)`` as a graph that accepts any batch size (cached per model
    and mode, without keeping the model alive)."""
    import tensorflow as tf

    calls = _COMPILED.setdefault(model, {})
    if frozen not in calls:
        ref = weakref.ref(model)
        spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
        graph = tf.function(lambda x: ref()(x, training=False), input_signature=[spec])
        if frozen:
            from tensorflow.python.framework.convert_to_constants import (
                convert_variables_to_constants_v2,
            )

            constant = convert_variables_to_constants_v2(graph.get_concrete_function())
            # called through a tf.function of its own: calling the frozen function directly
            # binds its arguments by a failing path first (3 ms of error text per call)
            graph = tf.function(lambda x: constant(x)[0], input_signature=[spec])
        calls[frozen] = graph
    return calls[frozen]


def mean_by_track(probs: np.ndarray, counts: list[int]) -> np.ndarray:
    """Average consecutive rows of ``probs``: ``counts[i]`` rows belong to track ``i``."""
    bounds = np.cumsum([0, *counts])
    return np.stack([probs[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:],
                                                              strict=True)])


@dataclass
class Preprocess:
    """Everything needed to turn audio into model inputs (``preprocess.json``)."""

    kind: str
    classes: list[str]
    front_end: dict
    data_source: str

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> Preprocess:
        from genreflow.errors import GenreflowError

        raw = json.loads(Path(path).read_text())
        if "front_end" not in raw:
            raise GenreflowError(f"{path}: a bundle from an older genreflow (no 'front_end'); "
                                 "retrain the model (`dvc repro` or `genreflow train KIND`)")
        raw.pop("extra", None)  # an always-empty field that earlier bundles carry
        return cls(**raw)


class GenrePredictor:
    """A trained Keras model plus its kind's front-end."""

    def __init__(self, model, pre: Preprocess):
        from genreflow.kinds import get_kind

        self.model = model
        self.pre = pre
        self.kind = get_kind(pre.kind)

    @classmethod
    def from_bundle(cls, bundle: str | Path) -> GenrePredictor:
        from genreflow.kinds import get_kind

        bundle = Path(bundle)
        pre = Preprocess.load(bundle / BUNDLE_META)
        return cls(get_kind(pre.kind).load_servable(bundle / BUNDLE_MODEL), pre)

    @property
    def classes(self) -> list[str]:
        return list(self.pre.classes)

    @property
    def sample_rate(self) -> int:
        """The rate raw audio is decoded at for this model's front-end."""
        return self.kind.sample_rate(self.pre.front_end)

    def warm_up(self, seconds: float = 10.0) -> None:
        """Run the whole path once on quiet noise, so that the first request does not pay
        for building the frozen graph, the filter banks and the imports (segcnn: 0.6 s -> 0.1 s)."""
        self.probs_from_audio(self._quiet_noise(seconds))

    def latency_ms(self, seconds: float = 30.0, repeat: int = 5) -> float:
        """Median wall time in ms of :meth:`probs_from_audio` on a ``seconds`` clip, after one
        warm-up call: the model's share of a served request (decoding comes on top), here."""
        import time

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
        fe = self.pre.front_end
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
        already out (a 30 s Ogg clip: decode 13 ms, then spectrogram and model 28 ms, become
        about 30 ms in all), for when a core is free; otherwise decode, then run the front-end
        once over the whole signal. ``limit`` wraps the decoded blocks (the server's
        per-request budget). Refusals raise :class:`~genreflow.audio.AudioError`."""
        blocks = audio_blocks(source, audio, self.sample_rate, where)
        if limit is not None:
            blocks = limit(blocks)
        return self.probs_from_blocks(read_ahead(blocks) if overlap else [join_blocks(blocks)])

    def predict_file(self, source: str | Path | bytes) -> np.ndarray:
        """Decode any supported audio (path or bytes), resample, and predict, in one thread
        and without the contract's checks (a reference for tests)."""
        y, _ = decode(source, self.sample_rate)
        return self.probs_from_audio(y)
