"""Archives: safe, bounded extraction of the audio members of a tar or zip archive.

Nothing outside the work folder is ever written: every zip name is checked before anything
is written, tar names as they stream by; links and devices are never materialised (they
are counted and reported); sizes, counts and compression ratios are bounded by a
:class:`~genreflow.data.limits.Budget`; every failure is a one-line :class:`DataError`.
"""

from __future__ import annotations

import lzma
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from genreflow.audio.decode import AUDIO_EXTENSIONS
from genreflow.core.errors import DataError
from genreflow.data.limits import READ_ERRORS, Budget, check_free, check_name, write_error

_TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_ZIP_SUFFIXES = (".zip",)
_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
_ZIP_METHOD_NAMES = {9: "deflate64", 10: "PKWARE implode", 93: "zstd", 95: "xz", 98: "PPMd",
                     99: "WinZip AES encryption"}
_ZIP_ENCRYPTED = 0x1  # general purpose flag bit 0


@dataclass
class Extracted:
    n: int = 0  # audio members written
    dropped: list[str] = field(default_factory=list)  # links and devices, never materialised


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
    if norm.startswith("/") or ".." in parts or (parts and ":" in parts[0]) or "\0" in norm:
        raise DataError(
            f"{archive}: unsafe member {member!r} (absolute path or '..'); refusing to extract"
        )
    return parts


def _is_audio(parts: list[str]) -> bool:
    return bool(parts) and Path(parts[-1]).suffix.lower() in AUDIO_EXTENSIONS


class _Paths:
    """The files written so far, to refuse a member that is both a file and a folder."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.files: set[tuple[str, ...]] = set()
        self.dirs: set[tuple[str, ...]] = set()

    def add(self, parts: list[str], name: str) -> None:
        key = tuple(parts)
        prefixes = [key[:i] for i in range(1, len(key))]
        if key in self.dirs or any(p in self.files for p in prefixes):
            raise DataError(f"{self.label}: member {name!r} is both a file and a folder in "
                            "the archive; refusing to extract")
        self.files.add(key)
        self.dirs.update(prefixes)


def _target(into: Path, parts: list[str], name: str, label: str) -> Path:
    target = into.joinpath(*parts)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(label, name, exc) from None
    return target


def extract(path: Path, kind: str, into: Path, label: str, budget: Budget) -> Extracted:
    """Extract the audio members of an archive into ``into`` within ``budget``."""
    if kind == "zip":
        return _extract_zip(path, into, label, budget)
    return _extract_tar(path, into, label, budget)


# ------------------------------------------------------------------------------------ zip
def _zip_entries(path: Path) -> int | None:
    """The entry count in the end record, read before ZipFile parses (and holds in memory)
    every entry: a flood of millions is refused without that cost. Private zipfile API,
    the only reader of that record; when it moves, the count after parsing still holds."""
    try:
        with open(path, "rb") as fp:
            rec = zipfile._EndRecData(fp)  # type: ignore[attr-defined]
        return int(rec[zipfile._ECD_ENTRIES_TOTAL]) if rec else None  # type: ignore[attr-defined]
    except (AttributeError, IndexError, OSError, TypeError, ValueError):
        return None


def _zip_plan(zf: zipfile.ZipFile, into: Path, label: str, budget: Budget,
              dropped: list[str]) -> list[tuple[list[str], zipfile.ZipInfo]]:
    """Check every member before anything is written; the audio members to extract."""
    infos = zf.infolist()
    for info in infos:
        budget.count(info.filename)
        _safe_parts(info.filename, label)
    plan = []
    paths = _Paths(label)
    for info in infos:
        parts, name = _safe_parts(info.filename, label), info.filename
        if info.is_dir() or not _is_audio(parts):
            continue
        if stat.S_ISLNK(info.external_attr >> 16):
            dropped.append(name)
            continue
        check_name(parts, name, into, label)
        if info.flag_bits & _ZIP_ENCRYPTED or info.compress_type == 99:
            raise DataError(f"{label}: member {name!r} is encrypted; genreflow reads only "
                            "archives without a password (re-pack it without one)")
        if info.compress_type not in _ZIP_METHODS:
            method = _ZIP_METHOD_NAMES.get(info.compress_type, "unknown")
            raise DataError(f"{label}: member {name!r} uses compression method "
                            f"{info.compress_type} ({method}), which genreflow cannot read; "
                            "re-pack the archive with deflate (e.g. `zip -r -Z deflate`)")
        budget.declare(name, info.file_size)
        budget.ratio(name, info.file_size, info.compress_size)
        paths.add(parts, name)
        plan.append((parts, info))
    budget.ratio("(all members)", sum(i.file_size for _, i in plan),
                 sum(i.compress_size for _, i in plan))
    return plan


def _extract_zip(path: Path, into: Path, label: str, budget: Budget) -> Extracted:
    declared = _zip_entries(path)
    if declared is not None:
        budget.check_count(declared)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise DataError(f"{label}: not a readable zip archive ({exc})") from None
    out = Extracted()
    with zf:
        plan = _zip_plan(zf, into, label, budget, out.dropped)
        check_free(into, sum(i.file_size for _, i in plan), label)
        compressed = 0
        for parts, info in plan:
            name, size = info.filename, info.compress_size

            def on_chunk(k: int, name: str = name, size: int = size, done: int = compressed) -> None:
                budget.ratio(name, k, size)  # zipfile reads at most compress_size bytes
                budget.ratio(name, budget.written, done + size)

            target = _target(into, parts, name, label)
            try:
                fh = zf.open(info)
            except READ_ERRORS as exc:
                raise DataError(f"{label}: member {name!r} cannot be read ({exc})") from None
            with fh:
                budget.copy(fh, target, name, on_chunk)
            compressed += size
            out.n += 1
    return out


# ------------------------------------------------------------------------------------ tar
def _extract_tar(path: Path, into: Path, label: str, budget: Budget) -> Extracted:
    check_free(into, path.stat().st_size, label)  # audio barely compresses: about this much
    out = Extracted()
    paths = _Paths(label)
    try:
        with open(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|*") as tf:
            for m in tf:  # streamed: one pass over a .tar.gz; names checked as they come
                budget.count(m.name)
                budget.ratio(m.name, m.offset, raw.tell())  # skipped members expand too
                parts = _safe_parts(m.name, label)
                if m.issym() or m.islnk() or m.isdev():  # isdev: char, block, fifo
                    out.dropped.append(m.name)
                    continue
                if not m.isfile() or not parts:
                    continue
                audio = _is_audio(parts)
                budget.declare(m.name, m.size, clip=audio)  # every member is read through
                if not audio:
                    continue
                check_name(parts, m.name, into, label)
                paths.add(parts, m.name)
                target = _target(into, parts, m.name, label)
                fh = tf.extractfile(m)
                if fh is None:  # pragma: no cover  (isfile() members always have data)
                    continue

                def on_chunk(k: int, m: tarfile.TarInfo = m) -> None:
                    budget.ratio(m.name, m.offset_data + k, raw.tell())

                with fh:
                    budget.copy(fh, target, m.name, on_chunk)  # type: ignore[arg-type]
                out.n += 1
    except DataError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as exc:
        raise DataError(f"{label}: not a readable tar archive ({exc})") from None
    return out
