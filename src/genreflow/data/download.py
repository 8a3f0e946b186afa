"""Downloads: an http(s) GET with a progress bar, a size cap, an overall deadline, a
per-read timeout and a SHA-256 check. URLs are shown only without credentials or query
(:func:`genreflow.core.safe_text.bare_url`): in messages, logs and ``SOURCE.json``."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from genreflow.core.config import IntakeConfig
from genreflow.core.errors import DataError
from genreflow.core.safe_text import bare_url
from genreflow.data.limits import check_free, human
from genreflow.data.staging import Log, token

CONNECT_TIMEOUT = 10  # seconds to connect
READ_TIMEOUT = 60  # seconds without a byte; the deadline is checked after every read
CHUNK = 1 << 20


def is_url(source: str) -> bool:
    return str(source).lower().startswith(("http://", "https://"))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def check_sha(actual: str, expected: str | None, label: str) -> None:
    if expected and actual.lower() != expected.strip().lower():
        raise DataError(
            f"{label}: SHA-256 mismatch: expected {expected.strip().lower()}, got {actual}"
        )


def download(url: str, directory: Path, sha256: str | None, log: Log,
             limits: IntakeConfig | None = None) -> Path:
    """Download ``url`` into a hidden file in ``directory``; deleted again on any failure."""
    # deferred: requests import, only downloads need it (see docs/benchmarks.md, Import cost)
    import requests
    import urllib3

    limits = limits or IntakeConfig()
    safe = bare_url(url)
    name = Path(safe.partition("://")[2]).name or "download"
    final = directory / f".{name}.download-{token()}"
    part = final.with_name(final.name + ".part")
    ok = False
    try:
        try:
            with requests.get(url, stream=True, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT)) as resp:
                if resp.status_code >= 400:
                    raise DataError(f"{safe}: download failed (HTTP {resp.status_code} "
                                    f"{resp.reason})")
                digest = _receive(resp, part, safe, name, directory, limits)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise DataError(_offline_message(safe, exc)) from None
        except requests.RequestException as exc:
            raise DataError(f"{safe}: download failed ({type(exc).__name__})") from None
        except urllib3.exceptions.ReadTimeoutError:
            raise DataError(f"{safe}: no data for {READ_TIMEOUT} s; download abandoned") from None
        except urllib3.exceptions.HTTPError as exc:
            raise DataError(f"{safe}: download failed ({type(exc).__name__})") from None
        check_sha(digest, sha256, safe)
        os.replace(part, final)
        ok = True
        log(f"downloaded {safe} ({final.stat().st_size / 1e6:.1f} MB, sha256 {digest})")
        return final
    finally:
        part.unlink(missing_ok=True)
        if not ok:
            final.unlink(missing_ok=True)


def _receive(resp, part: Path, safe: str, name: str, directory: Path,
             limits: IntakeConfig) -> str:
    """Stream the body into ``part`` within the size cap and the deadline; its SHA-256."""
    from tqdm import tqdm  # deferred with requests

    cap, minutes = limits.download_bytes, limits.download_minutes
    deadline = time.monotonic() + minutes * 60
    total = int(resp.headers.get("content-length") or 0) or None
    if total is not None and total > cap:
        raise DataError(f"{safe}: the server announces {human(total)}, over the limit "
                        f"intake.max_download_gb = {limits.max_download_gb} (params.yaml, or "
                        "`data get --max-download-gb`)")
    check_free(directory, total or 0, safe)
    h = hashlib.sha256()
    n = 0

    def late(received: int) -> DataError:
        return DataError(f"{safe}: not finished after {minutes:g} min ({human(received)} "
                         f"received); limit intake.download_minutes = {minutes:g} "
                         "(params.yaml, or `data get --download-minutes`)")

    try:
        with open(part, "wb") as fh, tqdm(total=total, unit="B", unit_scale=True, desc=name,
                                          disable=None) as bar:
            while chunk := _read_by(resp, deadline, late):  # what has arrived
                n += len(chunk)
                if n > cap:
                    raise DataError(f"{safe}: more than {human(cap)} received; limit "
                                    f"intake.max_download_gb = {limits.max_download_gb} "
                                    "(params.yaml, or `data get --max-download-gb`)")
                if time.monotonic() > deadline:
                    raise late(n)
                fh.write(chunk)
                h.update(chunk)
                bar.update(len(chunk))
    except OSError as exc:  # the file: socket errors arrive as urllib3 errors
        raise DataError(f"{safe}: cannot write the download into {directory} "
                        f"({exc.strerror or exc})") from None
    return h.hexdigest()


def _socket_of(resp):
    """The socket a streamed response is read from: the connection's while it is kept, else
    (a response that ends with the connection, e.g. HTTP/1.0) the one under http.client's
    buffered reader; None if neither is reachable (then each read waits READ_TIMEOUT at most)."""
    sock = getattr(getattr(resp.raw, "connection", None), "sock", None)
    if sock is None:
        reader = getattr(getattr(resp.raw, "_fp", None), "fp", None)
        sock = getattr(getattr(reader, "raw", None), "_sock", None)
    return sock if hasattr(sock, "settimeout") else None


def _read_by(resp, deadline: float, late) -> bytes:
    """What has arrived of the body, waiting at most until ``deadline`` (and at most
    ``READ_TIMEOUT`` for one read): the socket's timeout shrinks as the deadline nears, so a
    server that goes silent cannot hold the download past it."""
    import urllib3  # deferred with requests

    sock = _socket_of(resp)
    if sock is not None:
        sock.settimeout(max(0.05, min(READ_TIMEOUT, deadline - time.monotonic())))
    try:
        return resp.raw.read1(CHUNK, decode_content=True)
    except urllib3.exceptions.ReadTimeoutError:
        if time.monotonic() >= deadline:
            raise late(resp.raw.tell()) from None
        raise


def _offline_message(url: str, exc: BaseException) -> str:
    return (
        f"cannot download {url}: the network is unreachable ({type(exc).__name__}); "
        "we appear to be offline. Supply the data yourself instead: download GTZAN "
        "(marsyas genres.tar.gz, or the Kaggle 'gtzan-dataset-music-genre-classification' zip) "
        "on a connected machine, copy it here and run `genreflow data get /path/to/genres.tar.gz` "
        "(an archive or an extracted folder both work), or set GTZAN_DIR=/path/to/gtzan "
        "(e.g. `GTZAN_DIR=/path/to/gtzan make repro`)."
    )
