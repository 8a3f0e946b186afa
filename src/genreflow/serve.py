"""The registered, servable model: base64 audio in, genre probabilities out.

:class:`AudioGenreModel` wraps a model bundle (``model.keras`` + ``preprocess.json``)
as an MLflow pyfunc, so that ``mlflow models serve`` answers

``{"dataframe_split": {"columns": ["audio"], "data": [["<base64 of a file>"]]}}``

with ``genre``, ``probability`` and one ``p_<genre>`` column per class. Bad requests
raise ``MlflowException(INVALID_PARAMETER_VALUE)``, which the scoring server turns
into HTTP 400 with the message.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

AUDIO_COLUMN = "audio"
_OPENING = re.compile(r"Error opening <[^>]*>: ")
RUNTIME_PACKAGES: tuple[str, ...] = ("mlflow", "tensorflow-cpu", "keras", "librosa", "soundfile",
                                     "numpy", "pandas")


def encode_file(path: str | Path) -> str:
    """Base64 of a file's bytes, as the served model expects in its ``audio`` column."""
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _bad_input(message: str):
    """An MLflow error that the scoring server answers with HTTP 400."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def _b64_to_bytes(value: Any, where: str) -> bytes:
    """Strict base64 decoding (whitespace and a ``data:...;base64,`` prefix allowed)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        raise _bad_input(f"{where}: empty audio (no value in column '{AUDIO_COLUMN}')")
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("ascii", errors="replace")
    if not isinstance(value, str):
        raise _bad_input(f"{where}: expected a base64 string, got {type(value).__name__}")
    text = "".join(value.split())
    if text.startswith("data:") and ";base64," in text:
        text = text.split(";base64,", 1)[1]
    if not text:
        raise _bad_input(f"{where}: empty audio (empty string in column '{AUDIO_COLUMN}')")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _bad_input(f"{where}: column '{AUDIO_COLUMN}' is not valid base64 (send the "
                         "base64 encoding of an audio file, e.g. `base64 -w0 song.wav`)") from None
    if not raw:
        raise _bad_input(f"{where}: empty audio (base64 decodes to 0 bytes)")
    return raw


def _header_seconds(raw: bytes) -> float | None:
    """Duration from the file header (cheap, no decoding); None when unknown."""
    import soundfile as sf

    try:
        info = sf.info(io.BytesIO(raw))
    except Exception:  # not audio: decoding reports it properly
        return None
    if info.samplerate <= 0 or info.frames <= 0 or info.frames >= 2**62:
        return None
    return info.frames / info.samplerate


