"""``genreflow serve``: MLflow's own scoring app behind a front door of ours
(:mod:`genreflow.serving.guard` explains it), one app per uvicorn worker."""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path

import uvicorn

from genreflow.core.config import AudioConfig
from genreflow.core.errors import GenreflowError
from genreflow.core.quiet import import_tensorflow
from genreflow.serving.access import ENV_API_KEY_FILE, exposure_warning, read_api_key
from genreflow.serving.guard import Guard
from genreflow.serving.limits import ENV_LIMITS, Limits, limits_from_env
from genreflow.serving.protocol import MAX_HEADER_BYTES
from genreflow.tracking.store import require_registry

ENV_MODEL = "GENREFLOW_SERVE_MODEL"


def model_contract(model) -> AudioConfig:
    """The input contract of a loaded genreflow pyfunc model (defaults otherwise)."""
    try:
        inner = model.unwrap_python_model()
    except Exception:  # noqa: BLE001  (not a python model: nothing of ours to read)
        return AudioConfig()
    return getattr(inner, "audio", None) or AudioConfig()


ENV_MALLOC = "GENREFLOW_SERVE_MALLOC"  # "default" keeps glibc's own allocation thresholds
MALLOC_KEEP_BYTES = 32 * 2**20  # the largest mmap threshold glibc accepts on 64-bit


def keep_request_memory() -> bool:
    """Let glibc keep the few MB a request allocates (decoded audio, spectrogram, oneDNN's
    scratch space) for the next request, instead of unmapping or trimming them after each one
    and page-faulting them in again. MLflow runs each request in a worker thread (its own
    malloc arena); with these thresholds a lone request is served faster than with glibc's
    defaults (see docs/benchmarks.md, Allocator thresholds).

    Sets ``M_MMAP_THRESHOLD`` to 32 MB and ``M_TRIM_THRESHOLD`` to 64 MB with ``mallopt``;
    False (nothing changed) off glibc or with ``GENREFLOW_SERVE_MALLOC=default``."""
    import ctypes

    if os.environ.get(ENV_MALLOC) == "default":
        return False
    try:  # the process's own symbols: no library search (find_library runs ldconfig)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no mallopt (macOS): keep the allocator's defaults
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, MALLOC_KEEP_BYTES)
                and mallopt(m_trim_threshold, 2 * MALLOC_KEEP_BYTES))


def create_app():
    """The guarded scoring app for the model folder in ``$GENREFLOW_SERVE_MODEL``
    (a uvicorn factory: every worker process builds its own)."""
    from mlflow.pyfunc import scoring_server  # deferred: MLflow and TensorFlow take seconds

    keep_request_memory()
    import_tensorflow()
    model = scoring_server.load_model_with_mlflow_config(os.environ[ENV_MODEL])
    audio = model_contract(model)
    key_file = os.environ.get(ENV_API_KEY_FILE)
    return Guard(scoring_server.init(model), max_body_bytes=int(audio.max_request_mb * 2**20),
                 limits=limits_from_env(), api_key=read_api_key(Path(key_file) if key_file
                                                                else None))


def _check_port(host: str, port: int) -> None:
    """Fail before loading the model when the address is taken (uvicorn says so only after)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise GenreflowError(f"--host {host}: cannot resolve it ({exc})") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise GenreflowError(f"cannot listen on {host}:{port} ({exc.strerror}); is another "
                                 "server running there? Pass --port with a free port") from None


def serve(model_uri: str, host: str = "127.0.0.1", port: int = 5001, workers: int = 1,
          limits: Limits | None = None, api_key_file: Path | None = None,
          log_level: str = "info", log=print) -> None:
    """Download ``model_uri`` once, then run the guarded app under uvicorn."""
    import mlflow.artifacts  # deferred: MLflow's import takes seconds
    from mlflow.exceptions import MlflowException

    limits = (limits or Limits()).check()
    if workers < 1:
        raise GenreflowError(f"--workers: expected at least 1, got {workers}")
    with_key = read_api_key(api_key_file) is not None  # checked now, read again by each worker
    warning = exposure_warning(host, with_key)
    if warning:
        log(warning)
    _check_port(host, port)
    local = Path(model_uri)
    if not (local / "MLmodel").is_file():
        require_registry(model_uri)
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
        except (MlflowException, OSError) as exc:
            reason = (getattr(exc, "message", None) or str(exc)).splitlines()[0]
            raise GenreflowError(f"cannot load model {model_uri!r}: {reason}. Register a model "
                                 "first (`genreflow register`) or check MLFLOW_TRACKING_URI") from None
    if not (local / "MLmodel").is_file():
        raise GenreflowError(f"{model_uri}: not an MLflow model (no MLmodel file)")
    from genreflow.serving.pyfunc import is_audio_model_folder, not_an_audio_model

    if not is_audio_model_folder(local):
        raise GenreflowError(not_an_audio_model(model_uri))
    os.environ[ENV_MODEL] = str(local)
    os.environ[ENV_LIMITS] = limits.to_env()
    if api_key_file is not None:
        os.environ[ENV_API_KEY_FILE] = str(api_key_file.resolve())
    # MLflow's own deadline (whole seconds) backs up the guard's, which starts earlier
    os.environ["MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT"] = str(math.ceil(limits.timeout))
    uvicorn.run("genreflow.serving.http:create_app", factory=True, host=host, port=port,
                workers=workers, log_level=log_level,
                http="genreflow.serving.protocol:HeadDeadlineProtocol",
                timeout_keep_alive=limits.keep_alive, limit_concurrency=limits.max_connections,
                h11_max_incomplete_event_size=MAX_HEADER_BYTES)
