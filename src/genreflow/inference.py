"""From audio (or cached log-mels) to genre probabilities, exactly as in training.

A *model bundle* is a folder with ``model.keras`` and ``preprocess.json``
(model kind, class names, feature parameters, train-split normaliser, data
source). Training writes it; the served pyfunc model and ``genreflow predict``
read it.
"""

from __future__ import annotations

import json
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from genreflow.audio import clip_log_mel, decode, fit_length, log_mel, segments
from genreflow.config import FeaturesConfig
from genreflow.features import normalise

BUNDLE_MODEL = "model.keras"
BUNDLE_META = "preprocess.json"


def forward(model, x: np.ndarray, batch: int = 64) -> np.ndarray:
    """Softmax outputs of ``model`` for ``x`` in batches, through a compiled graph (one
    trace per model and input shape; half the time of an eager call on a 30 s clip)."""
    call = _compiled(model)
    return np.concatenate([np.asarray(call(x[i:i + batch]))
                           for i in range(0, len(x), batch)])


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compiled(model):
    """``model(x, training=False)`` as a ``tf.function`` that accepts any batch size
    (cached per model, without keeping the model alive)."""
    import tensorflow as tf

    call = _COMPILED.get(model)
    if call is None:
        ref = weakref.ref(model)
        spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
        call = tf.function(lambda x: ref()(x, training=False), input_signature=[spec])
        _COMPILED[model] = call
    return call


def windows(spec: np.ndarray, kind: str, feat: FeaturesConfig) -> np.ndarray:
    """Model inputs for one normalised log-mel ``(n_mels, frames)``: ``(n, n_mels, w, 1)``.

    Whole-clip models (cnn, inception) see consecutive clip-length windows;
    the segment model sees overlapping segments. Probabilities are averaged
    over the windows of a track.
    """
    if kind == "segcnn":
        x = segments(spec, feat.segment_frames, feat.segment_hop_frames)
    else:
        n = max(1, spec.shape[-1] // feat.clip_frames)
        if spec.shape[-1] < feat.clip_frames:
            spec = np.pad(spec, ((0, 0), (0, feat.clip_frames - spec.shape[-1])))
        x = np.stack([spec[:, i * feat.clip_frames:(i + 1) * feat.clip_frames] for i in range(n)])
    return x[..., None].astype(np.float32)


def audio_spectrogram(y: np.ndarray, feat: FeaturesConfig) -> np.ndarray:
    """Log-mel of a decoded signal: exactly the training transform for clips up to
    ``clip_seconds`` (cropped/padded), the whole signal for longer ones."""
    n = int(round(feat.clip_seconds * feat.sample_rate))
    if len(y) <= n:
        return clip_log_mel(fit_length(y, n), feat)
    return log_mel(y, feat)


@dataclass
class Preprocess:
    """Everything needed to turn audio into model inputs."""

    kind: str
    classes: list[str]
    features: dict
    stats: dict
    data_source: str

    @property
    def feat(self) -> FeaturesConfig:
        return FeaturesConfig(**self.features)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> Preprocess:
        return cls(**json.loads(Path(path).read_text()))


class GenrePredictor:
    """A trained Keras model plus its preprocessing."""

    def __init__(self, model, pre: Preprocess):
        self.model = model
        self.pre = pre
        self.feat = pre.feat

    @property
    def classes(self) -> list[str]:
        return list(self.pre.classes)

    @property
    def sample_rate(self) -> int:
        """The rate :meth:`probs_from_audio` expects."""
        return int(self.feat.sample_rate)

    @classmethod
    def from_bundle(cls, bundle: str | Path) -> GenrePredictor:
        import keras

        import genreflow.models  # noqa: F401  (registers custom layers)

        bundle = Path(bundle)
        model = keras.saving.load_model(bundle / BUNDLE_MODEL)
        return cls(model, Preprocess.load(bundle / BUNDLE_META))

    def probs_from_spec(self, spec_norm: np.ndarray) -> np.ndarray:
        """Track probabilities from a normalised log-mel: the mean over its windows."""
        return forward(self.model, windows(spec_norm, self.pre.kind, self.feat)).mean(axis=0)

    def probs_from_audio(self, y: np.ndarray) -> np.ndarray:
        """Track probabilities from a mono signal at ``feat.sample_rate``."""
        spec = normalise(audio_spectrogram(y, self.feat), self.pre.stats)
        return self.probs_from_spec(spec)

    def predict_file(self, source: str | Path | bytes) -> np.ndarray:
        """Decode any supported audio (path or bytes), resample, and predict."""
        y, _ = decode(source, self.feat.sample_rate)
        return self.probs_from_audio(y)


def track_probabilities(model, x_clips: np.ndarray, kind: str, feat: FeaturesConfig) -> np.ndarray:
    """Track-level probabilities for normalised clip log-mels ``(n, n_mels, frames)``."""
    if len(x_clips) == 0:
        return np.zeros((0, model.output_shape[-1]), np.float32)
    per_track = [windows(x, kind, feat) for x in x_clips]
    counts = [len(w) for w in per_track]
    probs = forward(model, np.concatenate(per_track))
    bounds = np.cumsum([0, *counts])
    return np.stack([probs[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
