"""Raw audio into ``data/``: real GTZAN (folder, archive or URL) or a synthetic stand-in.

Every writer builds the new tree in a hidden sibling of ``dest`` and swaps it in
with a rename, so a failure at any point leaves the previous data untouched.
``dest/SOURCE.json`` records where the audio came from; every later stage
reports it, so synthetic results can never pass for GTZAN results.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from genreflow.audio import AUDIO_EXTENSIONS, SOURCE_FILE
from genreflow.config import GTZAN_GENRES

__all__ = [
    "GTZAN_URL",
    "DataError",
    "get_data",
    "prepare_default",
    "synth",
    "track_with_dvc",
]

GTZAN_URL = "http://opihi.cs.uvic.ca/sound/genres.tar.gz"
SYNTH_ORIGIN = "genreflow data synth"
SYNTH_VERSION = 1  # bump whenever the generator's output changes

Log = Callable[[str], None]

_CLIP_NAME = re.compile(r"^(?P<genre>[a-z]+)\.(?P<num>\d{5})(?P<ext>\.[A-Za-z0-9]+)$")
_TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_ZIP_SUFFIXES = (".zip",)
_SEARCH_DEPTH = 3  # how deep below the given folder the <genre>/ tree may sit
_HIDDEN_OK = {".gitignore", ".DS_Store", ".dvcignore"}


class DataError(RuntimeError):
    """The data could not be obtained; the message says why and what to do instead."""


def _offline_message(url: str, exc: BaseException) -> str:
    return (
        f"cannot download {url}: the network is unreachable ({type(exc).__name__}); "
        "we appear to be offline. Supply the data yourself instead: download GTZAN "
        "(marsyas genres.tar.gz, or the Kaggle 'gtzan-dataset-music-genre-classification' zip) "
        "on a connected machine, copy it here and run `genreflow data get /path/to/genres.tar.gz` "
        "(an archive or an extracted folder both work), or set GTZAN_DIR=/path/to/gtzan "
        "(e.g. `GTZAN_DIR=/path/to/gtzan make repro`)."
    )


# ------------------------------------------------------------------------ destination handling
def _token() -> str:
    return f"{os.getpid()}-{secrets.token_hex(4)}"


def _check_replaceable(dest: Path) -> None:
    """Refuse to wipe a folder that is clearly not a raw-audio folder (e.g. the repo itself)."""
    if not dest.is_dir():
        raise DataError(f"{dest}: exists and is not a folder; remove it or choose another dest")
    cwd = Path.cwd().resolve()
    real = dest.resolve()
    if real == cwd or real in cwd.parents:
        raise DataError(f"{dest}: is the current folder or one of its parents; choose another dest")
    for entry in dest.iterdir():
        if entry.name in (".git", ".dvc"):
            raise DataError(f"{dest}: contains {entry.name}/, refusing to replace it")
        if entry.is_dir():
            for f in entry.iterdir():
                if f.is_dir() or (
                    not f.name.startswith(".") and f.suffix.lower() not in AUDIO_EXTENSIONS
                ):
                    raise DataError(
                        f"{dest}: does not look like a raw-audio folder ({f} is not audio); "
                        "refusing to replace it. Remove it yourself or choose another dest."
                    )
        elif entry.name != SOURCE_FILE and entry.name not in _HIDDEN_OK:
            raise DataError(
                f"{dest}: does not look like a raw-audio folder (found {entry.name}); "
                "refusing to replace it. Remove it yourself or choose another dest."
            )


def _resolve_dest(dest: Path) -> Path:
    dest = Path(dest)
    if dest.is_symlink():  # replace the folder the link points to; keep the link
        dest = dest.resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        _check_replaceable(dest)
    return dest


class _Staging:
    """A hidden sibling folder of ``dest`` that becomes ``dest`` on :meth:`commit`."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.path = dest.with_name(f".{dest.name}.tmp-{_token()}")
        os.mkdir(self.path)  # honours the umask, unlike mkdtemp's 0o700

    def commit(self, info: dict) -> None:
        (self.path / SOURCE_FILE).write_text(json.dumps(info, indent=2) + "\n")
        old = None
        if self.dest.exists():
            old = self.dest.with_name(f".{self.dest.name}.old-{_token()}")
            os.rename(self.dest, old)
        try:
            os.rename(self.path, self.dest)
        except BaseException:
            if old is not None:
                os.rename(old, self.dest)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def cleanup(self) -> None:
        if self.path.exists():
            shutil.rmtree(self.path, ignore_errors=True)


