"""Finding GTZAN's ``<genre>/<genre>.NNNNN.<ext>`` layout in a folder, at the top or a few
levels down (Marsyas' ``genres/``, Kaggle's ``Data/genres_original/``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from genreflow.audio.decode import AUDIO_EXTENSIONS

_CLIP_NAME = re.compile(r"^(?P<genre>[a-z]+)\.(?P<num>\d{5})(?P<ext>\.[A-Za-z0-9]+)$")
SEARCH_DEPTH = 3  # how deep below the given folder the <genre>/ tree may sit


@dataclass
class Tree:
    root: Path
    files: dict[str, list[Path]]  # genre -> clip files (first one per clip id)
    ignored: list[str]  # <genre>/<file> of every file not named like a clip
    duplicates: int
    links: list[str] = field(default_factory=list)  # links skipped: out of the tree, or folders

    @property
    def n_clips(self) -> int:
        return sum(len(v) for v in self.files.values())


def is_clip_name(name: str, genre: str) -> bool:
    """``<genre>.NNNNN.<audio ext>``: the only file name genreflow writes in a genre folder."""
    m = _CLIP_NAME.match(name)
    return m is not None and m["genre"] == genre and m["ext"].lower() in AUDIO_EXTENSIONS


def inside_tree(link: Path, within: Path | None) -> bool:
    """A file link is followed only when it resolves to a regular file inside ``within``."""
    if within is None:
        return False
    real = link.resolve()
    return real.is_relative_to(within) and real.is_file()


def _real_dirs(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir()
                  if p.is_dir() and not p.is_symlink() and not p.name.startswith("."))


def scan_tree(root: Path, within: Path | None = None) -> Tree:
    """Clip files under ``root/<genre>/<genre>.NNNNN.<ext>`` (genre folders with none are skipped).

    Links to folders are never followed, links to files only when they stay inside
    ``within`` (the resolved source folder); the others are listed in ``Tree.links``."""
    files: dict[str, list[Path]] = {}
    ignored: list[str] = []
    links = [f"{p.name}/" for p in sorted(root.iterdir()) if p.is_symlink() and p.is_dir()]
    duplicates = 0
    rank = {ext: i for i, ext in enumerate(AUDIO_EXTENSIONS)}
    for sub in _real_dirs(root):
        chosen: dict[str, Path] = {}
        other: list[str] = []
        for f in sorted(sub.iterdir()):
            if f.name.startswith("."):
                continue
            if f.is_symlink() and not inside_tree(f, within):
                links.append(f"{sub.name}/{f.name}")
                continue
            m = _CLIP_NAME.match(f.name)
            ok = (
                m is not None
                and m["genre"] == sub.name
                and m["ext"].lower() in AUDIO_EXTENSIONS
                and f.is_file()
            )
            if not ok:
                other.append(f"{sub.name}/{f.name}")
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
    return Tree(root, files, ignored, duplicates, links)


def find_tree(top: Path) -> Tree | None:
    """The folder at most ``SEARCH_DEPTH`` levels below ``top`` holding the most clips
    (never through a link to a folder)."""
    within = top.resolve()
    best: Tree | None = None
    level = [top]
    for _ in range(SEARCH_DEPTH + 1):
        nxt: list[Path] = []
        for d in level:
            tree = scan_tree(d, within)
            if tree.n_clips and (best is None or tree.n_clips > best.n_clips):
                best = tree
            nxt.extend(p for p in _real_dirs(d) if not p.name.startswith("__"))
        level = nxt
    return best
