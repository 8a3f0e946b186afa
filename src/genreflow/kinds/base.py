"""The model-kind interface: what every kind of model declares, once, in its own module.

A *kind* (cnn, segcnn, inception, musicnn, ...) is a :class:`ModelKind` subclass
registered with :func:`genreflow.kinds.register_kind`. It declares

* ``Config``: its ``train.<name>`` section of ``params.yaml`` (a :class:`KindConfig`);
* ``FrontEnd``: what the bundle needs to turn raw audio into model inputs, a typed and
  versioned :class:`FrontEnd` kept in ``preprocess.json`` and read back only through the kind
  (:meth:`ModelKind.front_end`); :meth:`ModelKind.audio_windows` is that transform;
* :meth:`ModelKind.prepare`: the network to fit, the servable model, the data
  ``fit`` reads and track-level probabilities per split (training and evaluation);
* ``keras_modules``: the modules whose import registers the Keras layers its saved models
  use; ``cache_roots``: the modules that compute its cached values (the cache key's code,
  :mod:`genreflow.core.cachekey`); ``embed_params``: the settings its ``embed`` step reads.

Training, tuning, registration and serving go through these methods only. Modules
here import no TensorFlow at import time (configs are parsed by every stage).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np

from genreflow.audio.decode import join_blocks
from genreflow.core.config import OPTIMIZERS, ConfigError
from genreflow.core.errors import GenreflowError
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


@dataclass(kw_only=True)
class FrontEnd:
    """A kind's front-end as a bundle keeps it: subclass per kind, add fields, and raise
    ``VERSION`` (and the ``version`` default) when their meaning changes: a bundle of another
    version is refused, unless :meth:`upgrade` can read it as the current one."""

    VERSION: ClassVar[int] = 1
    sample_rate: int
    version: int = 1

    def __post_init__(self) -> None:
        self.check_version(self.version)

    @classmethod
    def check_version(cls, version: Any) -> None:
        if version != cls.VERSION:
            raise GenreflowError(
                f"front_end version {version} of a {cls.__name__}, this genreflow "
                f"reads version {cls.VERSION}; retrain the model (`genreflow train KIND`)")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def upgrade(cls, raw: dict) -> dict:
        """The JSON of an older version (``raw["version"]``) rewritten as this one's, for a
        kind that can read it (the default cannot: that bundle is refused)."""
        return raw

    @classmethod
    def from_json(cls, raw: dict, where: str) -> Self:
        """Read back what :meth:`to_json` wrote; a bundle written before front-ends had a
        version holds version 1's fields (the same keys), so it is read as version 1."""
        if not isinstance(raw, dict):
            raise GenreflowError(f"{where}: front_end: expected a mapping, got {type(raw).__name__}")
        try:
            raw = cls.upgrade({"version": 1, **raw})
            cls.check_version(raw.get("version"))
        except GenreflowError as exc:
            raise GenreflowError(f"{where}: {exc}") from None
        known = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(f.name for f in dataclasses.fields(cls) if f.name not in raw
                         and f.default is dataclasses.MISSING
                         and f.default_factory is dataclasses.MISSING)
        if missing:
            raise GenreflowError(f"{where}: front_end lacks {missing}; retrain the model "
                                 "(`genreflow train KIND`)")
        try:
            return cls(**{k: v for k, v in raw.items() if k in known})
        except GenreflowError as exc:
            raise GenreflowError(f"{where}: {exc}") from None

    def logged_params(self) -> dict[str, Any]:
        """What a training run logs of its front-end (``features.*`` for log-mel kinds)."""
        return {}


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
    front_end: FrontEnd                        # what the bundle keeps (preprocess.json)
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

    def __init__(self, kind: ModelKind, front_end: FrontEnd):
        self.kind, self.front_end = kind, front_end
        self._blocks: list[np.ndarray] = []

    def feed(self, block: np.ndarray) -> None:
        self._blocks.append(block)

    def windows(self) -> np.ndarray:
        return self.kind.audio_windows(join_blocks(self._blocks), self.front_end)


class ModelKind:
    """One kind of model. Subclass, set ``name``, ``Config`` and ``FrontEnd``, decorate with
    ``register_kind``."""

    name: ClassVar[str]
    Config: ClassVar[type[KindConfig]] = KindConfig
    FrontEnd: ClassVar[type[FrontEnd]] = FrontEnd
    #: modules whose import registers the Keras layers this kind's saved models use
    keras_modules: ClassVar[tuple[str, ...]] = ()
    #: modules whose code computes this kind's cached values (embeddings): the cache key
    #: covers them and every genreflow module they import
    cache_roots: ClassVar[tuple[str, ...]] = ()
    #: settings of ``train.<name>`` that the ``embed`` stage reads (empty: no embed step)
    embed_params: ClassVar[tuple[str, ...]] = ()

    def check(self, mcfg: KindConfig) -> None:
        """Cross-field checks that need the kind (raise :class:`ConfigError`)."""

    def check_project(self, mcfg: KindConfig, cfg: Config) -> None:
        """Checks against the rest of ``params.yaml`` (e.g. a feature this kind needs), run
        wherever the kind's settings are used with the whole config
        (:func:`genreflow.kinds.settings` with ``project``)."""

    def prepare(self, ctx: TrainContext, mcfg: KindConfig) -> Prepared:
        raise NotImplementedError

    def embed(self, cfg, manifest, out_dir: Path, data_source: str,
              log: Callable[[str], None] = print) -> dict | None:
        """The ``embed`` stage's work for this kind (a frozen pretrained base); None if none."""
        return None

    # ----------------------------------------------------------------- serving side
    def front_end(self, raw: dict, where: str = "preprocess.json") -> FrontEnd:
        """The typed front-end of a bundle's ``preprocess.json`` (a one-line error if stale)."""
        return self.FrontEnd.from_json(raw, where)

    def sample_rate(self, front_end: FrontEnd) -> int:
        """The sample rate raw audio is decoded at for this kind's front-end."""
        return int(front_end.sample_rate)

    def audio_windows(self, y: np.ndarray, front_end: FrontEnd) -> np.ndarray:
        """Model inputs ``(n_windows, ...)`` for a mono signal at :meth:`sample_rate`."""
        raise NotImplementedError

    def window_stream(self, front_end: FrontEnd) -> WindowStream:
        """The front-end fed block by block while a file is decoded; by default the blocks
        are gathered and :meth:`audio_windows` runs on the whole signal."""
        return WindowStream(self, front_end)

    def aggregate(self, outputs: np.ndarray, front_end: FrontEnd) -> np.ndarray:
        """One track's probabilities from the servable's outputs for its windows."""
        return outputs.mean(axis=0)

    def load_servable(self, path: Path):
        """Load a saved servable Keras model; the shared layers are registered here, the
        kind's own (``keras_modules``) by :func:`genreflow.kinds.load_servable` first."""
        # deferred: Keras import (see docs/benchmarks.md, Import cost)
        import keras

        import genreflow.models.layers  # noqa: F401  (registers genreflow's shared layers)

        return keras.saving.load_model(path)
