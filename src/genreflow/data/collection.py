"""Finding the labelled clips of a collection folder (``data/``, or a source of ``data get``).

Two ways, one result (:class:`Collection`):

- **label folders**: every audio file at any depth below ``<root>/<label>/``
  (``rock/Some Artist/Album/01 Song.flac``); hidden files and folders are skipped, links are
  followed only to regular files inside the folder, and of two files with the same id in
  other formats the first in :data:`AUDIO_EXTENSIONS` order is kept;
- **an index**: ``<root>/clips.csv`` (``path,label[,group][,split]``, see
  :mod:`.manifest`), which, when present, is the list of clips.

Clip ids: ``<label>.NNNNN`` for a GTZAN-named file directly in its label folder (so GTZAN's
lists still apply), else the path relative to ``root`` without its extension, POSIX.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from genreflow.audio.decode import AUDIO_EXTENSIONS, Clip
from genreflow.core.errors import MissingInputError
from genreflow.core.labels import check_labels
from genreflow.data.layout import inside_tree, is_clip_name
from genreflow.data.manifest import parse_manifest

INDEX_FILE = "clips.csv"
MAX_DEPTH = 16  # folders below a label folder that are searched
_RANK = {ext: i for i, ext in enumerate(AUDIO_EXTENSIONS)}


@dataclass
class Collection:
    root: Path
    clips: list[Clip]  # sorted by id
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (relative path, why)
    duplicates: int = 0  # files left out: the same id in another format
    indexed: bool = False  # the clips come from root/clips.csv

    @property
    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(c.genre for c in self.clips).items()))

    @property
    def labels(self) -> list[str]:
        return list(self.counts)


def clip_id(rel: PurePosixPath, label: str) -> str:
    """The id of the file at ``rel`` (relative to the collection root) labelled ``label``."""
    if len(rel.parts) == 2 and rel.parts[0] == label and is_clip_name(rel.name, label):
        return rel.name[: -len(rel.suffix)]
    return str(rel.with_suffix("")) if rel.suffix else str(rel)


def _walk_label(folder: Path, rel: PurePosixPath, within: Path,
                found: list[PurePosixPath], ignored: list[tuple[str, str]]) -> None:
    """Append the audio files below ``folder`` (relative ``rel``) to ``found``, the rest to
    ``ignored`` with the reason; iterative, never through a link to a folder."""
    stack = [(folder, rel, 0)]
    while stack:
        here, at, depth = stack.pop()
        for entry in sorted(here.iterdir(), reverse=True):
            name = at / entry.name
            if entry.name.startswith("."):
                continue
            if entry.is_symlink() and (entry.is_dir() or not inside_tree(entry, within)):
                ignored.append((str(name), "a link to a folder or out of the folder"))
                continue
            if entry.is_dir():
                if depth + 1 > MAX_DEPTH:
                    ignored.append((f"{name}/", f"more than {MAX_DEPTH} folders deep"))
                else:
                    stack.append((entry, name, depth + 1))
            elif not entry.is_file():
                ignored.append((str(name), "not a regular file"))
            elif entry.suffix.lower() not in AUDIO_EXTENSIONS:
                ignored.append((str(name), "not an audio file extension"))
            else:
                found.append(name)


def label_folders(root: Path) -> list[Path]:
    """The candidate label folders of ``root``: real, not hidden, not ``__MACOSX``-like."""
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()
                  and not p.name.startswith((".", "__")))


def _pick(candidates: list[tuple[PurePosixPath, Clip]]) -> tuple[list[Clip], int]:
    """One clip per id (the first format in :data:`AUDIO_EXTENSIONS` order), sorted by id,
    and how many were left out."""
    chosen: dict[str, tuple[PurePosixPath, Clip]] = {}
    for rel, clip in candidates:
        held = chosen.get(clip.clip_id)
        if held is None or _RANK[rel.suffix.lower()] < _RANK[held[0].suffix.lower()]:
            chosen[clip.clip_id] = (rel, clip)
    return [chosen[k][1] for k in sorted(chosen)], len(candidates) - len(chosen)


def scan(root: Path, within: Path | None = None) -> Collection:
    """The clips below ``root``'s label folders, labels unchecked (see :func:`scan_folders`)."""
    within = (within or root).resolve()
    candidates: list[tuple[PurePosixPath, Clip]] = []
    ignored: list[tuple[str, str]] = []
    for folder in label_folders(root):
        found: list[PurePosixPath] = []
        mine: list[tuple[str, str]] = []
        _walk_label(folder, PurePosixPath(folder.name), within, found, mine)
        if found:  # a folder without audio is no label (artwork/, Kaggle's images_original/)
            ignored += mine
            candidates += [(rel, Clip(clip_id(rel, folder.name), folder.name,
                                      root.joinpath(*rel.parts))) for rel in sorted(found)]
    ignored += [(p.name, "not in a label folder") for p in sorted(root.iterdir())
                if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS]
    clips, duplicates = _pick(candidates)
    return Collection(root, clips, sorted(ignored), duplicates)


def scan_folders(root: Path, within: Path | None = None) -> Collection:
    """The clips below ``root``'s label folders, links followed only to files inside
    ``within`` (default ``root``); :class:`DataError` on invalid or colliding labels."""
    found = scan(root, within)
    check_labels({c.genre for c in found.clips}, str(root))
    return found


def read_index(root: Path) -> Collection:
    """The clips ``root/clips.csv`` lists (checked as any manifest), and the audio files
    below the label folders it leaves out (ignored, with the reason)."""
    entries = parse_manifest(root / INDEX_FILE)
    clips, duplicates = _pick([
        (PurePosixPath(e.rel), Clip(clip_id(PurePosixPath(e.rel), e.label), e.label,
                                    root / e.rel, e.group, e.split)) for e in entries])
    listed = {e.rel for e in entries}
    unlisted = [(rel, f"not listed in {INDEX_FILE}") for rel in
                (c.path.relative_to(root).as_posix() for c in scan(root).clips)
                if rel not in listed]
    return Collection(root, clips, unlisted, duplicates, indexed=True)


def discover(data_dir: str | Path) -> Collection:
    """The clips of the collection folder ``data_dir`` (its index when it has one)."""
    root = Path(data_dir)
    if not root.is_dir():
        raise MissingInputError(
            f"{root}: no such data folder; run `genreflow data get` or `genreflow data synth`")
    if (root / INDEX_FILE).exists():
        return read_index(root)
    return scan_folders(root)


def find_clips(data_dir: str | Path, genres: list[str] | None = None) -> list[Clip]:
    """The clips of ``data_dir`` (of the ``genres`` given), sorted by id."""
    clips = discover(data_dir).clips
    return clips if genres is None else [c for c in clips if c.genre in genres]
