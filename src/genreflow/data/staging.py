"""Where raw audio goes: replace ``dest`` only when genreflow may (it is absent, empty, or a
tree genreflow staged and nobody added to), and swap a finished tree in with a rename, so a
failure at any point leaves the old data untouched."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

from genreflow.audio.decode import AUDIO_EXTENSIONS, SOURCE_FILE
from genreflow.core.errors import DataError
from genreflow.data.collection import INDEX_FILE
from genreflow.data.layout import is_clip_name

Log = Callable[[str], None]

_KEEP = (".gitignore", ".dvcignore")  # a user's, carried over into the new tree
_JUNK = (".DS_Store",)  # the OS's, dropped
_FLAT = ("gtzan", "synthetic")  # SOURCE.json "source" values: <genre>/<genre>.NNNNN.<ext> files
_NESTED = ("folder", "manifest")  # audio files at any depth below the label folders
_SOURCES = (*_FLAT, *_NESTED)  # every SOURCE.json "source" value genreflow writes
_COUNT_CAP = 10_000  # entries counted when describing a folder genreflow will not replace
_HOW = ("Move it away (or pick an empty or new --dest); genreflow replaces only folders it "
        "staged itself")


def token() -> str:
    return f"{os.getpid()}-{secrets.token_hex(4)}"


def staged_record(dest: Path) -> dict | None:
    """``dest/SOURCE.json`` when it is the record genreflow writes on staging, else None."""
    path = dest / SOURCE_FILE
    if path.is_symlink() or not path.is_file():
        return None
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ok = (isinstance(rec, dict) and rec.get("source") in _SOURCES
          and isinstance(rec.get("genres"), dict) and isinstance(rec.get("n_clips"), int))
    return rec if ok else None


def _describe(dest: Path) -> str:
    """``12 files in 3 folders`` (no link followed, counting stops at :data:`_COUNT_CAP`)."""
    files = folders = 0
    for _, dirs, names in os.walk(dest):
        folders += len(dirs)
        files += len(names)
        if files + folders >= _COUNT_CAP:
            return f"over {_COUNT_CAP} files and folders"
    return f"{files} file(s) in {folders} folder(s)"


def _foreign_flat(folder: Path) -> list[str]:
    """Entries of a staged GTZAN-named label folder genreflow did not write."""
    return [f"{folder.name}/{f.name}" for f in sorted(folder.iterdir()) if f.name not in _JUNK
            and (f.is_symlink() or not f.is_file() or not is_clip_name(f.name, folder.name))]


def _foreign_nested(folder: Path, wrote: object) -> list[str]:
    """Entries of a staged label folder (audio at any depth) genreflow did not write: links,
    other files, and audio files beyond the count SOURCE.json records (no link followed)."""
    out: list[str] = []
    n = 0
    for here, dirs, names in os.walk(folder):
        rel = Path(here).relative_to(folder.parent)
        out += [f"{rel / d}/" for d in dirs if (Path(here) / d).is_symlink()]
        for name in names:
            f = Path(here) / name
            if name in _JUNK:
                continue
            if f.is_symlink() or not f.is_file() or f.suffix.lower() not in AUDIO_EXTENSIONS:
                out.append(str(rel / name))
            else:
                n += 1
        if len(out) > 3:
            break
    if not out and n != wrote:
        out.append(f"{folder.name}/ ({n} audio files; genreflow wrote {wrote})")
    return out


def _foreign(dest: Path, record: dict) -> list[str]:
    """Entries of a staged ``dest`` genreflow did not write (a user's additions)."""
    out: list[str] = []
    nested = record["source"] in _NESTED
    for entry in sorted(dest.iterdir()):
        if entry.name in (SOURCE_FILE, *_KEEP, *_JUNK):
            continue
        if nested and entry.name == INDEX_FILE and entry.is_file() and not entry.is_symlink():
            continue
        if entry.is_symlink() or not entry.is_dir() or entry.name not in record["genres"]:
            out.append(entry.name)
            continue
        out += (_foreign_nested(entry, record["genres"][entry.name]) if nested
                else _foreign_flat(entry))
    return out


def _check_replaceable(dest: Path) -> None:
    """Refuse to replace anything genreflow did not make (a music library, the repo...)."""
    if not dest.is_dir():
        raise DataError(f"{dest}: exists and is not a folder; remove it or choose another dest")
    cwd = Path.cwd().resolve()
    real = dest.resolve()
    if real == cwd or real in cwd.parents:
        raise DataError(f"{dest}: is the current folder or one of its parents; choose another dest")
    entries = [e for e in dest.iterdir() if e.name not in (*_KEEP, *_JUNK)]
    if not entries:
        return
    record = staged_record(dest)
    if record is None:
        raise DataError(f"{dest}: holds {_describe(dest)}, not staged by genreflow (no "
                        f"genreflow {SOURCE_FILE}); refusing to replace it. {_HOW}.")
    foreign = _foreign(dest, record)
    if foreign:
        raise DataError(f"{dest}: staged by genreflow, but {len(foreign)} entr"
                        f"{'y' if len(foreign) == 1 else 'ies'} in it genreflow did not write "
                        f"(e.g. {', '.join(foreign[:3])}); refusing to replace it. Move "
                        "them out, or pick an empty or new --dest.")


def resolve_dest(dest: Path) -> Path:
    dest = Path(dest)
    if dest.is_symlink():  # replace the folder the link points to; keep the link
        dest = dest.resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        _check_replaceable(dest)
    return dest


class Staging:
    """A hidden sibling folder of ``dest`` that becomes ``dest`` on :meth:`commit`."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.path = dest.with_name(f".{dest.name}.tmp-{token()}")
        try:
            os.mkdir(self.path)  # honours the umask, unlike mkdtemp's 0o700
        except OSError as exc:
            raise DataError(f"{dest}: cannot create {self.path.name} next to it "
                            f"({exc.strerror})") from None

    def commit(self, info: dict) -> None:
        """Write the marker, carry the user's ignore files over, swap the tree in."""
        with open(self.path / SOURCE_FILE, "w") as fh:
            fh.write(json.dumps(info, indent=2) + "\n")
            fh.flush()
            os.fsync(fh.fileno())  # the marker is complete before the tree is visible
        if self.dest.exists():  # again: someone may have added to it since resolve_dest
            _check_replaceable(self.dest)
        for name in _KEEP:
            kept = self.dest / name
            if kept.is_file() and not kept.is_symlink():
                shutil.copy2(kept, self.path / name)
        old = None
        if self.dest.exists():
            old = self.dest.with_name(f".{self.dest.name}.old-{token()}")
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

