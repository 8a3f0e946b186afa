"""``genreflow serve``: MLflow's own scoring app behind a small guard of ours.

MLflow's scoring server (``mlflow.pyfunc.scoring_server``, what ``mlflow models serve``
runs under uvicorn) reads and parses the whole JSON body before the model sees it, so the
model alone cannot bound a request's size. :class:`Guard` is an ASGI middleware that:

- refuses a body over ``audio.max_request_mb`` with HTTP 413 from its Content-Length,
  before the body is read (the unread body is discarded, never buffered; a client that
  sends ``Expect: 100-continue`` does not even upload it);
- treats a request without Content-Type as JSON (MLflow answers it with HTTP 500), and
  also one sent as ``application/x-www-form-urlencoded`` (what ``curl -d`` and urllib
  send by default; MLflow answers 415, and the scoring API takes no form data);
- turns MLflow's ``Failed to predict data '<DataFrame repr>' ... Error: <reason>`` into
  genreflow's one-line reason, and adds ``reason``, the stable class of the refusal.

Rows and seconds of audio per request are bounded by the model itself (so that plain
``mlflow models serve`` enforces them too).
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import socket
import time
from pathlib import Path

import uvicorn

from genreflow.audio.contract import ALL_REASONS
from genreflow.core.config import AudioConfig
from genreflow.core.errors import GenreflowError
from genreflow.core.quiet import import_tensorflow
from genreflow.tracking.store import require_registry

ENV_MODEL = "GENREFLOW_SERVE_MODEL"
_MLFLOW_PREFIX = re.compile(r"^Failed to predict data .*?\nError: ", re.DOTALL)
_SCHEMA_PREFIX = re.compile(r"^Failed to enforce schema of data .*? with schema .*?'\. Error: ",
                            re.DOTALL)
_NOT_JSON = re.compile(r"Ensure that input is a valid JSON formatted string\. Error: '(.*?)'\nInput: ",
                       re.DOTALL)
_REASON = re.compile(r"^(?:row \d+|request): ([a-z_]+): ")
DRAIN_SECONDS = 30.0  # how long an oversized upload is read (and dropped) before hanging up


def clean_message(message: str) -> tuple[str, str | None]:
    """MLflow's error message without its echo of the input; and genreflow's reason class."""
    not_json = _NOT_JSON.search(message)
    if not_json:  # MLflow echoes the whole unparsed body after "Input:": keep only why
        message = f"request: bad_request: the body is not valid JSON ({not_json.group(1)})"
    message = _MLFLOW_PREFIX.sub("", message, count=1)
    schema = _SCHEMA_PREFIX.sub("", message, count=1)
    if schema != message:  # MLflow refused the table before the model saw it
        message = f"request: bad_request: {' '.join(schema.split())}"
    match = _REASON.match(message)
    reason = match.group(1) if match and match.group(1) in ALL_REASONS else None
    return message, reason


def _json_response(status: int, payload: dict) -> tuple[dict, dict]:
    body = json.dumps(payload).encode()
    return ({"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())]},
            {"type": "http.response.body", "body": body, "more_body": False})


class Guard:
    """ASGI middleware around MLflow's scoring app (see the module docstring)."""

    def __init__(self, app, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = int(max_body_bytes)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("path") != "/invocations":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if content_type in (b"", b"application/x-www-form-urlencoded"):  # none, or curl -d's
            scope = {**scope, "headers": [*((k, v) for k, v in scope["headers"]
                                            if k.lower() != b"content-type"),
                                          (b"content-type", b"application/json")]}
        length = headers.get(b"content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                size = -1
            if size < 0:
                await self._refuse(send, 400, "bad_request", "Content-Length is not a number")
                return
            if size > self.max_body_bytes:
                if headers.get(b"expect", b"").lower() != b"100-continue":
                    await _drain(receive)
                await self._too_large(send, size)
                return
        else:  # chunked upload: count while reading, keep at most the limit
            body = bytearray()
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body += message.get("body", b"")
                if len(body) > self.max_body_bytes:
                    body = bytearray()
                    if message.get("more_body"):
                        await _drain(receive)
                    await self._too_large(send, None)
                    return
                if not message.get("more_body"):
                    break
            receive = _replay(bytes(body), receive)
        await self.app(scope, receive, _Rewriter(send))

    async def _too_large(self, send, size: int | None) -> None:
        limit = self.max_body_bytes / 2**20
        got = (f"a {size / 2**20:.1f} MB request body" if size is not None
               else f"a request body over {limit:g} MB (chunked upload)")
        await self._refuse(send, 413, "request_too_large",
                           f"{got}, the maximum is {limit:g} MB "
                           "(audio.max_request_mb); send fewer or shorter files per request")

    @staticmethod
    async def _refuse(send, status: int, reason: str, detail: str) -> None:
        start, body = _json_response(status, {"error_code": "INVALID_PARAMETER_VALUE",
                                              "message": f"request: {reason}: {detail}",
                                              "reason": reason})
        await send(start)
        await send(body)


async def _drain(receive) -> None:
    """Read and drop the rest of an upload (so that an ordinary client, which sends the
    whole body before reading the answer, gets the 413 instead of a reset connection)."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class _Rewriter:
    """``send`` that rewrites MLflow's JSON error bodies (status >= 400) to genreflow's."""

    def __init__(self, send) -> None:
        self.send = send
        self.start: dict | None = None
        self.chunks: list[bytes] = []

    async def __call__(self, message) -> None:
        if message["type"] == "http.response.start" and message["status"] >= 400:
            self.start = message
            return
        if self.start is None or message["type"] != "http.response.body":
            await self.send(message)
            return
        self.chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        body = b"".join(self.chunks)
        try:
            payload = json.loads(body)
            if isinstance(payload, dict) and isinstance(payload.get("message"), str):
                payload["message"], reason = clean_message(payload["message"])
                if reason is not None:
                    payload["reason"] = reason
                body = json.dumps(payload).encode()
        except ValueError:  # not JSON (a plain-text 415, the 504 text): pass it on
            pass
        headers = [(k, v) for k, v in self.start.get("headers", [])
                   if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await self.send({**self.start, "headers": headers})
        await self.send({"type": "http.response.body", "body": body, "more_body": False})


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
    malloc arena); with glibc's defaults a lone 30 s request was served in 73 ms at the
    median, with these thresholds in 60-66 ms (three runs of four, 2-core AVX2 machine).

    Sets ``M_MMAP_THRESHOLD`` to 32 MB and ``M_TRIM_THRESHOLD`` to 64 MB with ``mallopt``;
    False (nothing changed) off glibc or with ``GENREFLOW_SERVE_MALLOC=default``."""
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
    # deferred: MLflow import (see docs/benchmarks.md, Import cost)
    from mlflow.pyfunc import scoring_server

    keep_request_memory()
    import_tensorflow()
    model = scoring_server.load_model_with_mlflow_config(os.environ[ENV_MODEL])
    audio = model_contract(model)
    return Guard(scoring_server.init(model), max_body_bytes=int(audio.max_request_mb * 2**20))


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
          timeout: int = 60, log_level: str = "info") -> None:
    """Download ``model_uri`` once, then run the guarded app under uvicorn."""
    # deferred: MLflow import (see docs/benchmarks.md, Import cost)
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    if workers < 1:
        raise GenreflowError(f"--workers: expected at least 1, got {workers}")
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
    # deferred: MLflow import (see docs/benchmarks.md, Import cost)
    from genreflow.serving.pyfunc import is_audio_model_folder, not_an_audio_model

    if not is_audio_model_folder(local):
        raise GenreflowError(not_an_audio_model(model_uri))
    os.environ[ENV_MODEL] = str(local)
    os.environ["MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT"] = str(timeout)
    uvicorn.run("genreflow.serving.http:create_app", factory=True, host=host, port=port,
                workers=workers, log_level=log_level)