class AudioGenreModel(mlflow.pyfunc.PythonModel):
    """Genre classifier on raw audio files (base64), built on a genreflow model bundle."""

    def __init__(self) -> None:
        self.predictor = None
        self.max_seconds = 600.0
        self.min_seconds = 1.0

    def load_context(self, context) -> None:
        """Load the bundle artefact and the duration limits from ``model_config``."""
        from genreflow.inference import GenrePredictor

        self.predictor = GenrePredictor.from_bundle(context.artifacts["bundle"])
        config = context.model_config or {}
        self.max_seconds = float(config.get("max_seconds", 600.0))
        self.min_seconds = float(config.get("min_seconds", 1.0))

    @property
    def classes(self) -> list[str]:
        return list(self.predictor.pre.classes)

    def _row_probs(self, value: Any, where: str) -> np.ndarray:
        from genreflow.audio import AudioError, decode

        raw = _b64_to_bytes(value, where)
        seconds = _header_seconds(raw)
        if seconds is not None and seconds > self.max_seconds:
            raise _bad_input(f"{where}: audio is {seconds:.1f} s long, longer than the "
                             f"maximum of {self.max_seconds:g} s")
        sr = self.predictor.sample_rate
        try:
            y, _ = decode(raw, sr)
        except AudioError as exc:
            reason = _OPENING.sub("", str(exc).removeprefix("<bytes>: "))
            if "no audio samples" in reason:
                raise _bad_input(f"{where}: empty audio (the file has no samples)") from None
            raise _bad_input(f"{where}: the bytes are not a supported audio file (wav, flac, "
                             f"ogg, mp3, au): {reason}") from None
        seconds = len(y) / sr
        if seconds > self.max_seconds:
            raise _bad_input(f"{where}: audio is {seconds:.1f} s long, longer than the "
                             f"maximum of {self.max_seconds:g} s")
        if seconds < self.min_seconds:
            raise _bad_input(f"{where}: audio is {seconds:.2f} s long, shorter than the "
                             f"minimum of {self.min_seconds:g} s")
        return self.predictor.probs_from_audio(y)

    def predict(self, context, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        """One row per file: ``genre``, ``probability`` and ``p_<genre>`` for every class."""
        if self.predictor is None:
            raise RuntimeError("AudioGenreModel: load_context has not been called")
        if not isinstance(model_input, pd.DataFrame):
            try:
                model_input = pd.DataFrame(model_input)
            except Exception:
                raise _bad_input("expected a table with a column 'audio' (base64 audio files), "
                                 f"got {type(model_input).__name__}") from None
        if AUDIO_COLUMN not in model_input.columns:
            raise _bad_input(f"missing column '{AUDIO_COLUMN}' (base64 of an audio file); got "
                             f"columns {[str(c) for c in model_input.columns]}")
        classes = self.classes
        probs = [self._row_probs(v, f"row {i}")
                 for i, v in enumerate(model_input[AUDIO_COLUMN].tolist())]
        mat = np.asarray(probs, dtype=np.float64).reshape(len(probs), len(classes))
        out = pd.DataFrame({
            "genre": [classes[int(k)] for k in mat.argmax(axis=1)] if len(mat) else [],
            "probability": mat.max(axis=1) if len(mat) else np.zeros(0),
        })
        for j, name in enumerate(classes):
            out[f"p_{name}"] = mat[:, j]
        return out


def _signature(classes: list[str]):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    outputs = [ColSpec("string", "genre"), ColSpec("double", "probability")]
    outputs += [ColSpec("double", f"p_{c}") for c in classes]
    return ModelSignature(inputs=Schema([ColSpec("string", AUDIO_COLUMN)]),
                          outputs=Schema(outputs))


def _example_input(seconds: float = 2.0, sample_rate: int = 22050):
    """A 1-row input: base64 of a short synthetic WAV (a chord plus a little noise)."""
    import soundfile as sf

    t = np.arange(int(seconds * sample_rate)) / sample_rate
    rng = np.random.default_rng(0)
    y = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6))
    y = (y + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, y, sample_rate, format="WAV", subtype="PCM_16")
    return pd.DataFrame({AUDIO_COLUMN: [base64.b64encode(buf.getvalue()).decode("ascii")]})


def pip_requirements() -> list[str]:
    """Pinned runtime dependencies (genreflow itself is installed locally, not from PyPI)."""
    reqs = []
    for pkg in RUNTIME_PACKAGES:
        try:
            reqs.append(f"{pkg}=={metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            continue
    return reqs


def log_audio_model(bundle_dir: Path, name: str = "audio_model", max_seconds: float = 600,
                    min_seconds: float = 1.0, registered_model_name: str | None = None):
    """Log :class:`AudioGenreModel` for ``bundle_dir`` into the active run.

    Returns the :class:`mlflow.models.model.ModelInfo`; ``info.model_uri`` can be
    registered or served (``mlflow models serve --env-manager local``).
    """
    from genreflow.inference import BUNDLE_META

    bundle_dir = Path(bundle_dir)
    meta = json.loads((bundle_dir / BUNDLE_META).read_text())
    if not 0 < min_seconds <= max_seconds:
        raise ValueError(f"need 0 < min_seconds <= max_seconds, got {min_seconds}, {max_seconds}")
    sample_rate = int(meta.get("features", {}).get("sample_rate", 22050))
    example = _example_input(min(max(2.0, float(min_seconds)), float(max_seconds)), sample_rate)
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=AudioGenreModel(),
        artifacts={"bundle": str(bundle_dir)},
        model_config={"max_seconds": float(max_seconds), "min_seconds": float(min_seconds)},
        signature=_signature(list(meta["classes"])),
        input_example=example,
        pip_requirements=pip_requirements(),
        registered_model_name=registered_model_name,
    )
