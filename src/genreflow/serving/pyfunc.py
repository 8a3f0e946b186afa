"""The registered, servable model: base64 audio in, genre probabilities out.

:class:`AudioGenreModel` wraps a model bundle (``model.keras`` + ``preprocess.json``)
as an MLflow pyfunc, so that ``mlflow models serve`` (or ``genreflow serve``) answers

``{"dataframe_split": {"columns": ["audio"], "data": [["<base64 of a file>"]]}}``

with ``genre``, ``probability`` and one ``p_<genre>`` column per class. Every file goes
through the input contract (:mod:`genreflow.audio.contract`) the model was logged with, and a
request is bounded (rows, bytes, seconds of audio: header durations before decoding).
A refusal raises ``MlflowException(INVALID_PARAMETER_VALUE)`` (HTTP 400) whose message
is one line, ``"row <i>: <reason>: <detail>"`` or ``"request: <reason>: <detail>"``.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
import threading
from pathlib import Path
from typing import Any

from genreflow.core.tfenv import set_tf_environment

set_tf_environment()  # before TensorFlow loads in the scoring server (it imports this module)

import mlflow.pyfunc  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import soundfile as sf  # noqa: E402
import yaml  # noqa: E402

from genreflow.audio.contract import (  # noqa: E402
    from_model_config,
    header_seconds,
    to_model_config,
)
from genreflow.audio.refusal import AudioError  # noqa: E402
from genreflow.core.config import AudioConfig  # noqa: E402
from genreflow.core.quiet import import_tensorflow  # noqa: E402
from genreflow.kinds import get_kind  # noqa: E402
from genreflow.models.bundle import BUNDLE_META  # noqa: E402
from genreflow.serving.predictor import GenrePredictor  # noqa: E402
from genreflow.tracking.requirements import pip_requirements  # noqa: E402

AUDIO_COLUMN = "audio"
BUNDLE_ARTIFACT = "bundle"  # the pyfunc artifact holding the model bundle


def encode_file(path: str | Path) -> str:
    """Base64 of a file's bytes, as the served model expects in its ``audio`` column."""
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _bad_input(where: str, reason: str, detail: str):
    """An MLflow error that the scoring server answers with HTTP 400: one line,
    ``where: reason: detail``."""
    # deferred: MLflow import (see docs/benchmarks.md, Import cost)
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    return MlflowException(f"{where}: {reason}: {detail}", error_code=INVALID_PARAMETER_VALUE)


def _b64_to_bytes(value: Any, where: str) -> bytes:
    """Strict base64 decoding (whitespace and a ``data:...;base64,`` prefix allowed)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        raise _bad_input(where, "empty", f"no value in column '{AUDIO_COLUMN}'")
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("ascii", errors="replace")
    if not isinstance(value, str):
        raise _bad_input(where, "bad_request", f"expected a base64 string, got "
                         f"{type(value).__name__}")
    text = value.split(";base64,", 1)[1] if value[:5] == "data:" and ";base64," in value \
        else value
    try:  # the common case first: no whitespace to strip (saves a copy of a large string)
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        text = "".join(text.split())
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None:
        raise _bad_input(where, "bad_request", f"column '{AUDIO_COLUMN}' is not valid base64 "
                         "(send the base64 of an audio file, e.g. `base64 -w0 song.wav`)")
    if not raw:
        raise _bad_input(where, "empty", f"an empty string in column '{AUDIO_COLUMN}' "
                         "(0 bytes of audio)")
    return raw


def _a_core_is_idle() -> bool:
    """Whether fewer threads are runnable on the machine at this moment than it has cores
    (the calling thread included; Linux's ``/proc/loadavg``, elsewhere assumed): with
    ``--workers 2`` a request alone in its worker often is not alone on the machine."""
    try:
        with open("/proc/loadavg") as fh:
            runnable = int(fh.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return True
    return runnable < (os.cpu_count() or 1)


class _InFlight:
    """Counts the requests a scoring worker is answering; entering tells whether this one is
    alone. A lone request decodes in a background thread while its front-end works on the
    blocks already out (a second core is idle, so the request is served sooner). Under
    concurrent requests the cores are busy anyway: a second thread only cost time, and so did
    streaming the front-end in the request's thread (many small numpy calls contend for the
    GIL); the whole signal in one pass kept the old latency (see docs/benchmarks.md, Decoding
    beside the front-end)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def __enter__(self) -> bool:
        with self._lock:
            self._count += 1
            alone = self._count == 1
        return alone and _a_core_is_idle()

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._count -= 1


