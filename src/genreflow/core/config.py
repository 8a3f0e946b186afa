"""Typed configuration: ``params.yaml`` parsed once into dataclasses.

Every stage takes the section it needs; unknown or ill-typed fields raise
:class:`ConfigError` naming the field and what was expected.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from genreflow.core.errors import GenreflowError
from genreflow.core.labels import AUTO, label_problems
from genreflow.core.safe_text import holds_secret, redact

GTZAN_GENRES: tuple[str, ...] = (
    "blues",
    "classical",
    "country",
    "disco",
    "hiphop",
    "jazz",
    "metal",
    "pop",
    "reggae",
    "rock",
)


OPTIMIZERS: tuple[str, ...] = ("sgd", "sgd_momentum", "adam", "adadelta", "adagrad", "rmsprop")


class ConfigError(GenreflowError, ValueError):
    """A parameter is missing, unknown or of the wrong type."""


def check_range(section: str, low_name: str, low: float, high_name: str, high: float) -> None:
    """``0 < low <= high`` for a pair of settings, else a :class:`ConfigError` naming both."""
    if not 0 < low <= high:
        raise ConfigError(f"{section}.{low_name}/{high_name}: expected 0 < {low_name} <= "
                          f"{high_name}, got {low} and {high}")


@dataclass
class DataConfig:
    """``data``: where the raw audio is, and its classes: ``auto`` (every label found in the
    data, sorted; see :func:`genreflow.core.labels.resolve_labels`) or a list that selects
    and orders them."""

    dir: str = "data"
    genres: str | list[str] = AUTO

    def __post_init__(self) -> None:
        if isinstance(self.genres, str):
            if self.genres != AUTO:
                raise ConfigError(f"data.genres: expected {AUTO!r} or a list of labels, "
                                  f"got {self.genres!r}")
            return
        problems = label_problems(self.genres)
        if len(set(self.genres)) != len(self.genres):
            problems.append("a label is listed twice")
        if problems:
            raise ConfigError(f"data.genres: {'; '.join(problems)}")


@dataclass
class IntakeConfig:
    """``intake``: bounds on what ``genreflow data get`` accepts (archives, folders, downloads).

    Defaults fit GTZAN-like audio collections with wide margins: the longest clip the input
    contract accepts (``audio.max_seconds`` = 10 min) is 173 MB even as 48 kHz 24-bit stereo
    WAV; GTZAN is 1.2 GB and 1,000 clips (about 2,000 members in Kaggle's zip); audio barely
    compresses (FLAC/MP3/OGG about 1:1, PCM under deflate rarely 1:3) while a zip bomb
    expands about 1000:1; 20 GB in 6 hours needs only about 1 MB/s.
    """

    max_clip_mb: float = 200.0        # bytes of one clip (declared size, then while copying)
    max_total_gb: float = 20.0        # bytes read out of one archive or folder, all members
    max_members: int = 50_000         # entries of one archive (files, folders, links) or clips
    max_ratio: float = 100.0          # expanded / compressed bytes, per member and overall
    max_download_gb: float = 20.0     # bytes of one download
    download_minutes: float = 360.0   # a whole download, start to end

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if not getattr(self, f.name) > 0:
                raise ConfigError(f"intake.{f.name}: expected a positive number, "
                                  f"got {getattr(self, f.name)!r}")
        if self.max_ratio < 1:
            raise ConfigError(f"intake.max_ratio: expected a number >= 1, got {self.max_ratio!r}")

    @property
    def clip_bytes(self) -> int:
        return int(self.max_clip_mb * 1e6)

    @property
    def total_bytes(self) -> int:
        return int(self.max_total_gb * 1e9)

    @property
    def download_bytes(self) -> int:
        return int(self.max_download_gb * 1e9)


@dataclass
class AudioConfig:
    """The input contract (``audio:``), one for training data, ``predict`` and serving."""

    min_seconds: float = 3.0         # shorter clips are refused (too_short)
    max_seconds: float = 600.0       # longer clips are refused (too_long)
    silence_rms: float = 1e-4        # quieter clips (RMS of the mono mix) are refused (silent)
    max_request_mb: float = 32.0     # served model: request body limit (genreflow serve)...
    max_rows: int = 32               # ...files per request...
    max_request_seconds: float = 1200.0  # ...and audio seconds per request
    min_sample_rate: int = 4000      # files at a lower or higher rate are refused at open,
    max_sample_rate: int = 384000    # before any decoding (bad_sample_rate)

    def __post_init__(self) -> None:
        check_range("audio", "min_sample_rate", self.min_sample_rate, "max_sample_rate",
                    self.max_sample_rate)
        check_range("audio", "min_seconds", self.min_seconds, "max_seconds", self.max_seconds)
        if self.silence_rms < 0:
            raise ConfigError(f"audio.silence_rms: expected >= 0, got {self.silence_rms}")
        for name in ("max_request_mb", "max_rows", "max_request_seconds"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"audio.{name}: expected a positive number, "
                                  f"got {getattr(self, name)}")
        if self.max_request_seconds < self.min_seconds:
            raise ConfigError("audio.max_request_seconds: must be at least audio.min_seconds")


@dataclass
class ValidateConfig:
    expected_sample_rate: int = 22050


#: ``split.method``: how clips are assigned to train / val / test (genreflow.stages.split_methods)
SPLIT_METHODS: tuple[str, ...] = ("stratified", "group", "predefined", "fault_filtered")


@dataclass
class SplitConfig:
    method: str = "stratified"
    genres: str | list[str] = "all"  # "all" = data.genres
    balance: bool = True
    ratios: list[float] = field(default_factory=lambda: [0.8, 0.09, 0.1])
    seed: int = 42

    def __post_init__(self) -> None:
        if self.method not in SPLIT_METHODS:
            raise ConfigError(f"split.method: expected one of {list(SPLIT_METHODS)}, "
                              f"got {self.method!r}")
        if isinstance(self.genres, str) and self.genres != "all":
            raise ConfigError(f"split.genres: expected 'all' or a list of labels, "
                              f"got {self.genres!r}")
        if len(self.ratios) != 3 or any(r < 0 for r in self.ratios) or sum(self.ratios) <= 0:
            raise ConfigError(f"split.ratios: expected three non-negative numbers, got {self.ratios}")


@dataclass
class FeaturesConfig:
    """``features``: the log-mel every log-mel kind reads (the ``features`` stage's settings)."""

    #: settings that left this section, and where they are now (see :func:`_build`); an old
    #: feature set's or bundle's copy of the section (``meta.json``, ``preprocess.json``) is read
    #: without them
    MOVED: ClassVar[dict[str, str]] = {"segment_seconds": "train.segcnn.segment_seconds",
                                       "segment_overlap": "train.segcnn.segment_overlap"}

    sample_rate: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    clip_seconds: float = 30.0
    mp3_copies: bool = False  # training clips also get the log-mel of an MP3 copy (codec.py)
    workers: int = 2

    @property
    def clip_frames(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate)) // self.hop_length + 1

    @classmethod
    def from_saved(cls, raw: dict[str, Any]) -> FeaturesConfig:
        """A copy of the section saved by a stage (``meta.json``, a bundle's front-end),
        maybe by a genreflow from before a setting moved (that copy is left out)."""
        return cls(**{k: v for k, v in raw.items() if k not in cls.MOVED})


@dataclass
class FiguresConfig:
    clips: str | list[str] = "auto"
    dpi: int = 100


@dataclass
class TrainConfig:
    """``train``: shared settings plus one ``train.<kind>`` section per model kind.

    Kind sections are kept as given here and parsed by the kind's own config class
    when a stage needs them (:func:`genreflow.kinds.settings`), so parsing the
    parameters never loads the model code.
    """

    models: list[str] = field(default_factory=lambda: ["cnn", "inception", "segcnn", "musicnn"])
    seed: int = 42
    batch_size: int = 32
    max_epochs: int = 500
    patience: int = 15
    min_delta: float = 1e-3
    experiment: str = "genreflow"
    #: modules that register model kinds from outside genreflow (``mypkg.mykind``); see
    #: README, "Adding a model kind"
    plugins: list[str] = field(default_factory=list)
    kinds: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, minimum in (("batch_size", 1), ("max_epochs", 1), ("patience", 0)):
            if getattr(self, name) < minimum:
                raise ConfigError(f"{name}: expected a whole number >= {minimum}, "
                                  f"got {getattr(self, name)!r}")
        if self.min_delta < 0:
            raise ConfigError(f"min_delta: expected a number >= 0, got {self.min_delta!r}")
        bad = [m for m in self.plugins if not isinstance(m, str) or not all(
            part.isidentifier() for part in m.split("."))]
        if bad:
            raise ConfigError(f"plugins: expected dotted module names, got {bad!r}")

    def export_plugins(self) -> None:
        """Put :attr:`plugins` in ``GENREFLOW_PLUGINS`` (with any already there), so that the
        ``genreflow`` processes this one starts (scoring server, tune workers) find them too."""
        if not self.plugins:
            return
        have = [m for m in os.environ.get(PLUGINS_ENV, "").split(",") if m]
        os.environ[PLUGINS_ENV] = ",".join(dict.fromkeys([*have, *self.plugins]))

    @classmethod
    def from_mapping(cls, raw: dict[str, Any], where: str) -> TrainConfig:
        """Shared fields as usual; every other key is a kind's section (a mapping)."""
        shared = {f.name for f in dataclasses.fields(cls)} - {"kinds"}
        kinds = {}
        for key, value in raw.items():
            if key in shared:
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{key}: expected a shared setting {sorted(shared)} or "
                                  f"a model kind's section (a mapping), got {value!r}")
            kinds[key] = value
        obj = _build(cls, {k: v for k, v in raw.items() if k in shared}, where)
        obj.kinds.update(kinds)
        return obj


