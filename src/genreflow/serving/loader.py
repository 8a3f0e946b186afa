"""Loading a model to predict with: an MLflow model URI of a logged audio model (with the input
contract it carries) or a plain bundle folder. ``genreflow predict`` and ``register`` use it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from genreflow.core.config import AudioConfig
from genreflow.core.errors import GenreflowError
from genreflow.core.quiet import import_tensorflow
from genreflow.models.bundle import BUNDLE_META
from genreflow.serving.predictor import GenrePredictor
from genreflow.tracking.store import require_registry


@contextlib.contextmanager
def _quiet_downloads() -> Iterator[None]:
    """No artefact-download progress bars while loading (restored afterwards)."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    old = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def load_predictor(model_uri: str) -> GenrePredictor:
    """The predictor behind an MLflow model URI (``models:/``, ``runs:/``, a local
    model folder) of a logged audio model, or a plain bundle folder."""
    return load_model(model_uri)[0]


def load_model(model_uri: str) -> tuple[GenrePredictor, AudioConfig | None]:
    """The predictor and, for a logged audio model, the input contract it carries.

    A missing folder, an absent registry or a store that does not answer is refused before
    TensorFlow loads (seconds of start-up for nothing)."""
    local = Path(model_uri)
    if "://" not in model_uri and not model_uri.startswith(("models:", "runs:")):
        if (local / BUNDLE_META).is_file():
            import_tensorflow()
            return GenrePredictor.from_bundle(local), None
        if not local.exists():
            raise GenreflowError(f"{model_uri}: no such model folder or bundle; pass an MLflow "
                                 "model URI (models:/<name>@<alias>, runs:/<id>/audio_model) or "
                                 "a bundle folder with preprocess.json")
    require_registry(model_uri)

    import_tensorflow()  # quietly, before MLflow's Keras flavour imports it
    # deferred: MLflow import (see docs/benchmarks.md, Import cost)
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    from genreflow.serving.pyfunc import AudioGenreModel, not_an_audio_model

    try:
        with _quiet_downloads():
            model = mlflow.pyfunc.load_model(model_uri)
    except (MlflowException, OSError) as exc:
        reason = getattr(exc, "message", None) or str(exc)
        raise GenreflowError(
            f"cannot load model {model_uri!r}: "
            f"{(reason.splitlines()[0] if reason else str(exc)).rstrip('.')}. "
            "Train and register a model first (`dvc repro` or `genreflow register`), check "
            "MLFLOW_TRACKING_URI, or pass --model with another URI or a bundle folder"
        ) from None
    except Exception as exc:  # noqa: BLE001  (e.g. a run's Keras model: its layers unknown here)
        first = (str(exc).splitlines() or [""])[0][:200]
        raise GenreflowError(f"{not_an_audio_model(model_uri)} (loading it failed: "
                             f"{type(exc).__name__}: {first})") from None
    try:
        python_model = model.unwrap_python_model()
    except MlflowException:
        python_model = None
    if not isinstance(python_model, AudioGenreModel) or python_model.predictor is None:
        raise GenreflowError(not_an_audio_model(model_uri))
    return python_model.predictor, python_model.audio
