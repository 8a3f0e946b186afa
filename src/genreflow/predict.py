"""``genreflow predict``: genres of local audio files from a registered model or a bundle.

Every file goes through the same input contract as the served model and ``validate``
(:mod:`genreflow.contract`): a logged model brings the contract it was registered with,
a bare bundle folder uses params.yaml ``audio:``. A refused file gets an ``error`` with
its ``reason`` class; the other files are still answered.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from genreflow.config import AudioConfig, RegisterConfig
from genreflow.errors import GenreflowError
from genreflow.inference import BUNDLE_META, GenrePredictor
from genreflow.safe_text import printable

DEFAULT_MODEL_URI = RegisterConfig().champion_uri  # params.yaml's register.model_name: cli.py


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
    """The predictor and, for a logged audio model, the input contract it carries."""
    from genreflow.quiet import import_tensorflow

    import_tensorflow()
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    from genreflow.serve import AudioGenreModel, not_an_audio_model

    local = Path(model_uri)
    if "://" not in model_uri and not model_uri.startswith(("models:", "runs:")):
        if (local / BUNDLE_META).is_file():
            return GenrePredictor.from_bundle(local), None
        if not local.exists():
            raise GenreflowError(f"{model_uri}: no such model folder or bundle; pass an MLflow "
                                 "model URI (models:/<name>@<alias>, runs:/<id>/audio_model) or "
                                 "a bundle folder with preprocess.json")
    from genreflow.tracking import require_registry

    require_registry(model_uri)
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


def predict_files(files: list[Path], model_uri: str = DEFAULT_MODEL_URI, top: int = 3,
                  audio: AudioConfig | None = None) -> list[dict]:
    """Genre probabilities for each file; a refused file gets ``error`` (one line naming
    the file) and ``reason`` (its class, see :data:`genreflow.contract.REASONS`).

    The contract is the logged model's own; for a bundle folder, ``audio`` (default
    :class:`AudioConfig`).
    """
    from genreflow.audio import AudioError
    from genreflow.contract import check_path

    predictor, carried = load_model(model_uri)
    contract = carried or audio or AudioConfig()
    classes = list(predictor.classes)
    results: list[dict] = []
    for f in files:
        path = Path(f)
        try:
            bad = check_path(path)
            if bad is not None:
                raise bad
            probs = predictor.probs_from_source(path, contract, where=str(path))
        except AudioError as exc:
            results.append({"file": str(path), "error": str(exc), "reason": exc.reason})
            continue
        except OSError as exc:  # permission denied, I/O error
            results.append({"file": str(path), "reason": "not_a_file",
                            "error": printable(f"{path}: not_a_file: {exc.strerror or exc}")})
            continue
        ranked = sorted(zip(classes, (float(p) for p in probs), strict=True),
                        key=lambda kv: kv[1], reverse=True)
        results.append({
            "file": str(path),
            "genre": ranked[0][0],
            "probability": ranked[0][1],
            "top": [[g, p] for g, p in ranked[:max(1, top)]],
            "probabilities": dict(zip(classes, (float(p) for p in probs), strict=True)),
        })
    return results


def format_table(results: list[dict]) -> str:
    """A plain-text table: each file with its top genres and percentages (cf. Fig. 12)."""
    if not results:
        return "(no files)"
    n_top = max((len(r.get("top", [])) for r in results), default=1) or 1
    names = [printable(Path(r["file"]).name) for r in results]
    genre_w = max((len(g) for r in results for g, _ in r.get("top", [])), default=0)
    cells = []
    for r in results:
        if "error" in r:
            cells.append([f"error: {r['error']}"])
        else:
            cells.append([f"{g:<{genre_w}} {100 * p:5.1f} %" for g, p in r["top"]])
    ok_rows = [c for r, c in zip(results, cells, strict=True) if "error" not in r]
    widths = [max([len(f"#{i + 1}")] + [len(c[i]) for c in ok_rows if i < len(c)])
              for i in range(n_top)]
    file_w = max(len("file"), *(len(n) for n in names))
    header = "  ".join(["file".ljust(file_w), *(f"#{i + 1}".ljust(w) for i, w in
                                                 enumerate(widths))]).rstrip()
    lines = [header, "-" * len(header)]
    for name, r, row in zip(names, results, cells, strict=True):
        if "error" in r:
            lines.append(f"{name.ljust(file_w)}  {row[0]}")
        else:
            lines.append("  ".join([name.ljust(file_w), *(c.ljust(w) for c, w in
                                                          zip(row, widths, strict=False))]).rstrip())
    return "\n".join(lines)
