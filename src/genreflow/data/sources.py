"""What ``data get`` will stage, whatever the source's layout: a :class:`Plan` of files and
where each goes under ``data/``.

Three layouts, tried in this order:

- **gtzan**: ``<genre>/<genre>.NNNNN.<ext>``, at the top or a few folders down
  (:mod:`.layout`); other files are left out and reported, as always;
- **folder**: label folders with audio files at any depth below them, at the top or a few
  folders down (the level with the most clips in two labels or more; :mod:`.collection`);
- **manifest**: a CSV or Parquet table ``path,label[,group][,split]`` (:mod:`.manifest`),
  staged as ``<label>/<path>`` with a ``clips.csv`` index that keeps groups and splits.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from genreflow.audio.decode import AUDIO_EXTENSIONS
from genreflow.core.config import GTZAN_GENRES
from genreflow.core.errors import DataError
from genreflow.data.collection import Collection, label_folders, scan, scan_folders
from genreflow.data.layout import SEARCH_DEPTH, Tree, find_tree
from genreflow.data.manifest import parse_manifest


@dataclass
class Plan:
    """Files to stage: ``(file, target)`` with ``target`` a POSIX path relative to ``data/``
    whose first part is the label; ``index``: rows of ``clips.csv`` (manifests only)."""

    source: str  # SOURCE.json "source": gtzan | folder | manifest
    root: Path
    items: list[tuple[Path, str]]
    notes: list[str] = field(default_factory=list)  # logged before copying
    index: list[dict[str, str | None]] | None = None

    @property
    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(t.split("/", 1)[0] for _, t in self.items).items()))

    def record(self, origin: str) -> dict:
        """SOURCE.json."""
        info = {"source": self.source, "origin": origin, "n_clips": len(self.items),
                "genres": self.counts}
        if self.index is not None:
            groups = {r["group"] for r in self.index if r["group"]}
            splits = Counter(r["split"] for r in self.index if r["split"])
            info.update(n_groups=len(groups), splits=dict(sorted(splits.items())))
        return info


def _examples(names: list[str]) -> str:
    return ", ".join(names[:5])


def gtzan_plan(tree: Tree) -> Plan:
    items = [(f, f"{g}/{f.name}") for g, files in tree.files.items() for f in files]
    notes = []
    unknown = sorted(g for g in tree.files if g not in GTZAN_GENRES)
    if unknown:
        notes.append(f"note: genre folder(s) not in GTZAN, copied anyway: {unknown}")
    missing = [g for g in GTZAN_GENRES if g not in tree.files]
    if missing and len(missing) < len(GTZAN_GENRES):
        notes.append(f"note: GTZAN genre(s) absent from the source: {missing}")
    if tree.ignored:
        notes.append(f"ignored {len(tree.ignored)} file(s) not named <genre>.NNNNN.<audio ext> "
                     f"(e.g. {_examples(tree.ignored)}; audio ext: {', '.join(AUDIO_EXTENSIONS)})"
                     "; a folder with GTZAN-named clips is read as GTZAN: list other files in a "
                     "manifest to bring them too")
    if tree.duplicates:
        notes.append(f"ignored {tree.duplicates} duplicate clip(s) (same id, another format)")
    if tree.links:
        notes.append(f"skipped {len(tree.links)} link(s) leaving the source folder or to a "
                     f"folder (e.g. {_examples(tree.links)})")
    return Plan("gtzan", tree.root, items, notes)


def folder_plan(found: Collection) -> Plan:
    items = [(c.path, c.path.relative_to(found.root).as_posix()) for c in found.clips]
    notes = []
    if found.ignored:
        reasons = Counter(why for _, why in found.ignored)
        notes.append(f"ignored {len(found.ignored)} file(s) ("
                     + "; ".join(f"{n} {why}" for why, n in reasons.most_common())
                     + f"; e.g. {_examples([p for p, _ in found.ignored])})")
    if found.duplicates:
        notes.append(f"ignored {found.duplicates} duplicate clip(s) (same path, another format)")
    return Plan("folder", found.root, items, notes)


def find_folder_root(top: Path) -> Collection | None:
    """The folder at most ``SEARCH_DEPTH`` levels below ``top`` whose label folders hold the
    most clips, in two labels or more (the shallowest on a tie); never through a link."""
    within = top.resolve()
    best: tuple[int, Path] | None = None
    level = [top]
    for _ in range(SEARCH_DEPTH + 1):
        nxt: list[Path] = []
        for d in level:
            found = scan(d, within)
            if len(found.labels) >= 2 and (best is None or len(found.clips) > best[0]):
                best = (len(found.clips), d)
            nxt.extend(label_folders(d))
        level = nxt
    return scan_folders(best[1], within) if best else None


def find_plan(top: Path) -> Plan | None:
    """The plan for a folder (or an extracted archive): GTZAN when its naming is found, else
    label folders; None when neither holds audio."""
    tree = find_tree(top)
    if tree is not None:
        return gtzan_plan(tree)
    found = find_folder_root(top)
    return folder_plan(found) if found is not None else None


def _target(rel: str, label: str) -> str:
    """Where a manifest's file goes: below its label, without a leading folder of that name."""
    parts = PurePosixPath(rel).parts
    return "/".join((label, *(parts[1:] if len(parts) > 1 and parts[0] == label else parts)))


def manifest_plan(path: Path, max_rows: int) -> Plan:
    """The files of the manifest at ``path``, each staged below its label."""
    entries = parse_manifest(path, max_rows)
    where = str(path)
    items: list[tuple[Path, str]] = []
    index: list[dict[str, str | None]] = []
    taken: dict[str, int] = {}
    for e in entries:
        target = _target(e.rel, e.label)
        if target.casefold() in taken:
            raise DataError(f"{where}: line {e.line}: path: {e.rel!r} would be staged as "
                            f"{target!r}, as line {taken.get(target.casefold())} is; rename one")
        taken[target.casefold()] = e.line
        items.append((e.file, target))
        index.append({"path": target, "label": e.label, "group": e.group, "split": e.split})
    return Plan("manifest", path.parent, items, [], index)


def layouts_hint() -> str:
    """What ``data get`` accepts, for error messages."""
    return ("expected GTZAN (<genre>/<genre>.000NN.<ext>), label folders (<label>/**/<file>"
            f".<ext>, two labels or more; ext one of {', '.join(AUDIO_EXTENSIONS)}), at the top "
            f"or up to {SEARCH_DEPTH} folders down, or a manifest (.csv/.parquet with columns "
            "path,label[,group][,split])")