#: Environment variable naming model-kind modules to import (comma-separated): see TrainConfig.
PLUGINS_ENV = "GENREFLOW_PLUGINS"

#: Environment variables naming the stores; each takes precedence over params.yaml, so that a
#: URL holding credentials never needs to be in a committed file (nor in dvc.lock).
TUNE_STORAGE_ENV = "GENREFLOW_TUNE_STORAGE"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"  # MLflow's own


@dataclass
class TuneConfig:
    model: str = "segcnn"
    study: str = "genreflow-tune"
    storage: str = "sqlite:///optuna.db"
    n_trials: int = 3
    timeout: float | None = None
    max_epochs: int = 6
    seed: int = 42
    optimizers: list[str] = field(default_factory=lambda: list(OPTIMIZERS))
    lr_min: float = 1e-4
    lr_max: float = 1e-1
    heartbeat_seconds: int = 60  # a trial whose process died is failed after 2x this, on resume
    prune_startup_trials: int = 5  # no pruning until this many trials have completed
    prune_warmup_epochs: int = 5   # a trial can be pruned only after this many epochs

    def resolved_storage(self) -> str:
        """The study's storage URL, with ``GENREFLOW_TUNE_STORAGE`` taking precedence."""
        return os.environ.get(TUNE_STORAGE_ENV) or self.storage

    def storage_origin(self) -> str:
        """Where :meth:`resolved_storage` came from, for messages."""
        return TUNE_STORAGE_ENV if os.environ.get(TUNE_STORAGE_ENV) else "tune.storage"


