"""The front door of ``genreflow serve``, in front of MLflow's own scoring app.

MLflow's scoring server (``mlflow.pyfunc.scoring_server``, what ``mlflow models serve``
runs under uvicorn) reads and parses the whole JSON body before the model sees it, so the
model alone cannot bound a request's size or time. Two pieces of ours sit in front of it:

:class:`~genreflow.serving.protocol.HeadDeadlineProtocol` (uvicorn's h11 protocol,
subclassed) closes a connection whose request head has not arrived ``header_timeout``
seconds after it connected or after its previous answer (slow headers, idle sockets;
uvicorn's own keep-alive timer is reset by every byte a client trickles).

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
import json

from genreflow.serving.access import API_KEY_HEADER, OPEN_PATHS
from genreflow.serving.limits import Limits
from genreflow.serving.messages import Rewriter
from genreflow.serving.receive import drain, now, receive_by, replay

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
            drained = not expecting and await drain(receive, deadline)
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
                await self._answer(scope, replay(body, gone), send, gone, deadline)
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
            message = await receive_by(receive, deadline)
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
                drained = not more or await drain(receive, deadline)
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
                                         timeout=max(0.0, deadline - now()))
        finally:
            self.waiting -= 1
        if acquire in done and deadline > now() and gone not in done:
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
        rewriter = Rewriter(send)
        task = asyncio.ensure_future(self.app(scope, receive, rewriter))
        done, _ = await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED,
                                     timeout=max(0.0, deadline - now()))
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
