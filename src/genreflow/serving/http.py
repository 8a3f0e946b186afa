"""``genreflow serve``: MLflow's own scoring app behind a front door of ours.

MLflow's scoring server (``mlflow.pyfunc.scoring_server``, what ``mlflow models serve``
runs under uvicorn) reads and parses the whole JSON body before the model sees it, so the
model alone cannot bound a request's size or time. Two pieces of ours sit in front of it:

:class:`HeadDeadlineProtocol` (uvicorn's h11 protocol, subclassed) closes a connection
whose request head has not arrived ``header_timeout`` seconds after it connected or after
its previous answer (slow headers, idle sockets; uvicorn's own keep-alive timer is reset by
every byte a client trickles).

:class:`Guard`, an ASGI middleware, answers only ``/ping``, ``/health`` (open) and
``/invocations`` (with the API key when one is set); every other path is 404. On
``/invocations`` it:

- refuses a request that carries both Content-Length and Transfer-Encoding (400, then
  closes: the two framings disagree, the classic request-smuggling shape);
- refuses a body over ``audio.max_request_mb`` with 413 from its Content-Length before it
  is read, and otherwise counts the bytes actually received, whatever the framing
  (the unread body is discarded, never buffered; a client that sends
  ``Expect: 100-continue`` does not even upload it);
- holds one deadline, ``--timeout`` seconds from the request head, for reading the body,
  waiting for the model, running it and answering (408 while the body is still arriving,
  504 after);
- lets at most ``max_concurrent`` requests run the model and ``max_queued`` wait (503
  beyond), and never starts the model for a request whose client has gone or whose
  deadline passed;
- treats a request without Content-Type as JSON (MLflow answers it with HTTP 500), and
  also one sent as ``application/x-www-form-urlencoded`` (what ``curl -d`` and urllib
  send by default; MLflow answers 415, and the scoring API takes no form data);
- turns MLflow's ``Failed to predict data '<DataFrame repr>' ... Error: <reason>`` into
  genreflow's one-line reason, and adds ``reason``, the stable class of the refusal.

Any answer given before the whole body was read closes the connection (uvicorn would
otherwise keep reading and dropping the rest for as long as the client sends).
Rows and seconds of audio per request are bounded by the model itself (so that plain
``mlflow models serve`` enforces them too).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import math
import os
import re
import socket
from dataclasses import asdict, dataclass, fields
from functools import cache
from pathlib import Path

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from genreflow.audio.contract import ALL_REASONS
from genreflow.core.config import AudioConfig
from genreflow.core.errors import GenreflowError
from genreflow.core.quiet import import_tensorflow
from genreflow.tracking.store import require_registry

ENV_MODEL = "GENREFLOW_SERVE_MODEL"
ENV_LIMITS = "GENREFLOW_SERVE_LIMITS"  # the front door's limits, for every worker process
ENV_API_KEY = "GENREFLOW_API_KEY"  # the shared secret itself (or --api-key-file)
ENV_API_KEY_FILE = "GENREFLOW_SERVE_API_KEY_FILE"  # --api-key-file, for every worker process
API_KEY_HEADER = b"x-api-key"
OPEN_PATHS = frozenset({"/ping", "/health"})  # liveness for load balancers: no key, no body
MAX_HEADER_BYTES = 16 * 2**10  # request line + headers (and a chunk-size line), h11's limit
CROWDED_HEAD_SECONDS = 1.0  # head deadline of a connection over --max-connections
API_KEY_CHARS = (16, 4096)
_MLFLOW_PREFIX = re.compile(r"^Failed to predict data .*?\nError: ", re.DOTALL)
_SCHEMA_PREFIX = re.compile(r"^Failed to enforce schema of data .*? with schema .*?'\. Error: ",
                            re.DOTALL)
_NOT_JSON = re.compile(r"Ensure that input is a valid JSON formatted string\. Error: '(.*?)'\nInput: ",
                       re.DOTALL)
_REASON = re.compile(r"^(?:row \d+|request): ([a-z_]+): ")
# the front door's own refusals (the model's are genreflow.audio.contract.REQUEST_REASONS)
HTTP_REASONS: dict[str, str] = {
    "unauthorized": "no or wrong X-API-Key header (401)",
    "not_found": "a path other than /invocations, /ping and /health (404)",
    "bad_request": "both Content-Length and Transfer-Encoding (400)",
    "request_too_large": "body larger than audio.max_request_mb (413)",
    "request_timeout": "the body did not arrive within --timeout (408)",
    "overloaded": "--max-concurrent requests running and --max-queued waiting (503)",
    "timeout": "no answer within --timeout (504)",
}


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


@dataclass(frozen=True)
class Limits:
    """What one client may hold of a scoring worker (``genreflow serve`` options)."""

    timeout: float = 60.0  # one deadline per request: body, queue, model and answer
    header_timeout: float = 10.0  # a request head must arrive within this
    keep_alive: int = 5  # idle seconds between requests (uvicorn's timeout_keep_alive)
    max_connections: int = 256  # per worker; uvicorn answers 503 beyond (limit_concurrency)
    max_concurrent: int = 4  # requests running the model at once, per worker
    max_queued: int = 16  # requests waiting for the model, per worker; 503 beyond

    def check(self) -> Limits:
        """Itself, or a :class:`GenreflowError` naming the first option out of range."""
        least = {"max_queued": 0}
        for f in fields(self):
            value = getattr(self, f.name)
            if value < least.get(f.name, 1):
                option = "--keep-alive" if f.name == "keep_alive" else f"--{f.name.replace('_', '-')}"
                raise GenreflowError(f"{option}: expected at least {least.get(f.name, 1)}, "
                                     f"got {value}")
        if self.keep_alive > self.header_timeout:
            raise GenreflowError(f"--keep-alive ({self.keep_alive} s) is longer than "
                                 f"--header-timeout ({self.header_timeout:g} s), which ends it")
        return self

    def to_env(self) -> str:
        return json.dumps(asdict(self))


@cache
def limits_from_env() -> Limits:
    """The limits ``serve`` handed to this worker process (defaults otherwise)."""
    raw = os.environ.get(ENV_LIMITS)
    return Limits(**json.loads(raw)) if raw else Limits()


def read_api_key(path: Path | None) -> str | None:
    """The shared secret from ``path``, else from ``$GENREFLOW_API_KEY``, else None.
    Its value never appears in a message."""
    if path is None:
        key, source = os.environ.get(ENV_API_KEY), f"${ENV_API_KEY}"
        if key is None:
            return None
    else:
        source = f"--api-key-file {path}"
        if not path.is_file():
            raise GenreflowError(f"{source}: not a file")
        try:
            with open(path, "rb") as f:
                key = f.read(2 * API_KEY_CHARS[1]).decode("ascii")
        except OSError as exc:
            raise GenreflowError(f"{source}: cannot read it ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise GenreflowError(f"{source}: the key must be printable ASCII") from None
    key = key.strip()
    if not API_KEY_CHARS[0] <= len(key) <= API_KEY_CHARS[1]:
        raise GenreflowError(f"{source}: the key must be {API_KEY_CHARS[0]} to "
                             f"{API_KEY_CHARS[1]} characters, got {len(key)}")
    if not all("!" <= c <= "~" for c in key):
        raise GenreflowError(f"{source}: the key must be printable ASCII without spaces")
    return key


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback address (no lookup for an IP)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def exposure_warning(host: str, with_key: bool) -> str | None:
    """What ``serve`` prints when ``host`` is reachable from other machines."""
    if is_loopback(host):
        return None
    reach = f"--host {host} is not a loopback address: other machines can reach this server"
    if with_key:
        return (f"warning: {reach}. It speaks plain HTTP, so the API key and the audio cross "
                "the network in clear: put it behind a reverse proxy that terminates TLS "
                "(README, Registry, serving and prediction)")
    return (f"warning: {reach}, and it has no authentication: anyone who can connect can run "
            "the model. Pass --api-key-file, and put it behind a reverse proxy that terminates "
            "TLS and authenticates (README, Registry, serving and prediction)")


class _Refusal(Exception):
    """An answer of the front door's own: ``request: <reason>: <detail>`` with ``status``."""

    def __init__(self, status: int, reason: str, detail: str, close: bool = False,
                 headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail, self.close = status, reason, detail, close
        self.headers = headers


class _Gone(Exception):
    """The client hung up: nobody to answer."""


def _json_response(status: int, payload: dict, headers=()) -> tuple[dict, dict]:
    body = json.dumps(payload).encode()
    return ({"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode()), *headers]},
            {"type": "http.response.body", "body": body, "more_body": False})


def _has_body(headers: dict) -> bool:
    return b"transfer-encoding" in headers or headers.get(b"content-length", b"0") != b"0"


class Guard:
    """ASGI middleware around MLflow's scoring app (see the module docstring)."""

    def __init__(self, app, max_body_bytes: int, limits: Limits | None = None,
                 api_key: str | None = None) -> None:
        self.app = app
        self.max_body_bytes = int(max_body_bytes)
        self.limits = limits or Limits()
        self.api_key = api_key.encode() if api_key else None
        self.slots = asyncio.Semaphore(self.limits.max_concurrent)
        self.waiting = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":  # lifespan
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        path = scope.get("path")
        try:
            if path in OPEN_PATHS:
                if _has_body(headers):
                    raise _Refusal(400, "bad_request", f"{path} takes no body", close=True)
                await self.app(scope, receive, send)
            elif path != "/invocations":
                raise _Refusal(404, "not_found", f"no such path {path!r}; the scoring API is "
                               "POST /invocations", close=_has_body(headers))
            else:
                await self._invocations(scope, headers, receive, send)
        except _Refusal as refusal:
            close = ((b"connection", b"close"),) if refusal.close else ()
            start, body = _json_response(refusal.status, {
                "error_code": "INVALID_PARAMETER_VALUE", "reason": refusal.reason,
                "message": f"request: {refusal.reason}: {refusal.detail}"},
                (*refusal.headers, *close))
            await send(start)
            await send(body)
        except _Gone:
            pass

    async def _invocations(self, scope, headers: dict, receive, send) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.timeout
        self._check_key(headers)
        if b"content-length" in headers and b"transfer-encoding" in headers:
            raise _Refusal(400, "bad_request", "both Content-Length and Transfer-Encoding; "
                           "send one of them", close=True)
        declared = int(headers.get(b"content-length", b"-1"))  # h11 checked it is digits
        if declared > self.max_body_bytes:
            expecting = headers.get(b"expect", b"").lower() == b"100-continue"
            drained = not expecting and await _drain(receive, deadline)
            raise _Refusal(413, "request_too_large", self._too_large(declared), close=not drained)
        body = await self._read_body(receive, deadline)
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if content_type in (b"", b"application/x-www-form-urlencoded"):  # none, or curl -d's
            scope = {**scope, "headers": [*((k, v) for k, v in scope["headers"]
                                            if k.lower() != b"content-type"),
                                          (b"content-type", b"application/json")]}
        gone = asyncio.ensure_future(receive())  # http.disconnect once the client hangs up
        try:
            await self._take_slot(gone, deadline)
            try:
                await self._answer(scope, _replay(body, gone), send, gone, deadline)
            finally:
                self.slots.release()
        finally:
            gone.cancel()

    def _check_key(self, headers: dict) -> None:
        if self.api_key is None:
            return
        given = headers.get(API_KEY_HEADER)
        if given is None or not hmac.compare_digest(given, self.api_key):
            detail = "missing X-API-Key header" if given is None else "wrong X-API-Key"
            raise _Refusal(401, "unauthorized", detail, close=_has_body(headers))

    async def _read_body(self, receive, deadline: float) -> bytes:
        """The whole body, counted as it arrives, by the deadline."""
        chunks, size = [], 0
        while True:
            message = await _receive_by(receive, deadline)
            if message is None:
                raise _Refusal(408, "request_timeout", "the body did not arrive within "
                               f"{self.limits.timeout:g} s (--timeout)", close=True)
            if message["type"] == "http.disconnect":
                raise _Gone
            chunk = message.get("body", b"")
            size += len(chunk)
            more = message.get("more_body", False)
            if size > self.max_body_bytes:
                chunks.clear()
                drained = not more or await _drain(receive, deadline)
                raise _Refusal(413, "request_too_large", self._too_large(None),
                               close=not drained)
            chunks.append(chunk)
            if not more:
                return b"".join(chunks)

    async def _take_slot(self, gone, deadline: float) -> None:
        """A place to run the model, or a refusal; none for a client that went away."""
        if not self.slots.locked():
            await self.slots.acquire()  # returns at once: no other request can slip in
            return
        if self.waiting >= self.limits.max_queued:
            raise _Refusal(503, "overloaded", f"{self.limits.max_concurrent} requests running "
                           f"and {self.waiting} waiting (--max-concurrent, --max-queued); "
                           "retry later", headers=((b"retry-after", b"1"),))
        self.waiting += 1
        acquire = asyncio.ensure_future(self.slots.acquire())
        try:
            done, _ = await asyncio.wait({acquire, gone}, return_when=asyncio.FIRST_COMPLETED,
                                         timeout=max(0.0, deadline - _now()))
        finally:
            self.waiting -= 1
        if acquire in done and deadline > _now() and gone not in done:
            return
        if acquire in done:
            self.slots.release()
        else:
            acquire.cancel()  # a semaphore hands a slot granted meanwhile to the next waiter
        if gone in done:
            raise _Gone
        raise _Refusal(504, "timeout", f"no free model within {self.limits.timeout:g} s "
                       "(--timeout); the model did not run")

    async def _answer(self, scope, receive, send, gone, deadline: float) -> None:
        """Run MLflow's app until it answers, the client goes or the deadline passes."""
        rewriter = _Rewriter(send)
        task = asyncio.ensure_future(self.app(scope, receive, rewriter))
        done, _ = await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED,
                                     timeout=max(0.0, deadline - _now()))
        if task in done:
            task.result()
            return
        task.cancel()  # MLflow's to_thread call: a prediction not yet started never starts
        await asyncio.wait({task}, timeout=1.0)
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()
        if gone in done:
            raise _Gone
        if rewriter.started:  # headers already on the wire: uvicorn closes the connection
            return
        raise _Refusal(504, "timeout", f"no answer within {self.limits.timeout:g} s (--timeout)",
                       close=True)

    def _too_large(self, size: int | None) -> str:
        limit = self.max_body_bytes / 2**20
        got = (f"a {size / 2**20:.1f} MB request body" if size is not None
               else f"a request body over {limit:g} MB (chunked upload)")
        return (f"{got}, the maximum is {limit:g} MB (audio.max_request_mb); send fewer or "
                "shorter files per request")


def _now() -> float:
    return asyncio.get_running_loop().time()


async def _receive_by(receive, deadline: float) -> dict | None:
    """The next ASGI message, or None when the deadline passes first."""
    try:
        return await asyncio.wait_for(receive(), timeout=max(0.0, deadline - _now()))
    except TimeoutError:
        return None


async def _drain(receive, deadline: float) -> bool:
    """Read and drop the rest of an upload until the deadline; True when it all arrived (an
    ordinary client sends the whole body before reading the answer: it then gets the
    refusal instead of a reset connection)."""
    while True:
        message = await _receive_by(receive, deadline)
        if message is None or message["type"] != "http.request":
            return False
        if not message.get("more_body"):
            return True


def _replay(body: bytes, gone):
    """``receive`` for MLflow's app: the body read already, then the client's hang-up."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await asyncio.shield(gone)

    return replay


class HeadDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, plus a deadline for each request head: ``header_timeout``
    seconds from the connection or from the previous answer (a second for a connection over
    ``--max-connections``, which uvicorn answers 503 anyway). Not reset by trickled bytes."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        crowded = (self.limit_concurrency is not None
                   and len(self.connections) > self.limit_concurrency)
        self._arm(CROWDED_HEAD_SECONDS if crowded else limits_from_env().header_timeout)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the head is in
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm(limits_from_env().header_timeout)

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(seconds, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


class _Rewriter:
    """``send`` that rewrites MLflow's JSON error bodies (status >= 400) to genreflow's."""

    def __init__(self, send) -> None:
        self.send = send
        self.start: dict | None = None
        self.started = False  # a response start went out (it cannot be replaced)
        self.chunks: list[bytes] = []

    async def __call__(self, message) -> None:
        if message["type"] == "http.response.start" and message["status"] >= 400:
            self.start = message
            return
        if self.start is None or message["type"] != "http.response.body":
            self.started = self.started or message["type"] == "http.response.start"
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
        self.started = True
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
                workers=workers, log_level=log_level, http="genreflow.serving.http:HeadDeadlineProtocol",
                timeout_keep_alive=limits.keep_alive, limit_concurrency=limits.max_connections,
                h11_max_incomplete_event_size=MAX_HEADER_BYTES)