@dataclass
class RegisterConfig:
    model_name: str = "gtzan-genre-classifier"
    metric: str = "val_track_accuracy"
    max_latency_ms: float | None = None  # only runs whose model answers a 30 s clip within this
    bootstrap: int = 2000      # resamples of the validation tracks for each interval
    confidence: float = 0.95   # of the intervals; a challenger wins when its gain's is above 0
    seed: int = 42             # of the resampling: the same scores give the same intervals

    def __post_init__(self) -> None:
        if self.max_latency_ms is not None and not self.max_latency_ms > 0:
            raise ConfigError(f"max_latency_ms: expected null or a positive number of "
                              f"milliseconds, got {self.max_latency_ms!r}")
        if not 100 <= self.bootstrap <= 1_000_000:
            raise ConfigError(f"register.bootstrap: expected a whole number of resamples from "
                              f"100 to 1000000, got {self.bootstrap!r}")
        if not 0 < self.confidence < 1:
            raise ConfigError(f"register.confidence: expected a number between 0 and 1 "
                              f"(exclusive), got {self.confidence!r}")

    @property
    def champion_uri(self) -> str:
        """``models:/<model_name>@champion``: what ``predict`` and ``serve`` use by default."""
        return f"models:/{self.model_name}@champion"


@dataclass
class TrackingConfig:
    uri: str = "sqlite:///mlflow.db"
    artifact_root: str = "mlruns"

    def resolved_uri(self) -> str:
        """The tracking URI, with ``MLFLOW_TRACKING_URI`` taking precedence."""
        return os.environ.get(TRACKING_URI_ENV) or self.uri


