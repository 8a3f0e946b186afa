"""Benchmark (not a test): hostile clients against ``genreflow serve``, on loopback.

    python scripts/serve_hostile.py --model MODEL_URI_OR_FOLDER [--rounds 3] [--timeout 3]

Starts ``genreflow serve`` with ``--timeout`` and ``--header-timeout`` as given (and an
API key), then runs each hostile case ``--rounds`` times on raw sockets: Content-Length and
chunked together, a 200 MB chunked body, a declared body that never comes (over and under
the size limit), a chunked body trickled at a byte a second, slow headers, an idle socket,
and a good request beside 100 idle or trickling sockets. Prints, per case, the answers and
the seconds until the server closed the connection, then: cases tried, connections the
server held past their deadline (+1 s of grace), tracebacks in the server's log, and the
server's resident memory before and at its peak (sampled every 20 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import psutil
import requests

KEY = "serve-hostile-" + os.urandom(12).hex()


def _head(port: int, path: str = "/invocations", **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"X-API-Key: {KEY}",
             "Content-Type: application/json", *(f"{k.replace('_', '-')}: {v}"
                                                 for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _chunked(total: int, size: int = 2**16):
    block = b"%x\r\n" % size + b"A" * size + b"\r\n"
    for _ in range(total // size):
        yield block
    yield b"0\r\n\r\n"


def _feed(sock: socket.socket, chunks, pause: float = 0.0) -> None:
    def run() -> None:
        try:
            for chunk in chunks:
                sock.sendall(chunk)
                time.sleep(pause)
        except OSError:
            pass

    threading.Thread(target=run, daemon=True).start()


def _until_closed(sock: socket.socket, t0: float) -> tuple[int | None, float]:
    """The status line's code (None without one) and the seconds until EOF or a reset."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    status = int(data.split()[1]) if data.startswith(b"HTTP/1.1 ") else None
    return status, time.monotonic() - t0


def hostile_case(port: int, name: str, timeout: float, header_timeout: float):
    """Run one case; (status, seconds to close, the deadline it had)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout + header_timeout + 10)
    t0 = time.monotonic()
    with sock:
        if name == "cl_and_chunked":
            sock.sendall(_head(port, Content_Length="5", Transfer_Encoding="chunked"))
            _feed(sock, _chunked(200 * 2**20))
        elif name == "chunked_200mb":
            sock.sendall(_head(port, Transfer_Encoding="chunked"))
            _feed(sock, _chunked(200 * 2**20))
        elif name.startswith("declared_"):
            size = 10 * 2**20 if name == "declared_10mb_silent" else 1000
            sock.sendall(_head(port, Content_Length=str(size)))
        elif name == "trickled_chunked":
            sock.sendall(_head(port, Transfer_Encoding="chunked"))
            _feed(sock, (b"1\r\nA\r\n" for _ in range(int(timeout) + 30)), pause=1.0)
        elif name == "slow_headers":
            head = _head(port, Content_Length="10")
            _feed(sock, (head[i:i + 1] for i in range(len(head) - 4)), pause=0.5)
        status, seconds = _until_closed(sock, t0)
    deadline = header_timeout if name in ("slow_headers", "idle_socket") else timeout
    return status, seconds, deadline


CASES = ["cl_and_chunked", "chunked_200mb", "declared_10mb_silent", "declared_1kb_silent",
         "trickled_chunked", "slow_headers", "idle_socket"]


def good_beside_crowd(port: int, body: bytes) -> tuple[int, float]:
    crowd = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(100)]
    try:
        for i, sock in enumerate(crowd):
            if i % 2:
                sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        r = requests.post(f"http://127.0.0.1:{port}/invocations", data=body, timeout=30,
                          headers={"X-API-Key": KEY, "Content-Type": "application/json"})
        return r.status_code, time.monotonic() - t0
    finally:
        for sock in crowd:
            sock.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="model URI or local model folder")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=3.0)
    ap.add_argument("--header-timeout", type=float, default=2.0)
    ap.add_argument("--clip", type=Path, help="a good audio file (default: a 3 s tone)")
    args = ap.parse_args()
    if args.clip:
        raw = args.clip.read_bytes()
    else:
        import io

        import numpy as np
        import soundfile as sf

        buf = io.BytesIO()
        sf.write(buf, 0.2 * np.sin(np.arange(3 * 22050) / 5), 22050, format="WAV")
        raw = buf.getvalue()
    import base64

    good = json.dumps({"dataframe_split": {"columns": ["audio"], "data": [[
        base64.b64encode(raw).decode("ascii")]]}}).encode()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    work = Path(tempfile.mkdtemp(prefix="serve-hostile-"))
    (work / "key").write_text(KEY)
    log = work / "server.log"
    cmd = [sys.executable, "-m", "genreflow.cli", "serve", args.model, "--port", str(port),
           "--timeout", str(args.timeout), "--header-timeout", str(args.header_timeout),
           "--keep-alive", "1", "--api-key-file", str(work / "key")]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        for _ in range(360):
            try:
                if requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None, log.read_text()[-2000:]
            time.sleep(0.5)
        server = psutil.Process(proc.pid)
        good_beside_crowd(port, good)  # warm-up
        rss_before, peak, stop = server.memory_info().rss, [0], threading.Event()

        def watch() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], server.memory_info().rss)
                time.sleep(0.02)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        seen, late, tried = defaultdict(list), 0, 0
        for _ in range(args.rounds):
            for name in CASES:
                status, seconds, deadline = hostile_case(port, name, args.timeout,
                                                         args.header_timeout)
                tried += 1
                late += seconds > deadline + 1.0
                seen[name].append(f"{status or 'closed'} after {seconds:.2f} s")
            status, seconds = good_beside_crowd(port, good)
            tried += 1
            seen["good_beside_100_sockets"].append(f"{status} in {seconds:.3f} s")
        stop.set()
        watcher.join()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    for name, answers in seen.items():
        print(f"{name:26s} {'; '.join(answers)}")
    text = log.read_text(errors="replace")
    print(f"cases tried: {tried}; held past the deadline (+1 s): {late}; "
          f"tracebacks in the server log: {text.count('Traceback')}; "
          f"key in the log: {KEY in text}")
    print(f"server RSS: {rss_before / 2**20:.0f} MB before, peak {peak[0] / 2**20:.0f} MB "
          f"(+{(peak[0] - rss_before) / 2**20:.0f} MB)")


if __name__ == "__main__":
    main()