class AudioGenreModel(mlflow.pyfunc.PythonModel):
    """Genre classifier on raw audio files (base64), built on a genreflow model bundle."""

    def __init__(self) -> None:
        self.predictor = None
        self.audio = AudioConfig()

    def load_context(self, context) -> None:
        """Load the bundle artefact and the input contract from ``model_config``."""
        import_tensorflow()

        self.predictor = GenrePredictor.from_bundle(context.artifacts[BUNDLE_ARTIFACT])
        self.predictor.warm_up()
        self.audio = from_model_config(context.model_config)
        self._busy = _InFlight()  # here, not in __init__: the instance is pickled before this

    @property
    def classes(self) -> list[str]:
        return list(self.predictor.classes)

    def _request_bytes(self, values: list) -> list[bytes]:
        """Rows as bytes, refusing a request over the row or size limit before decoding."""
        audio = self.audio
        if len(values) > audio.max_rows:
            raise _bad_input("request", "too_many_rows", f"{len(values)} rows, the maximum is "
                             f"{audio.max_rows} (audio.max_rows); send fewer files per request")
        raws = [_b64_to_bytes(v, f"row {i}") for i, v in enumerate(values)]
        total = sum(map(len, raws))
        if total > audio.max_request_mb * 2**20:
            raise _bad_input("request", "request_too_large", f"{total / 2**20:.1f} MB of audio, "
                             f"the maximum is {audio.max_request_mb:g} MB (audio.max_request_mb)")
        return raws

    def _check_header_seconds(self, raws: list[bytes]) -> None:
        """Refuse rows and requests that are too long by their headers, before decoding."""
        audio = self.audio
        known = 0.0
        for i, raw in enumerate(raws):
            seconds = header_seconds(raw, audio)
            if seconds is None:
                continue
            if seconds > audio.max_seconds:
                raise _bad_input(f"row {i}", "too_long", f"{seconds:.1f} s of audio (header), "
                                 f"longer than the maximum of {audio.max_seconds:g} s")
            known += seconds
        if known > audio.max_request_seconds:
            raise _bad_input("request", "request_too_long", f"{known:.0f} s of audio in one "
                             f"request, the maximum is {audio.max_request_seconds:g} s "
                             "(audio.max_request_seconds)")

    def _request_budget(self):
        """A filter for the decoded blocks of one request's rows, refusing the request as soon
        as they hold more than ``audio.max_request_seconds`` (for files whose headers do not
        give their length, or lie about it)."""
        seconds = self.audio.max_request_seconds
        left = seconds * self.predictor.sample_rate  # samples, shared by the request's rows

        def within(blocks):
            nonlocal left
            for block in blocks:
                left -= len(block)
                if left < 0:
                    raise _bad_input("request", "request_too_long", f"more than {seconds:g} s "
                                     "of audio in one request (audio.max_request_seconds)")
                yield block

        return within

    def predict(self, context, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        """One row per file: ``genre``, ``probability`` and ``p_<genre>`` for every class."""
        if self.predictor is None:
            raise RuntimeError("AudioGenreModel: load_context has not been called")
        if not isinstance(model_input, pd.DataFrame):
            try:
                model_input = pd.DataFrame(model_input)
            except Exception:
                raise _bad_input("request", "bad_request", "expected a table with a column "
                                 f"'audio', got {type(model_input).__name__}") from None
        if AUDIO_COLUMN not in model_input.columns:
            raise _bad_input("request", "bad_request", f"missing column '{AUDIO_COLUMN}' (base64 "
                             f"of an audio file); got columns "
                             f"{[str(c) for c in model_input.columns]}")
        raws = self._request_bytes(model_input[AUDIO_COLUMN].tolist())
        self._check_header_seconds(raws)
        budget = self._request_budget()
        probs = []
        # alone: decode in a second thread beside the front-end (a core is idle); not alone:
        # the cores are busy, and one front-end pass over the whole signal (fewer, larger
        # numpy calls) contends less for the GIL
        with self._busy as alone:
            for i, raw in enumerate(raws):
                where = f"row {i}"
                try:
                    probs.append(self.predictor.probs_from_source(
                        raw, self.audio, where, overlap=alone, limit=budget))
                except AudioError as exc:
                    raise _bad_input(where, exc.reason, exc.detail) from None
        classes = self.classes
        mat = np.asarray(probs, dtype=np.float64).reshape(len(probs), len(classes))
        out = pd.DataFrame({
            "genre": [classes[int(k)] for k in mat.argmax(axis=1)] if len(mat) else [],
            "probability": mat.max(axis=1) if len(mat) else np.zeros(0),
        })
        for j, name in enumerate(classes):
            out[f"p_{name}"] = mat[:, j]
        return out


def _signature(classes: list[str]):
    # deferred: MLflow import (see docs/benchmarks.md, Import cost)
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    outputs = [ColSpec("string", "genre"), ColSpec("double", "probability")]
    outputs += [ColSpec("double", f"p_{c}") for c in classes]
    return ModelSignature(inputs=Schema([ColSpec("string", AUDIO_COLUMN)]),
                          outputs=Schema(outputs))


def _example_input(seconds: float = 2.0, sample_rate: int = 22050):
    """A 1-row input: base64 of a short synthetic WAV (a chord plus a little noise)."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    rng = np.random.default_rng(0)
    y = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6))
    y = (y + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, y, sample_rate, format="WAV", subtype="PCM_16")
    return pd.DataFrame({AUDIO_COLUMN: [base64.b64encode(buf.getvalue()).decode("ascii")]})


def not_an_audio_model(model_uri: str) -> str:
    """The one message for a model that is not :class:`AudioGenreModel` (e.g. a training run's
    window-level Keras model, which takes log-mel windows, not audio)."""
    return (f"{model_uri}: not a genreflow audio model (expected one logged by "
            "`genreflow register`, e.g. models:/<name>@champion; a training run's own model "
            "takes log-mel windows, not audio)")


def is_audio_model_folder(folder: Path) -> bool:
    """Whether the MLflow model in ``folder`` is one :func:`log_audio_model` wrote, read from
    its ``MLmodel`` file alone (no model loaded): a python model carrying a ``bundle``."""
    try:
        spec = yaml.safe_load((Path(folder) / "MLmodel").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return False
    pyfunc = (spec.get("flavors") or {}).get("python_function") or {}
    return (pyfunc.get("loader_module") == "mlflow.pyfunc.model"
            and BUNDLE_ARTIFACT in (pyfunc.get("artifacts") or {}))


def log_audio_model(bundle_dir: Path, name: str = "audio_model",
                    audio: AudioConfig | None = None, registered_model_name: str | None = None,
                    step: int = 0):
    """Log :class:`AudioGenreModel` for ``bundle_dir`` into the active run, carrying the
    input contract ``audio`` (params.yaml ``audio:``) in its ``model_config``.

    Returns the :class:`mlflow.models.model.ModelInfo`; ``info.model_uri`` can be
    registered or served (``genreflow serve`` or ``mlflow models serve --env-manager local``).
    """
    audio = audio or AudioConfig()
    bundle_dir = Path(bundle_dir)
    meta = json.loads((bundle_dir / BUNDLE_META).read_text())
    front_end = get_kind(meta["kind"]).front_end(meta["front_end"], str(bundle_dir / BUNDLE_META))
    sample_rate = front_end.sample_rate
    example = _example_input(min(audio.min_seconds + 1.0, audio.max_seconds), sample_rate)
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=AudioGenreModel(),
        artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
        model_config=to_model_config(audio),
        signature=_signature(list(meta["classes"])),
        input_example=example,
        pip_requirements=pip_requirements(),
        registered_model_name=registered_model_name,
        step=step,  # MLflow links the run's metrics of this step (the restored epoch's)
    )
