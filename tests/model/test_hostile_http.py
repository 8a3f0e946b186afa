"""``genreflow serve`` against hostile clients: raw sockets on loopback, one real server with a
real tiny model (conftest's), small limits, every socket with a timeout.

Limits of the server under test: ``--timeout 3``, ``--header-timeout 2``, ``--keep-alive 1``,
``--max-connections 150``, ``--max-concurrent 1``, ``--max-queued 1``, an API key; the
model's ``max_request_mb`` is 2 MB (conftest's ``SERVED_CONTRACT``).
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from tests_helpers import free_port, started_server

pytestmark = pytest.mark.integration

TIMEOUT, HEADER_TIMEOUT, MAX_CONNECTIONS = 3.0, 2.0, 150
KEY = "k3y-for-tests-" + "x" * 20


def _wav_b64(seconds: float, sr: int = 22050) -> str:
    buf = io.BytesIO()
    t = np.arange(int(seconds * sr)) / sr
    sf.write(buf, (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), sr, format="WAV",
             subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _body(*rows: str) -> bytes:
    return json.dumps({"dataframe_split": {"columns": ["audio"],
                                           "data": [[r] for r in rows]}}).encode()


@pytest.fixture(scope="module")
def server(tiny_model):
    """One ``genreflow serve`` of the tiny model on loopback, with small limits."""
    key_file = tiny_model.root / "hostile-api-key"
    key_file.write_text(KEY + "\n")
    port = free_port()
    log = tiny_model.root / "hostile-server.log"
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("GENREFLOW_API_KEY", None)
    cmd = [sys.executable, "-m", "genreflow.cli", "serve", str(tiny_model.model),
           "--params", str(tiny_model.root / "none.yaml"), "--host", "127.0.0.1",
           "--port", str(port), "--timeout", str(TIMEOUT), "--header-timeout",
           str(HEADER_TIMEOUT), "--keep-alive", "1", "--max-connections", str(MAX_CONNECTIONS),
           "--max-concurrent", "1", "--max-queued", "1", "--api-key-file", str(key_file)]
    with started_server(cmd, port, log, env=env) as (_, proc):
        srv = SimpleNamespace(port=port, proc=proc, log=log, good=_body(_wav_b64(3.0)))
        assert _request(srv, srv.good)[0] == 200  # warm-up: the model's first call
        yield srv
    text = log.read_text(errors="replace")
    assert "Traceback" not in text and KEY not in text, text[-3000:]


def _connect(srv, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _head(path: str = "/invocations", method: str = "POST", key: str | None = KEY,
          **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    if key is not None:
        lines.append(f"X-API-Key: {key}")
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_response(sock: socket.socket) -> tuple[int, dict, bytes]:
    """Status, headers and body of one response (Content-Length framed, as ours are)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data[:200]!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    size = int(headers.get("content-length", 0))
    while len(rest) < size:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside a response body"
        rest += chunk
    return int(lines[0].split()[1]), headers, rest[:size]