@dataclass
class Config:
    """All of ``params.yaml``. A rule joining a kind's settings to other sections is the
    kind's (``ModelKind.check_project``), checked when the kind's settings are used."""

    data: DataConfig = field(default_factory=DataConfig)
    intake: IntakeConfig = field(default_factory=IntakeConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    figures: FiguresConfig = field(default_factory=FiguresConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    register: RegisterConfig = field(default_factory=RegisterConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; build nested dataclasses."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        if hasattr(tp, "from_mapping"):
            return tp.from_mapping(value, where)
        return _build(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in typing.get_args(tp):
            if arg is type(None):
                if value is None:
                    return None
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: unexpected {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (arg,) = typing.get_args(tp)
        return [_coerce(v, arg, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _build(cls: type, raw: dict[str, Any], where: str) -> Any:
    """A section from its mapping. A setting the section's ``MOVED`` names (it moved to
    another section) is refused with its new place, so an old ``params.yaml`` says where."""
    moved = getattr(cls, "MOVED", {})
    gone = [k for k in raw if k in moved]
    if gone:
        raise ConfigError("; ".join(f"{where}.{k}: moved to {moved[k]}, move the line there"
                                    for k in gone))
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; expected some of {sorted(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in raw.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        msg = str(exc)
        raise ConfigError(msg if msg.startswith(where) else f"{where}.{msg}" if where else msg) from None


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Build a :class:`Config` from a mapping shaped like ``params.yaml``."""
    return _build(Config, raw or {}, "")


def load_config(path: str | Path = "params.yaml") -> Config:
    """Read ``params.yaml`` (missing sections take their defaults)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: parameter file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    cfg = config_from_dict(raw)
    _refuse_secrets(cfg, path)
    return cfg


def _refuse_secrets(cfg: Config, path: Path) -> None:
    """A store URL in the parameter file must not hold a password: the file is committed,
    and DVC copies the parameters a stage declares into dvc.lock."""
    for field_name, url, env in (("tune.storage", cfg.tune.storage, TUNE_STORAGE_ENV),
                                 ("tracking.uri", cfg.tracking.uri, TRACKING_URI_ENV)):
        if holds_secret(url):
            raise ConfigError(
                f"{path}: {field_name} holds a password or token ({redact(url)}); keep secrets "
                f"out of committed files: give the URL in {env} instead, or leave the password "
                "out and let the driver find it (PGPASSWORD, ~/.pgpass)")


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten a dataclass or mapping into ``{"a.b": value}`` (lists joined as strings)."""
    if dataclasses.is_dataclass(obj):
        obj = dataclasses.asdict(obj)
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, list):
            out[name] = ",".join(map(str, value))
        else:
            out[name] = value
    return out