# ---------------------------------------------------------------------------- locating GTZAN
@dataclass
class _Tree:
    root: Path
    files: dict[str, list[Path]]  # genre -> clip files (first one per clip id)
    ignored: int
    duplicates: int

    @property
    def n_clips(self) -> int:
        return sum(len(v) for v in self.files.values())


def _scan_tree(root: Path) -> _Tree:
    """Clip files under ``root/<genre>/<genre>.NNNNN.<ext>`` (genre folders with none are skipped)."""
    files: dict[str, list[Path]] = {}
    ignored = duplicates = 0
    rank = {ext: i for i, ext in enumerate(AUDIO_EXTENSIONS)}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        chosen: dict[str, Path] = {}
        other = 0
        for f in sorted(sub.iterdir()):
            if f.name.startswith("."):
                continue
            m = _CLIP_NAME.match(f.name)
            ok = (
                m is not None
                and m["genre"] == sub.name
                and m["ext"].lower() in AUDIO_EXTENSIONS
                and f.is_file()
            )
            if not ok:
                other += 1
                continue
            stem = f.name[: -len(m["ext"])]
            if stem in chosen:
                duplicates += 1
                if rank[m["ext"].lower()] >= rank[chosen[stem].suffix.lower()]:
                    continue
            chosen[stem] = f
        if chosen:
            files[sub.name] = [chosen[k] for k in sorted(chosen)]
            ignored += other
    return _Tree(root, files, ignored, duplicates)


def _find_tree(top: Path) -> _Tree | None:
    """The folder at most ``_SEARCH_DEPTH`` levels below ``top`` holding the most clips."""
    best: _Tree | None = None
    level = [top]
    for _ in range(_SEARCH_DEPTH + 1):
        nxt: list[Path] = []
        for d in level:
            tree = _scan_tree(d)
            if tree.n_clips and (best is None or tree.n_clips > best.n_clips):
                best = tree
            nxt.extend(
                sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))
            )
        level = nxt
    return best


# ---------------------------------------------------------------------------------- archives
def _archive_kind(path: Path, name: str | None = None) -> str | None:
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


def _extract(path: Path, kind: str, into: Path, label: str) -> int:
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


# ---------------------------------------------------------------------------------- download
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_sha(actual: str, expected: str | None, label: str) -> None:
    if expected and actual.lower() != expected.strip().lower():
        raise DataError(
            f"{label}: SHA-256 mismatch: expected {expected.strip().lower()}, got {actual}"
        )


def _download(url: str, directory: Path, sha256: str | None, log: Log) -> Path:
    """Download ``url`` into a hidden file in ``directory``; deleted again on any failure."""
    import requests
    from tqdm import tqdm

    name = Path(urlparse(url).path).name or "download"
    final = directory / f".{name}.download-{_token()}"
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
        except requests.HTTPError as exc:
            raise DataError(f"{url}: download failed ({exc})") from None
        except requests.RequestException as exc:
            raise DataError(f"{url}: download failed ({exc})") from None
        _check_sha(h.hexdigest(), sha256, url)
        os.replace(part, final)
        ok = True
        log(f"downloaded {url} ({final.stat().st_size / 1e6:.1f} MB, sha256 {h.hexdigest()})")
        return final
    finally:
        part.unlink(missing_ok=True)
        if not ok:
            final.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------- get_data
def _copy_tree(tree: _Tree, staging: Path, move: bool) -> dict[str, int]:
    counts: dict[str, int] = {}
    for genre, files in tree.files.items():
        (staging / genre).mkdir()
        for f in files:
            target = staging / genre / f.name
            if move:
                os.replace(f, target)
            else:
                shutil.copyfile(f, target)  # not copy2: sources may be read-only
        counts[genre] = len(files)
    return counts


def _no_tree_error(where: str) -> DataError:
    return DataError(
        f"{where}: no GTZAN-layout audio found; expected <genre>/<genre>.000NN.<ext> files "
        f"(ext one of {', '.join(AUDIO_EXTENSIONS)}), at the top or up to {_SEARCH_DEPTH} "
        "folders down (e.g. genres/ or Data/genres_original/)"
    )