def _closed_by_server(sock: socket.socket) -> bool:
    """True when the server has closed the connection (reads until EOF or a reset)."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


def _request(srv, body: bytes, path: str = "/invocations", key: str | None = KEY,
             method: str = "POST") -> tuple[int, dict, bytes]:
    with _connect(srv) as sock:
        sock.sendall(_head(path, method, key, Content_Length=str(len(body))) + body)
        return _read_response(sock)


def _reason(body: bytes) -> str:
    return json.loads(body)["reason"]


def _send_in_background(sock: socket.socket, chunks, pause: float = 0.0) -> threading.Thread:
    """Send ``chunks`` (an iterable) on ``sock`` from a thread, until done or a send fails."""
    def run() -> None:
        try:
            for chunk in chunks:
                sock.sendall(chunk)
                if pause:
                    time.sleep(pause)
        except OSError:  # the server hung up: what the test expects sooner or later
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _chunked(total: int, size: int = 2**16):
    block = b"%x\r\n" % size + b"A" * size + b"\r\n"
    for _ in range(total // size):
        yield block
    yield b"0\r\n\r\n"


def test_content_length_and_chunked_together_is_refused(server):
    """The framings disagree (5 bytes by Content-Length, a chunked stream): 400 and a closed
    connection, before any of the body is parsed."""
    with _connect(server) as sock:
        t0 = time.monotonic()
        sock.sendall(_head(Content_Length="5", Transfer_Encoding="chunked"))
        sender = _send_in_background(sock, _chunked(200 * 2**20))
        status, headers, body = _read_response(sock)
        assert status == 400 and _reason(body) == "bad_request", body
        assert "both Content-Length and Transfer-Encoding" in json.loads(body)["message"]
        assert headers.get("connection") == "close"
        assert _closed_by_server(sock) and time.monotonic() - t0 < 2.0
        sock.close()
        sender.join(timeout=5)


def test_200_mb_chunked_body_is_counted_and_refused_without_memory(server):
    import psutil

    proc = psutil.Process(server.proc.pid)
    before, peak, stop = proc.memory_info().rss, [0], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        with _connect(server) as sock:
            t0 = time.monotonic()
            sock.sendall(_head(Transfer_Encoding="chunked"))
            sender = _send_in_background(sock, _chunked(200 * 2**20))
            status, _, body = _read_response(sock)
            assert status == 413 and _reason(body) == "request_too_large", body
            assert "over 2 MB" in json.loads(body)["message"]
            assert time.monotonic() - t0 < TIMEOUT + 1.0
            sock.close()
            sender.join(timeout=10)
    finally:
        stop.set()
        watcher.join(timeout=5)
    assert peak[0] - before < 50 * 2**20, (before, peak[0])


@pytest.mark.parametrize("declared", [10 * 2**20, 2**20])
def test_a_declared_body_that_never_comes_is_closed_by_the_deadline(server, declared):
    """10 MB (over the limit: drained until the deadline, then 413) or 1 MB (408)."""
    with _connect(server) as sock:
        t0 = time.monotonic()
        sock.sendall(_head(Content_Length=str(declared)))
        status, headers, body = _read_response(sock)
        waited = time.monotonic() - t0
        assert (status, _reason(body)) == ((413, "request_too_large") if declared > 2 * 2**20
                                           else (408, "request_timeout")), body
        assert headers.get("connection") == "close"
        assert TIMEOUT - 0.5 < waited < TIMEOUT + 1.0
        assert _closed_by_server(sock) and time.monotonic() - t0 < TIMEOUT + 1.5


def test_a_trickled_chunked_body_is_cut_at_the_deadline(server):
    with _connect(server) as sock:
        t0 = time.monotonic()
        sock.sendall(_head(Transfer_Encoding="chunked"))
        sender = _send_in_background(sock, (b"1\r\nA\r\n" for _ in range(10)), pause=1.0)
        status, headers, body = _read_response(sock)
        assert status == 408 and _reason(body) == "request_timeout", body
        assert headers.get("connection") == "close"
        assert _closed_by_server(sock) and time.monotonic() - t0 < TIMEOUT + 1.0
        sock.close()
        sender.join(timeout=5)


@pytest.mark.parametrize("trickle", [True, False])
def test_slow_or_missing_headers_are_closed(server, trickle):
    """Slowloris (a header byte every 0.3 s) and a socket that sends nothing: closed at
    --header-timeout, whatever uvicorn's keep-alive timer (reset by every byte) says."""
    with _connect(server) as sock:
        t0 = time.monotonic()
        if trickle:
            head = _head(Content_Length="10")
            sender = _send_in_background(sock, (head[i:i + 1] for i in range(len(head) - 4)),
                                         pause=0.3)
        assert _closed_by_server(sock)
        assert HEADER_TIMEOUT - 0.3 < time.monotonic() - t0 < HEADER_TIMEOUT + 1.0
        sock.close()
        if trickle:
            sender.join(timeout=5)


def test_an_idle_keep_alive_connection_is_closed(server):
    with _connect(server) as sock:
        sock.sendall(_head(Content_Length=str(len(server.good))) + server.good)
        assert _read_response(sock)[0] == 200
        t0 = time.monotonic()
        sock.sendall(b"GET /pi")  # and nothing more: the next head never completes
        assert _closed_by_server(sock) and time.monotonic() - t0 < HEADER_TIMEOUT + 1.0


def test_a_good_request_is_answered_beside_100_hostile_sockets(server):
    socks = [_connect(server) for _ in range(100)]
    try:
        for i, sock in enumerate(socks):  # half idle, half in the middle of a head
            if i % 2:
                sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.2)
        t0 = time.monotonic()
        status, _, body = _request(server, server.good)
        assert status == 200, body
        assert time.monotonic() - t0 < 1.0
    finally:
        for sock in socks:
            sock.close()


def test_over_max_connections_gets_503(server):
    socks = [_connect(server) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)
        status, _, _ = _request(server, server.good)
        assert status == 503
    finally:
        for sock in socks:
            sock.close()
    time.sleep(0.2)
    assert _request(server, server.good)[0] == 200


def test_over_the_model_queue_gets_503_and_nothing_is_left_behind(server):
    """--max-concurrent 1, --max-queued 1: of 8 requests sent at once, at most two are
    answered and the others get 503 at once; the server is free again afterwards."""
    body = _body(*[_wav_b64(5.0)] * 4)
    barrier, results = threading.Barrier(8), []

    def client() -> None:
        with _connect(server) as sock:
            payload = _head(Content_Length=str(len(body))) + body
            barrier.wait(timeout=10)
            t0 = time.monotonic()
            sock.sendall(payload)
            status, headers, answer = _read_response(sock)
            results.append((status, headers, answer, time.monotonic() - t0))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT + 5)
    statuses = sorted(r[0] for r in results)
    assert len(results) == 8 and set(statuses) <= {200, 503}, statuses
    assert statuses.count(200) >= 1 and statuses.count(503) >= 4, statuses
    for status, headers, answer, seconds in results:
        assert seconds < TIMEOUT + 0.5
        if status == 503:
            assert _reason(answer) == "overloaded" and headers.get("retry-after") == "1"
    assert _request(server, server.good)[0] == 200


