"""Archives and downloads: safe streaming extraction of tar/zip audio members, and an
http(s) download with a progress bar and a SHA-256 check."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

from genreflow.audio.decode import AUDIO_EXTENSIONS
from genreflow.core.errors import DataError
from genreflow.data.staging import Log, token

_TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_ZIP_SUFFIXES = (".zip",)


def archive_kind(path: Path, name: str | None = None) -> str | None:
    lname = (name or path.name).lower()
    if lname.endswith(_TAR_SUFFIXES):
        return "tar"
    if lname.endswith(_ZIP_SUFFIXES):
        return "zip"
    if path.is_file():  # no telling suffix (e.g. a URL without one): sniff the content
        if zipfile.is_zipfile(path):
            return "zip"
        if tarfile.is_tarfile(path):
            return "tar"
    return None


def _safe_parts(member: str, archive: str) -> list[str]:
    norm = member.replace("\\", "/")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if norm.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
        raise DataError(
            f"{archive}: unsafe member {member!r} (absolute path or '..'); refusing to extract"
        )
    return parts


def _members(path: Path, kind: str, label: str) -> Iterator[tuple[list[str], object]]:
    """(path parts, readable file object) for every regular audio member; checks all names."""
    if kind == "zip":
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            for info in infos:  # check everything before writing anything
                _safe_parts(info.filename, label)
            for info in infos:
                parts = _safe_parts(info.filename, label)
                if info.is_dir() or not parts:
                    continue
                if Path(parts[-1]).suffix.lower() in AUDIO_EXTENSIONS:
                    with zf.open(info) as fh:
                        yield parts, fh
    else:
        try:
            with tarfile.open(path, "r|*") as tf:  # streamed: one pass over a .tar.gz
                for m in tf:  # unsafe names abort before anything outside is written
                    parts = _safe_parts(m.name, label)
                    if not m.isfile() or not parts:  # links, devices, folders
                        continue
                    if Path(parts[-1]).suffix.lower() in AUDIO_EXTENSIONS:
                        fh = tf.extractfile(m)
                        if fh is not None:
                            with fh:
                                yield parts, fh
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise DataError(f"{label}: not a readable tar archive ({exc})") from None


def extract(path: Path, kind: str, into: Path, label: str) -> int:
    """Extract the audio members of an archive into ``into``; returns how many."""
    n = 0
    try:
        for parts, fh in _members(path, kind, label):
            target = into.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as out:
                shutil.copyfileobj(fh, out, 1 << 20)  # type: ignore[arg-type]
            n += 1
    except zipfile.BadZipFile as exc:
        raise DataError(f"{label}: not a readable zip archive ({exc})") from None
    return n



def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_sha(actual: str, expected: str | None, label: str) -> None:
    if expected and actual.lower() != expected.strip().lower():
        raise DataError(
            f"{label}: SHA-256 mismatch: expected {expected.strip().lower()}, got {actual}"
        )


def download(url: str, directory: Path, sha256: str | None, log: Log) -> Path:
    """Download ``url`` into a hidden file in ``directory``; deleted again on any failure."""
    # deferred: requests and tqdm imports, off the `genreflow data` commands that do not
    # download (see docs/benchmarks.md, Import cost)
    import requests
    from tqdm import tqdm

    name = Path(urlparse(url).path).name or "download"
    final = directory / f".{name}.download-{token()}"
    part = final.with_name(final.name + ".part")
    ok = False
    try:
        h = hashlib.sha256()
        try:
            with requests.get(url, stream=True, timeout=(10, 60)) as resp:
                resp.raise_for_status()
                total = int(resp.headers.get("content-length") or 0) or None
                with (
                    open(part, "wb") as fh,
                    tqdm(total=total, unit="B", unit_scale=True, desc=name, disable=None) as bar,
                ):
                    for chunk in resp.iter_content(1 << 20):
                        fh.write(chunk)
                        h.update(chunk)
                        bar.update(len(chunk))
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise DataError(_offline_message(url, exc)) from None
        except requests.RequestException as exc:  # HTTP status errors and the rest
            raise DataError(f"{url}: download failed ({exc})") from None
        check_sha(h.hexdigest(), sha256, url)
        os.replace(part, final)
        ok = True
        log(f"downloaded {url} ({final.stat().st_size / 1e6:.1f} MB, sha256 {h.hexdigest()})")
        return final
    finally:
        part.unlink(missing_ok=True)
        if not ok:
            final.unlink(missing_ok=True)



def _offline_message(url: str, exc: BaseException) -> str:
    return (
        f"cannot download {url}: the network is unreachable ({type(exc).__name__}); "
        "we appear to be offline. Supply the data yourself instead: download GTZAN "
        "(marsyas genres.tar.gz, or the Kaggle 'gtzan-dataset-music-genre-classification' zip) "
        "on a connected machine, copy it here and run `genreflow data get /path/to/genres.tar.gz` "
        "(an archive or an extracted folder both work), or set GTZAN_DIR=/path/to/gtzan "
        "(e.g. `GTZAN_DIR=/path/to/gtzan make repro`)."
    )

