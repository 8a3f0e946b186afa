"""Benchmark (not a test): latency of `mlflow models serve` for one clip, from a loopback client.

    python scripts/serve_latency.py --clip ../shared/gtzan/blues/blues.00000.ogg \
        --model models:/gtzan-genre-classifier@champion --requests 100

Starts the real server on a free 127.0.0.1 port (tracking store from
MLFLOW_TRACKING_URI or ``sqlite:///mlflow.db``), sends ``--requests`` requests
one after another, prints p50/p95/max in milliseconds, and stops the server.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from genreflow.core.config import RegisterConfig


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clip", required=True)
    ap.add_argument("--model", default=RegisterConfig().champion_uri)
    ap.add_argument("--requests", type=int, default=100)
    args = ap.parse_args()

    port = free_port()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.setdefault("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", args.model, "--env-manager",
         "local", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{base}/ping", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise SystemExit("server did not start within 180 s")
        body = json.dumps({"dataframe_split": {"columns": ["audio"], "data": [[
            base64.b64encode(Path(args.clip).read_bytes()).decode()]]}}).encode()
        req = lambda: urllib.request.urlopen(urllib.request.Request(  # noqa: E731
            f"{base}/invocations", data=body, headers={"Content-Type": "application/json"}),
            timeout=30).read()
        answer = json.loads(req())  # warm-up
        times = []
        for _ in range(args.requests):
            t0 = time.perf_counter()
            req()
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        p95 = times[max(0, int(round(0.95 * len(times))) - 1)]
        print(json.dumps({"clip": args.clip, "model": args.model, "requests": len(times),
                          "p50_ms": round(statistics.median(times), 1), "p95_ms": round(p95, 1),
                          "max_ms": round(times[-1], 1),
                          "answer": answer["predictions"][0]["genre"]}, indent=1))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