def test_api_key(server):
    status, _, body = _request(server, server.good, key=None)
    assert status == 401 and _reason(body) == "unauthorized", body
    assert "missing X-API-Key" in json.loads(body)["message"]
    status, _, body = _request(server, server.good, key=KEY[:-1] + "y")
    assert status == 401 and _reason(body) == "unauthorized", body
    assert KEY[:-1] not in body.decode()
    assert _request(server, server.good)[0] == 200
    with _connect(server) as sock:  # health checks stay open
        sock.sendall(_head("/ping", "GET", key=None))
        assert _read_response(sock)[0] == 200


@pytest.mark.parametrize("path", ["/docs", "/openapi.json", "/redoc", "/version",
                                  "/docs/oauth2-redirect", "/invocations/../docs"])
def test_only_the_scoring_api_is_served(server, path):
    for key in (None, KEY):
        with _connect(server) as sock:
            sock.sendall(_head(path, "GET", key=key))
            status, _, body = _read_response(sock)
        assert status == 404 and _reason(body) == "not_found", (path, body)


def test_a_public_host_prints_a_warning_without_binding(tiny_model, tmp_path):
    from typer.testing import CliRunner

    from genreflow.cli import app
    from genreflow.serving.access import exposure_warning

    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert exposure_warning(host, with_key=False) is None
    for host in ("0.0.0.0", "::", "192.0.2.10"):
        assert "no authentication" in exposure_warning(host, with_key=False)
        assert "in clear" in exposure_warning(host, with_key=True)
    # the CLI prints it first, then stops at a bad option: nothing is bound
    none = ["--params", str(tmp_path / "none.yaml")]
    result = CliRunner().invoke(app, ["serve", str(tiny_model.model), "--host", "0.0.0.0",
                                      "--workers", "0", *none])
    assert result.exit_code == 1 and "error: --workers" in result.output, result.output
    result = CliRunner().invoke(app, ["serve", str(tiny_model.model), "--host", "0.0.0.0",
                                      "--max-concurrent", "0", *none])
    assert result.exit_code == 1 and "error: --max-concurrent: expected at least 1" in (
        result.output), result.output


def test_api_key_file_errors_name_the_file_not_the_key(tiny_model, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from genreflow.cli import app

    monkeypatch.delenv("GENREFLOW_API_KEY", raising=False)
    short = tmp_path / "short"
    short.write_text("s3cret\n")
    base = ["serve", str(tiny_model.model), "--params", str(tmp_path / "none.yaml"),
            "--port", str(free_port())]
    for path, message in ((tmp_path / "absent", "not a file"),
                          (short, "the key must be 16 to 4096 characters, got 6")):
        result = CliRunner().invoke(app, [*base, "--api-key-file", str(path)])
        assert result.exit_code == 1 and f"--api-key-file {path}: {message}" in result.output
        assert "s3cret" not in result.output and "Traceback" not in result.output
    monkeypatch.setenv("GENREFLOW_API_KEY", "sh0rtkey")
    result = CliRunner().invoke(app, base)
    assert result.exit_code == 1 and "$GENREFLOW_API_KEY: the key must be" in result.output
    assert "sh0rtkey" not in result.output


@pytest.fixture
def slow_app_server():
    """The guard around a stand-in app whose 'prediction' takes 2 s in a thread, under an
    in-process uvicorn with genreflow's protocol: --timeout 1, one slot, four waiting."""
    import asyncio

    import uvicorn

    from genreflow.serving.guard import Guard
    from genreflow.serving.limits import Limits
    from genreflow.serving.protocol import HeadDeadlineProtocol

    started: list[str] = []

    async def slow_app(scope, receive, send) -> None:
        await receive()
        started.append(scope["query_string"].decode())
        await asyncio.to_thread(time.sleep, 2.0)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    guard = Guard(slow_app, max_body_bytes=1000, limits=Limits(timeout=1.0, max_concurrent=1,
                                                               max_queued=4))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(guard, host="127.0.0.1", port=port, lifespan="off",
                                           http=HeadDeadlineProtocol, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.05)
    try:
        yield SimpleNamespace(port=port, started=started)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_the_deadline_covers_the_model_and_a_gone_client_never_reaches_it(slow_app_server):
    srv = slow_app_server
    first, gone = _connect(srv), _connect(srv)
    t0 = time.monotonic()
    first.sendall(_head("/invocations?first", key=None, Content_Length="2") + b"{}")
    time.sleep(0.2)  # the first holds the only slot; the second waits, then hangs up
    gone.sendall(_head("/invocations?gone", key=None, Content_Length="2") + b"{}")
    time.sleep(0.2)
    gone.close()
    status, headers, body = _read_response(first)
    assert status == 504 and _reason(body) == "timeout", body
    assert 0.9 < time.monotonic() - t0 < 1.5 and headers.get("connection") == "close"
    first.close()
    time.sleep(0.5)
    assert srv.started == ["first"]