def get_data(
    source: str,
    dest: Path = Path("data"),
    sha256: str | None = None,
    log: Log = print,
) -> dict:
    """Bring GTZAN into ``dest`` as ``dest/<genre>/<genre>.000NN.<ext>`` and write SOURCE.json.

    ``source`` is a folder (GTZAN layout, possibly a few levels down), a
    ``.tar.gz``/``.tgz``/``.tar``/``.zip`` archive or an http(s) URL of one.
    ``dest`` is replaced wholesale only once the new tree is complete.
    Returns the SOURCE.json record. Raises :class:`DataError` on any failure.
    """
    source = str(source)
    dest = _resolve_dest(Path(dest))
    cleanup: list[Path] = []
    staging = _Staging(dest)
    try:
        if urlparse(source).scheme in ("http", "https"):
            archive = _download(source, dest.parent, sha256, log)
            cleanup.append(archive)
            kind = _archive_kind(archive, Path(urlparse(source).path).name)
            if kind is None:
                raise DataError(f"{source}: downloaded file is not a tar or zip archive")
            tree, move = _tree_from_archive(archive, kind, source, dest, cleanup, log), True
        else:
            path = Path(source).expanduser()
            if not path.exists():
                raise DataError(
                    f"{source}: no such file or folder; expected a GTZAN folder "
                    "(<genre>/<genre>.000NN.wav|au|...), a .tar.gz/.tgz/.tar/.zip archive "
                    "or an http(s) URL"
                )
            if path.is_dir():
                if sha256:
                    log(f"note: --sha256 ignored for folder source {source}")
                found = _find_tree(path)
                if found is None:
                    raise _no_tree_error(source)
                tree, move = found, False
            else:
                kind = _archive_kind(path)
                if kind is None:
                    raise DataError(
                        f"{source}: unsupported file; expected a folder in GTZAN layout or an "
                        "archive ending in .tar.gz, .tgz, .tar or .zip"
                    )
                if sha256:
                    _check_sha(_sha256(path), sha256, source)
                tree, move = _tree_from_archive(path, kind, source, dest, cleanup, log), True

        unknown = sorted(g for g in tree.files if g not in GTZAN_GENRES)
        if unknown:
            log(f"note: genre folder(s) not in GTZAN, copied anyway: {unknown}")
        missing = [g for g in GTZAN_GENRES if g not in tree.files]
        if missing and len(missing) < len(GTZAN_GENRES):
            log(f"note: GTZAN genre(s) absent from the source: {missing}")
        if tree.ignored:
            log(f"ignored {tree.ignored} file(s) not named <genre>.NNNNN.<audio ext>")
        if tree.duplicates:
            log(f"ignored {tree.duplicates} duplicate clip(s) (same id, another format)")
        log(f"{'moving' if move else 'copying'} {tree.n_clips} clips from {tree.root} ...")
        counts = _copy_tree(tree, staging.path, move)
        info = {
            "source": "gtzan",
            "origin": source,
            "n_clips": sum(counts.values()),
            "genres": counts,
        }
        staging.commit(info)
        return info
    finally:
        staging.cleanup()
        for p in cleanup:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def _tree_from_archive(
    archive: Path, kind: str, label: str, dest: Path, cleanup: list[Path], log: Log
) -> _Tree:
    work = dest.with_name(f".{dest.name}.extract-{_token()}")
    os.mkdir(work)
    cleanup.append(work)
    log(f"extracting audio from {label} ...")
    n = _extract(archive, kind, work, label)
    tree = _find_tree(work) if n else None
    if tree is None:
        raise _no_tree_error(label)
    return tree


# -------------------------------------------------------------------------------------- synth
@dataclass(frozen=True)
class _Style:
    """How one synthetic class sounds. Patterns are one 4/4 bar of 16th-note steps."""

    bpm: float
    kick: str = "." * 16
    snare: str = "." * 16
    hat: str = "." * 16
    swing: float = 0.0  # delay of the off-beat 8ths, in 16th steps
    hat_decay: float = 0.03
    snare_noise_decay: float = 0.08
    drums: float = 1.0
    bass: str = "x.......x......."
    bass_notes: tuple[int, ...] = (0,)
    bass_octave: int = 36  # MIDI note of the lowest key
    bass_harm: int = 4
    bass_tilt: float = 1.5  # harmonic amplitude ~ 1 / h**tilt (small = bright)
    bass_decay: float = 0.5
    bass_gain: float = 0.6
    chord: tuple[int, ...] = (0, 4, 7)
    chord_steps: str = "x.......x......."
    chord_harm: int = 8
    chord_tilt: float = 1.3
    chord_odd: bool = False
    chord_attack: float = 0.005
    chord_decay: float = 0.8
    chord_gain: float = 0.35
    drive: float = 0.0  # tanh distortion of the chord voice
    lead: str = ""  # optional melody voice (random scale notes)
    lead_harm: int = 3
    lead_tilt: float = 2.0
    lead_odd: bool = False
    lead_attack: float = 0.01
    lead_decay: float = 0.4
    lead_gain: float = 0.25
    progression: tuple[int, ...] = (0, 5, 7, 0)
    scale: tuple[int, ...] = (0, 2, 4, 5, 7, 9, 11)
    noise: float = 0.005


