"""Benchmark (not a test): a loopback load test of the served model, good and bad inputs mixed.

    # start `genreflow serve` itself (and measure its memory), 2 scoring workers:
    python scripts/serve_load.py --serve models:/gtzan-genre-classifier@champion --workers 2
    # or against a running server (give its pid for the memory columns):
    python scripts/serve_load.py --url http://127.0.0.1:5001 --pid 12345

Sends ``--requests`` (1000) single-file requests from ``--concurrency`` (4) client threads:
80 % good clips from ``--clips`` (30 s GTZAN oggs) and 20 % bad inputs (random bytes, text,
an empty file, 0.5 s, digital silence, NaN samples, a cut WAV, a body over the size
limit). Prints p50/p95 latency of the good requests, throughput, the answers counted by
HTTP status and input kind, and the server's resident memory (the process and its
workers) before, during (peak) and after the run.
"""

from __future__ import annotations

import argparse
import base64
import glob
import io
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import psutil
import requests
import soundfile as sf


def _wav(y: np.ndarray, sr: int = 22050, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


def _body(raw: bytes) -> bytes:
    return json.dumps({"dataframe_split": {"columns": ["audio"], "data": [[
        base64.b64encode(raw).decode("ascii")]]}}).encode()


def bad_bodies(oversize_mb: float) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    tone = (0.3 * np.sin(np.arange(22050 * 3) / 7)).astype(np.float32)
    nan = tone.copy()
    nan[100:200] = np.nan
    return {
        "random_bytes": _body(rng.bytes(50_000)),
        "text": _body(b"<html>not audio</html>\n" * 200),
        "empty": _body(b""),
        "half_second": _body(_wav(tone[:11025])),
        "silence_30s": _body(_wav(np.zeros(22050 * 30, np.float32))),
        "nan_samples": _body(_wav(nan, subtype="FLOAT")),
        "cut_wav": _body(_wav(tone)[:40_000]),  # the header promises 3 s, the data stops at 0.9
        "oversized": b'{"dataframe_split": {"columns": ["audio"], "data": [["'
                     + b"A" * int(oversize_mb * 2**20) + b'"]]}}',
    }


def rss_mb(pid: int | None) -> float | None:
    """Resident memory of ``pid`` and its children (uvicorn workers), MiB."""
    if pid is None:
        return None
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs if p.is_running()) / 2**20
    except psutil.Error:
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    log = tempfile.TemporaryFile()  # noqa: SIM115 - the server's stderr, as long as it runs
    proc = subprocess.Popen(
        [sys.executable, "-m", "genreflow.cli", "serve", model, "--host", "127.0.0.1", "--port",
         str(port), "--workers", str(workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    proc.log = log
    return proc, f"http://127.0.0.1:{port}"


def server_said(proc: subprocess.Popen, lines: int = 15) -> str:
    """The last lines of a server's stderr (started by :func:`start_server`)."""
    proc.log.seek(0)
    return "\n".join(proc.log.read().decode(errors="replace").splitlines()[-lines:])


def wait_ready(url: str, proc: subprocess.Popen | None, seconds: float = 300) -> None:
    """Until /ping answers and (for a server we started) its memory stops growing, i.e.
    every worker has loaded the model (the first one ready answers /ping)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}:\n{server_said(proc)}")
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    else:
        raise SystemExit(f"{url} did not answer /ping within {seconds:.0f} s")
    if proc is None:
        return
    last, steady = rss_mb(proc.pid) or 0.0, 0
    while steady < 3 and time.time() < deadline:
        time.sleep(1.0)
        now = rss_mb(proc.pid) or 0.0
        steady = steady + 1 if abs(now - last) < 0.02 * max(last, 1.0) else 0
        last = now


def run(url: str, jobs: list[tuple[str, bytes]], concurrency: int) -> list[tuple[str, int, float]]:
    results: list[tuple[str, int, float]] = []
    lock = threading.Lock()
    queue = iter(enumerate(jobs))

    def client() -> None:
        session = requests.Session()
        while True:
            with lock:
                item = next(queue, None)
            if item is None:
                return
            _, (kind, body) = item
            t0 = time.perf_counter()
            try:
                r = session.post(f"{url}/invocations", data=body, timeout=120,
                                 headers={"Content-Type": "application/json"})
                status = r.status_code
            except requests.RequestException:
                status = -1  # connection error
            ms = (time.perf_counter() - t0) * 1000
            with lock:
                results.append((kind, status, ms))

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(round(q * len(values))) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="a running server")
    where.add_argument("--serve", metavar="MODEL_URI", help="start `genreflow serve MODEL_URI`")
    ap.add_argument("--pid", type=int, help="server pid (with --url) for the memory columns")
    ap.add_argument("--workers", type=int, default=1, help="with --serve")
    ap.add_argument("--clips", default=os.path.join(os.environ.get("GTZAN_DIR", "../shared/gtzan"), "*/*.ogg"),
                    help="a glob of audio files, or a data folder (<genre>/<clip>)")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--bad-fraction", type=float, default=0.2)
    ap.add_argument("--oversize-mb", type=float, default=40.0, help="size of the oversized body")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--as-wav", action="store_true",
                    help="send the good clips re-encoded as 16-bit WAV (GTZAN's own format; "
                         "decoding Ogg Vorbis alone takes ~17 ms of a 30 s request)")
    args = ap.parse_args()

    if os.path.isdir(args.clips):
        from genreflow.data.collection import find_clips

        clips = [str(c.path) for c in find_clips(args.clips)]
    else:
        clips = sorted(glob.glob(args.clips))
    if not clips:
        raise SystemExit(f"no clips match {args.clips}")
    rng = random.Random(args.seed)
    def good_body(path: str) -> bytes:
        if not args.as_wav:
            return _body(Path(path).read_bytes())
        y, sr = sf.read(path, dtype="float32")
        return _body(_wav(y, sr))

    good = {c: good_body(c) for c in rng.sample(clips, min(len(clips), 200))}
    bad = bad_bodies(args.oversize_mb)
    jobs = [(rng.choice(list(bad)), None) if rng.random() < args.bad_fraction
            else ("good", rng.choice(list(good))) for _ in range(args.requests)]
    jobs = [(kind, bad[kind] if kind != "good" else good[clip]) for kind, clip in jobs]

    proc = None
    url, pid = args.url, args.pid
    if args.serve:
        proc, url = start_server(args.serve, args.workers)
        pid = proc.pid
    try:
        wait_ready(url, proc)
        requests.post(f"{url}/invocations", data=next(iter(good.values())), timeout=120)  # warm-up
        mem_before = rss_mb(pid)
        peak = [mem_before or 0.0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.25):
                peak[0] = max(peak[0], rss_mb(pid) or 0.0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        results = run(url, jobs, args.concurrency)
        wall = time.perf_counter() - t0
        done.set()
        time.sleep(2.0)
        mem_after = rss_mb(pid)
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)

    good_ms = [ms for kind, status, ms in results if kind == "good" and status == 200]
    by_status = Counter(str(status) for _, status, _ in results)
    by_kind = {kind: dict(Counter(str(s) for k, s, _ in results if k == kind))
               for kind in sorted({k for k, _, _ in results})}
    report = {
        "url": url, "workers": args.workers if args.serve else None,
        "requests": len(results), "concurrency": args.concurrency,
        "good_format": "wav (re-encoded)" if args.as_wav else "as stored",
        "good_p50_ms": round(statistics.median(good_ms), 1) if good_ms else None,
        "good_p95_ms": round(pct(good_ms, 0.95), 1) if good_ms else None,
        "all_p50_ms": round(statistics.median([ms for *_, ms in results]), 1),
        "throughput_rps": round(len(results) / wall, 2),
        "wall_seconds": round(wall, 1),
        "by_status": dict(by_status), "by_kind": by_kind,
        "server_errors_5xx_or_conn": sum(n for s, n in by_status.items()
                                         if s.startswith("5") or s == "-1"),
        "good_not_200": sum(1 for k, s, _ in results if k == "good" and s != 200),
        "bad_answered_200": sum(1 for k, s, _ in results if k != "good" and s == 200),
        "rss_mb": {"before": mem_before and round(mem_before), "peak_during": round(peak[0]),
                   "after": mem_after and round(mem_after)},
        "load_average": os.getloadavg(),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
