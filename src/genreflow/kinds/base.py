"""The model-kind interface: what every kind of model declares, once, in its own module.

A *kind* (cnn, segcnn, inception, musicnn, ...) is a :class:`ModelKind` subclass
registered with :func:`genreflow.kinds.register_kind`. It declares

* ``Config``: its ``train.<name>`` section of ``params.yaml`` (a :class:`KindConfig`);
* :meth:`ModelKind.prepare`: the network to fit, the servable model, the data
  ``fit`` reads and track-level probabilities per split (training and evaluation);
* :meth:`ModelKind.front_end`: what the bundle needs to turn raw audio into model
  inputs, and :meth:`ModelKind.audio_windows`: that transform (serving and predict).

Training, tuning, registration and serving go through these methods only. Modules
here import no TensorFlow at import time (configs are parsed by every stage).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from genreflow.audio.decode import join_blocks
from genreflow.core.config import OPTIMIZERS, ConfigError
from genreflow.models.featurestore import load_features

if TYPE_CHECKING:
    from genreflow.core.config import Config

def check_whole(name: str, value: Any, minimum: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name}: expected a whole number >= {minimum}, got {value!r}")


def check_share(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"{name}: expected a share in [0, 1], got {value!r}")


@dataclass
class KindConfig:
    """Settings every kind has (its ``train.<kind>`` section adds its own)."""

    optimizer: str = "sgd"
    learning_rate: float = 1e-3
    dropout: float = 0.3
    lr_plateau: int = 0  # epochs without val_loss gain before the lr is cut x0.3 (0 = never)

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer: expected one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate: expected a positive number, got {self.learning_rate}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout: expected a number in [0, 1), got {self.dropout}")
        check_whole("lr_plateau", self.lr_plateau)


@dataclass
class TrainContext:
    """What a kind may read while preparing a training run."""

    cfg: Config
    features_dir: Path
    seed: int
    batch_size: int
    log: Callable[[str], None] = print
    _fs: Any = None

    @property
    def embeddings_dir(self) -> Path:
        """Where the ``embed`` stage's outputs are: beside the features folder."""
        return Path(self.features_dir).parent / "embeddings"

    @property
    def features(self):
        """The cached log-mel features (loaded on first use)."""
        if self._fs is None:
            self._fs = load_features(self.features_dir)
        return self._fs


@dataclass
class Labels:
    """Track ids and integer labels of one split."""

    ids: np.ndarray
    y: np.ndarray


@dataclass
class Prepared:
    """A kind's answer to :meth:`ModelKind.prepare`."""

    net: Any                                   # the Keras model that ``fit`` trains
    servable: Any                              # the model saved, logged and served
    train: dict                                # ``fit`` keyword arguments for training data
    val: tuple                                 # ``validation_data`` for ``fit`` (early stopping)
    track_probs: Callable[[str], np.ndarray]   # split -> (n_tracks, n_classes), current weights
    labels: dict[str, Labels]                  # split -> ids and labels of its tracks
    classes: list[str]
    front_end: dict                            # JSON-able; see :meth:`ModelKind.front_end`
    example: np.ndarray                        # one servable input (signature, input example)
    data_source: str
    split_digest: str                          # see genreflow.models.splits.split_digest
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.counts = self.counts or {s: len(v.y) for s, v in self.labels.items()}


class WindowStream:
    """A kind's front-end fed as the signal is decoded: :meth:`feed` each mono block (at the
    kind's :meth:`~ModelKind.sample_rate`), then :meth:`windows` for the model inputs.
    Kinds whose front-end can start early subclass it (see ``LogMelKind``)."""

    def __init__(self, kind: ModelKind, front_end: dict):
        self.kind, self.front_end = kind, front_end
        self._blocks: list[np.ndarray] = []

    def feed(self, block: np.ndarray) -> None:
        self._blocks.append(block)

    def windows(self) -> np.ndarray:
        return self.kind.audio_windows(join_blocks(self._blocks), self.front_end)


class ModelKind:
    """One kind of model. Subclass, set ``name`` and ``Config``, decorate with ``register_kind``."""

    name: ClassVar[str]
    Config: ClassVar[type[KindConfig]] = KindConfig

    def check(self, mcfg: KindConfig) -> None:
        """Cross-field checks that need the kind (raise :class:`ConfigError`)."""

    def prepare(self, ctx: TrainContext, mcfg: KindConfig) -> Prepared:
        raise NotImplementedError

    def embed(self, cfg, manifest, out_dir: Path, data_source: str,
              log: Callable[[str], None] = print) -> dict | None:
        """The ``embed`` stage's work for this kind (a frozen pretrained base); None if none."""
        return None

    # ----------------------------------------------------------------- serving side
    def sample_rate(self, front_end: dict) -> int:
        """The sample rate raw audio is decoded at for this kind's front-end."""
        return int(front_end["sample_rate"])

    def audio_windows(self, y: np.ndarray, front_end: dict) -> np.ndarray:
        """Model inputs ``(n_windows, ...)`` for a mono signal at :meth:`sample_rate`."""
        raise NotImplementedError

    def window_stream(self, front_end: dict) -> WindowStream:
        """The front-end fed block by block while a file is decoded; by default the blocks
        are gathered and :meth:`audio_windows` runs on the whole signal."""
        return WindowStream(self, front_end)

    def aggregate(self, outputs: np.ndarray, front_end: dict) -> np.ndarray:
        """One track's probabilities from the servable's outputs for its windows."""
        return outputs.mean(axis=0)

    def load_servable(self, path: Path):
        """Load a saved servable Keras model (custom layers registered first)."""
        # deferred: Keras import (see docs/benchmarks.md, Import cost)
        import keras

        import genreflow.models.layers  # noqa: F401  (registers genreflow's layers)

        return keras.saving.load_model(path)