_X8 = "x.x.x.x.x.x.x.x."
_BACKBEAT = "....x.......x..."
_STYLES: dict[str, _Style] = {
    "blues": _Style(
        bpm=76,
        swing=0.67,
        kick="x.....x.x.......",
        snare=_BACKBEAT,
        hat=_X8,
        drums=0.7,
        bass="x...x...x...x...",
        bass_notes=(0, 4, 7, 9),
        bass_harm=5,
        bass_decay=0.5,
        chord=(0, 4, 7, 10),
        chord_steps="x.....x.x.....x.",
        chord_harm=9,
        chord_tilt=1.2,
        chord_decay=0.5,
        drive=1.5,
        lead="x..x....x..x....",
        lead_harm=7,
        lead_tilt=1.3,
        progression=(0, 0, 0, 0, 5, 5, 0, 0, 7, 5, 0, 7),
        scale=(0, 3, 5, 6, 7, 10),
        noise=0.01,
    ),
    "classical": _Style(
        bpm=64,
        drums=0.0,
        bass="x.......x.......",
        bass_harm=10,
        bass_tilt=1.8,
        bass_decay=3.0,
        bass_gain=0.4,
        bass_octave=43,
        chord=(0, 4, 7, 12),
        chord_steps="x...............",
        chord_harm=12,
        chord_tilt=1.7,
        chord_attack=0.25,
        chord_decay=4.0,
        chord_gain=0.4,
        lead=_X8,
        lead_harm=3,
        lead_tilt=2.6,
        lead_attack=0.03,
        lead_decay=0.6,
        lead_gain=0.35,
        progression=(0, 5, 7, 0, 9, 5, 7, 7),
        noise=0.001,
    ),
    "country": _Style(
        bpm=108,
        kick="x.......x.......",
        snare=_BACKBEAT,
        hat="..x...x...x...x.",
        drums=0.8,
        bass="x.......x.......",
        bass_notes=(0, 7),
        bass_harm=3,
        bass_decay=0.4,
        chord_steps=_X8,
        chord_harm=12,
        chord_tilt=0.9,
        chord_decay=0.25,
        chord_gain=0.3,
        lead="x.x...x.x.x...x.",
        lead_harm=10,
        lead_tilt=1.0,
        lead_decay=0.3,
        progression=(0, 0, 5, 5, 7, 7, 0, 0),
        noise=0.004,
    ),
    "disco": _Style(
        bpm=120,
        kick="x...x...x...x...",
        snare=_BACKBEAT,
        hat="..x...x...x...x.",
        hat_decay=0.12,
        bass=_X8,
        bass_notes=(0, 12),
        bass_harm=6,
        bass_tilt=1.1,
        bass_decay=0.2,
        chord=(0, 3, 7, 10),
        chord_steps="..x...x...x...x.",
        chord_harm=12,
        chord_tilt=0.9,
        chord_decay=0.15,
        progression=(0, 0, 5, 5),
        scale=(0, 2, 3, 5, 7, 8, 10),
    ),
    "hiphop": _Style(
        bpm=88,
        swing=0.35,
        kick="x......x.x......",
        snare=_BACKBEAT,
        hat="x.xxx.x.x.xxx.x.",
        hat_decay=0.02,
        drums=1.2,
        bass="x......x.x......",
        bass_harm=1,
        bass_decay=0.9,
        bass_gain=0.9,
        bass_octave=28,
        chord=(0, 3, 7, 10),
        chord_steps="x...............",
        chord_harm=4,
        chord_tilt=2.2,
        chord_decay=1.5,
        chord_gain=0.3,
        progression=(0, 0, 8, 8),
        scale=(0, 3, 5, 7, 10),
        noise=0.02,
    ),
    "jazz": _Style(
        bpm=150,
        swing=0.67,
        kick="o...............",
        snare="....o.......o...",
        snare_noise_decay=0.25,
        hat="x...x.x.x...x.x.",
        hat_decay=0.35,
        drums=0.5,
        bass="x...x...x...x...",
        bass_notes=(0, 2, 4, 7),
        bass_harm=3,
        bass_tilt=2.2,
        bass_decay=0.4,
        chord=(0, 4, 7, 11),
        chord_steps="x.....x.........",
        chord_harm=6,
        chord_tilt=1.8,
        chord_decay=0.5,
        lead="x.xx..x.x..x.x..",
        lead_harm=5,
        lead_tilt=1.6,
        lead_attack=0.02,
        progression=(2, 7, 0, 0),
        scale=(0, 2, 3, 5, 7, 9, 10),
        noise=0.006,
    ),
    "metal": _Style(
        bpm=170,
        kick="x" * 16,
        snare=_BACKBEAT,
        hat=_X8,
        hat_decay=0.2,
        drums=1.1,
        bass=_X8,
        bass_harm=8,
        bass_tilt=1.0,
        bass_decay=0.2,
        chord=(0, 7, 12),
        chord_steps=_X8,
        chord_harm=16,
        chord_tilt=0.7,
        chord_decay=0.3,
        chord_gain=0.5,
        drive=6.0,
        progression=(0, 0, 1, 3),
        scale=(0, 1, 3, 5, 7, 8, 10),
        noise=0.03,
    ),
    "pop": _Style(
        bpm=116,
        kick="x.......x.......",
        snare=_BACKBEAT,
        hat=_X8,
        bass=_X8,
        bass_harm=4,
        bass_decay=0.25,
        chord_steps="x.......x.......",
        chord_harm=8,
        chord_attack=0.03,
        chord_decay=1.0,
        lead="x..x..x.x..x..x.",
        lead_harm=9,
        lead_tilt=1.0,
        lead_odd=True,
        lead_gain=0.3,
        progression=(0, 7, 9, 5),
    ),
    "reggae": _Style(
        bpm=76,
        kick="........x.......",
        snare="........x.......",
        snare_noise_decay=0.03,
        hat=_X8,
        drums=0.8,
        bass="x.....x...x.....",
        bass_notes=(0, 7, 12),
        bass_harm=2,
        bass_tilt=2.5,
        bass_decay=0.5,
        bass_gain=0.9,
        bass_octave=31,
        chord_steps="..x...x...x...x.",
        chord_harm=10,
        chord_tilt=1.2,
        chord_decay=0.08,
        progression=(0, 5),
        noise=0.008,
    ),
    "rock": _Style(
        bpm=128,
        kick="x.....x.x.......",
        snare=_BACKBEAT,
        hat=_X8,
        hat_decay=0.08,
        bass=_X8,
        bass_harm=6,
        bass_decay=0.25,
        chord=(0, 7, 12),
        chord_steps="x.......x.......",
        chord_harm=12,
        chord_tilt=1.0,
        chord_decay=1.5,
        chord_gain=0.45,
        drive=3.0,
        progression=(0, 5, 7, 5),
        noise=0.01,
    ),
}


def _wavetable(n_harm: int, tilt: float, odd: bool, rng: np.random.Generator) -> np.ndarray:
    size = 2048
    phase = np.arange(size, dtype=np.float64) / size
    table = np.zeros(size)
    for h in range(1, n_harm + 1):
        if odd and h % 2 == 0:
            continue
        amp = h**-tilt * rng.uniform(0.8, 1.2)
        table += amp * np.sin(2 * np.pi * h * phase + rng.uniform(0, 2 * np.pi))
    return (table / (np.abs(table).max() or 1.0)).astype(np.float32)


def _voice(
    onsets: np.ndarray,
    freqs: np.ndarray,
    n: int,
    table: np.ndarray,
    attack: float,
    decay: float,
    sr: int,
) -> np.ndarray:
    """Notes from ``onsets`` (samples, ascending) with ``freqs`` of shape (notes, voices).

    Wavetable oscillators with 32-bit fixed-point phase (wrap-around is the modulo)
    and an attack/exponential-decay envelope looked up by time since note onset.
    """
    out = np.zeros(n, dtype=np.float32)
    keep = onsets < n
    onsets, freqs = onsets[keep], freqs[keep]
    if len(onsets) == 0:
        return out
    durations = np.diff(np.append(onsets, n))
    start = int(onsets[0])
    idx = np.repeat(np.arange(len(onsets), dtype=np.int32), durations)
    if start < 0:  # the first note began before the clip
        idx, start = idx[-start:], 0
    t = (np.arange(start, n, dtype=np.int64) - onsets[idx]).astype(np.uint32)
    te = np.arange(int(durations.max()) + 1, dtype=np.float32) / sr
    env = np.minimum(1.0, te / max(attack, 1e-4)) * np.exp(-te / decay)
    amp = env[t] * np.float32(1.0 / freqs.shape[1])
    shift = np.uint32(32 - int(np.log2(len(table))))
    acc = np.zeros(n - start, dtype=np.float32)
    for v in range(freqs.shape[1]):
        inc = np.round(freqs[:, v] / sr * 2.0**32).astype(np.uint64).astype(np.uint32)
        acc += table[(t * inc[idx]) >> shift]
    out[start:] = acc * amp
    return out


def _midi_hz(m: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=np.float64) - 69) / 12)


def _render(style: _Style, rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    """One clip as float32 in [-1, 1]."""
    n = int(round(seconds * sr))
    bpm = style.bpm * rng.uniform(0.95, 1.05)
    step = 60.0 / bpm / 4 * sr  # samples per 16th note
    offset = rng.uniform(0, 16 * step)  # start somewhere inside a bar
    n_steps = int(np.ceil((n + offset) / step)) + 1
    s = np.arange(n_steps)
    pos = s * step - offset + np.where(s % 4 == 2, style.swing * step, 0.0)
    pos += rng.normal(0, 0.002 * sr, n_steps)  # human timing
    pos = np.round(pos).astype(np.int64)
    bar = s // 16
    prog = np.roll(np.array(style.progression), -int(rng.integers(len(style.progression))))
    key = int(rng.integers(12))
    rel_root = prog[bar % len(prog)]

    def hits(pattern: str) -> tuple[np.ndarray, np.ndarray]:
        vel = np.array([{"x": 1.0, "o": 0.45}.get(c, 0.0) for c in pattern])[s % 16]
        vel = vel * rng.uniform(0.75, 1.0, n_steps) * (rng.random(n_steps) > 0.04)
        sel = (vel > 0) & (pos >= 0) & (pos < n)
        return pos[sel], vel[sel]

    def onsets(pattern: str) -> np.ndarray:
        sel = np.array([c != "." for c in pattern])[s % 16] & (pos < n)
        first = np.flatnonzero(sel & (pos >= 0))
        if len(first) == 0:
            return np.zeros(0, dtype=np.int64)
        before = np.flatnonzero(sel & (pos < 0))  # a note still ringing at t = 0
        keep = np.concatenate([before[-1:], first])
        return keep

    mix = np.zeros(n, dtype=np.float32)

    # drums: one-shots added at the hit positions
    if style.drums > 0:
        tk = np.arange(int(0.35 * sr), dtype=np.float32) / sr
        f_k = rng.uniform(45, 60)
        kick = np.sin(2 * np.pi * (f_k * tk + (150 - f_k) * 0.03 * (1 - np.exp(-tk / 0.03))))
        kick *= np.exp(-tk / 0.12)
        ts = np.arange(int(0.3 * sr), dtype=np.float32) / sr
        snare = 0.7 * rng.standard_normal(len(ts)).astype(np.float32) * np.exp(
            -ts / style.snare_noise_decay
        ) + 0.5 * np.sin(2 * np.pi * rng.uniform(170, 220) * ts) * np.exp(-ts / 0.05)
        th = np.arange(int(min(0.5, 5 * style.hat_decay) * sr), dtype=np.float32) / sr
        hat = np.diff(rng.standard_normal(len(th) + 1).astype(np.float32)) * np.exp(
            -th / style.hat_decay
        )
        for shot, pattern, gain in (
            (kick, style.kick, 1.0),
            (snare, style.snare, 0.6),
            (hat, style.hat, 0.18),
        ):
            for p, v in zip(*hits(pattern), strict=True):
                m = min(len(shot), n - p)
                mix[p : p + m] += (gain * v * style.drums) * shot[:m]

    # bass
    on = onsets(style.bass)
    if len(on):
        notes = np.array(style.bass_notes)[np.arange(len(on)) % len(style.bass_notes)]
        midi = style.bass_octave + key + rel_root[on] + notes
        table = _wavetable(style.bass_harm, style.bass_tilt * rng.uniform(0.9, 1.1), False, rng)
        decay = style.bass_decay * rng.uniform(0.8, 1.2)
        bass = _voice(pos[on], _midi_hz(midi)[:, None], n, table, 0.005, decay, sr)
        mix += style.bass_gain * rng.uniform(0.8, 1.2) * bass

    # chords
    on = onsets(style.chord_steps)
    if len(on):
        midi = 48 + key + rel_root[on][:, None] + np.array(style.chord)[None, :]
        tilt = style.chord_tilt * rng.uniform(0.9, 1.1)
        table = _wavetable(style.chord_harm, tilt, style.chord_odd, rng)
        decay = style.chord_decay * rng.uniform(0.8, 1.2)
        chords = _voice(pos[on], _midi_hz(midi), n, table, style.chord_attack, decay, sr)
        if style.drive:
            chords = np.tanh(style.drive * chords) / np.tanh(style.drive)
        mix += style.chord_gain * rng.uniform(0.8, 1.2) * chords

    # lead: random walk over the scale
    on = onsets(style.lead) if style.lead else np.zeros(0, dtype=np.int64)
    if len(on):
        scale = np.array(style.scale)
        degree = np.cumsum(rng.integers(-2, 3, len(on))) % (2 * len(scale))
        midi = 60 + key + scale[degree % len(scale)] + 12 * (degree // len(scale))
        table = _wavetable(style.lead_harm, style.lead_tilt, style.lead_odd, rng)
        decay = style.lead_decay * rng.uniform(0.8, 1.2)
        lead = _voice(pos[on], _midi_hz(midi)[:, None], n, table, style.lead_attack, decay, sr)
        mix += style.lead_gain * rng.uniform(0.8, 1.2) * lead

    noise = (style.noise * rng.uniform(0.5, 1.5) + 0.002) * rng.standard_normal(n, np.float32)
    mix += noise
    peak = float(np.abs(mix).max()) or 1.0
    return mix * np.float32(rng.uniform(0.3, 0.9) / peak)


def _synth_genres(genres: list[str] | None) -> list[str]:
    names = list(genres) if genres is not None else list(GTZAN_GENRES)
    if not names or len(names) > len(_STYLES) or len(set(names)) != len(names):
        raise DataError(f"synth: expected 1 to {len(_STYLES)} distinct genre names, got {names}")
    bad = [g for g in names if not re.fullmatch(r"[a-z]+", g)]
    if bad:
        raise DataError(f"synth: genre names must be lowercase letters only, got {bad}")
    return names


def _style_for(names: list[str]) -> dict[str, str]:
    """Style key per class: GTZAN names get their own, others take the unused ones in order."""
    free = [k for k in _STYLES if k not in names]
    return {g: g if g in _STYLES else free.pop(0) for g in names}


def _synth_info(
    names: list[str], clips_per_genre: int, seconds: float, seed: int, sample_rate: int
) -> dict:
    return {
        "source": "synthetic",
        "origin": SYNTH_ORIGIN,
        "seed": seed,
        "clips_per_genre": clips_per_genre,
        "seconds": seconds,
        "sample_rate": sample_rate,
        "generator_version": SYNTH_VERSION,
        "n_clips": clips_per_genre * len(names),
        "genres": {g: clips_per_genre for g in names},
    }


def synth(
    dest: Path = Path("data"),
    clips_per_genre: int = 30,
    seconds: float = 30.0,
    genres: list[str] | None = None,
    seed: int = 0,
    sample_rate: int = 22050,
    log: Log = print,
) -> dict:
    """Write a deterministic GTZAN-shaped synthetic set as 16-bit WAV and return SOURCE.json.

    Up to 10 classes, each with its own tempo, drum pattern and instrument
    timbres (GTZAN genre names map to matching styles), with per-clip key,
    tempo (+-5%), gain, mix and noise variation. Same arguments give
    byte-identical files.
    """
    import soundfile as sf

    names = _synth_genres(genres)
    if not 1 <= clips_per_genre <= 99999:
        raise DataError(f"synth: clips_per_genre must be 1..99999, got {clips_per_genre}")
    if not seconds > 0 or not sample_rate > 0:
        raise DataError(
            f"synth: seconds and sample_rate must be positive ({seconds}, {sample_rate})"
        )
    styles = _style_for(names)
    dest = _resolve_dest(Path(dest))
    staging = _Staging(dest)
    try:
        for genre in names:
            (staging.path / genre).mkdir()
            style_index = list(_STYLES).index(styles[genre])
            for ci in range(clips_per_genre):
                rng = np.random.default_rng([seed, style_index, ci])
                y = _render(_STYLES[styles[genre]], rng, seconds, sample_rate)
                pcm = np.round(np.clip(y, -1.0, 1.0) * 32767).astype("<i2")
                sf.write(
                    staging.path / genre / f"{genre}.{ci:05d}.wav",
                    pcm,
                    sample_rate,
                    subtype="PCM_16",
                    format="WAV",
                )
        info = _synth_info(names, clips_per_genre, seconds, seed, sample_rate)
        staging.commit(info)
    finally:
        staging.cleanup()
    log(
        f"synthesised {info['n_clips']} clips ({len(names)} classes x {clips_per_genre}, "
        f"{seconds:g} s) in {dest}"
    )
    return info


# --------------------------------------------------------------------------- prepare_default
_BANNER = """\
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!!  NO REAL GTZAN FOUND: using the SYNTHETIC stand-in data set in {dest}
!!  (10 generated classes named like GTZAN's genres; source=synthetic).
!!  Every number produced from it is NOT a GTZAN result.
!!  To use the real data set:
!!      GTZAN_DIR=/path/to/gtzan make repro
!!  or  genreflow data get /path/to/genres.tar.gz   (archive, folder or URL)
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"""


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _disk_counts(dest: Path) -> dict[str, int]:
    if not dest.is_dir():
        return {}
    return {g: len(t) for g, t in _scan_tree(dest).files.items()}


def prepare_default(
    dest: Path = Path("data"),
    gtzan_dir: str | None = None,
    log: Log = print,
    **synth_kwargs,
) -> dict:
    """Real GTZAN from ``gtzan_dir`` (folder, archive or URL) when given, else the synthetic set.

    The synthetic fallback is announced with a loud banner. When ``dest``
    already holds exactly what would be written, nothing is rewritten.
    """
    dest = Path(dest)
    current = _read_json(dest / SOURCE_FILE)
    if gtzan_dir:
        is_url = urlparse(gtzan_dir).scheme in ("http", "https")
        path = Path(gtzan_dir).expanduser()
        if not is_url and not path.exists():
            raise DataError(
                f"GTZAN_DIR={gtzan_dir}: no such file or folder; point it at a GTZAN folder, "
                "genres.tar.gz or the Kaggle zip (or unset it to use the synthetic set)"
            )
        if current and current.get("source") == "gtzan" and current.get("origin") == gtzan_dir:
            on_disk = _disk_counts(dest)
            expected = current.get("genres")
            if path.is_dir():
                tree = _find_tree(path)
                expected = {g: len(f) for g, f in tree.files.items()} if tree else None
            if on_disk and on_disk == current.get("genres") == expected:
                log(f"{dest}: up to date (GTZAN from {gtzan_dir}, {current.get('n_clips')} clips)")
                return current
        return get_data(gtzan_dir, dest, log=log)

    log(_BANNER.format(dest=dest))
    names = _synth_genres(synth_kwargs.get("genres"))
    want = _synth_info(
        names,
        synth_kwargs.get("clips_per_genre", 30),
        synth_kwargs.get("seconds", 30.0),
        synth_kwargs.get("seed", 0),
        synth_kwargs.get("sample_rate", 22050),
    )
    if current == want and _disk_counts(dest) == want["genres"]:
        log(f"{dest}: up to date (synthetic, seed {want['seed']}, {want['n_clips']} clips)")
        return current
    return synth(dest, log=log, **synth_kwargs)


# ------------------------------------------------------------------------------------- DVC
def _dvc_root(start: Path) -> Path | None:
    for d in (start, *start.parents):
        if (d / ".dvc").is_dir():
            return d
    return None


def track_with_dvc(dest: Path, log: Log = print) -> bool:
    """``dvc add dest`` (updating ``<dest>.dvc``) when inside a DVC repo; False otherwise."""
    dest = Path(dest)
    root = _dvc_root(Path.cwd().resolve()) or _dvc_root(dest.resolve().parent)
    if root is None:
        log(f"not inside a DVC repository; {dest} is not tracked")
        return False
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "add", str(dest.resolve())],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise DataError(f"`dvc add {dest}` failed: {(proc.stderr or proc.stdout).strip()}")
    log(f"tracked {dest} with DVC ({dest.name}.dvc updated)")
    return True
