"""Manifests: a table of audio files and their labels (CSV, or Parquet), and the
``clips.csv`` index a staged collection may carry.

Columns: ``path`` and ``label``, optionally ``group`` (artist, album, session: what must never
straddle splits) and ``split`` (a predefined ``train``/``val``/``test``). Paths are relative to
the manifest's folder, with ``/`` separators, and must stay inside it (links included).
Every refusal is one line naming the manifest, the line and the field.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from genreflow.audio.decode import AUDIO_EXTENSIONS
from genreflow.core.errors import DataError
from genreflow.core.labels import check_label
from genreflow.core.safe_text import printable

COLUMNS = ("path", "label", "group", "split")
REQUIRED = ("path", "label")
SPLITS = ("train", "val", "test")
MAX_BYTES = 256 << 20  # a manifest larger than this is not a list of audio files
MAX_GROUP = 200  # characters of a group name
TABLE_SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class Entry:
    """One row of a manifest: the file (resolved, inside the manifest's folder), its path as
    written (POSIX, relative), its label, group and predefined split, and its line."""

    file: Path
    rel: str
    label: str
    group: str | None
    split: str | None
    line: int


def is_manifest(path: Path) -> bool:
    return path.suffix.lower() in TABLE_SUFFIXES


def _rows_csv(path: Path, where: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{where}: not UTF-8 text (byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        rows = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    except csv.Error as exc:
        raise DataError(f"{where}: line {reader.line_num}: not valid CSV ({exc})") from None
    if header is None:
        raise DataError(f"{where}: empty; expected a header line {','.join(COLUMNS)}")
    return header, rows


def _rows_parquet(path: Path, where: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    # deferred: pandas' Parquet reader (pyarrow) is needed only for Parquet manifests
    import pandas as pd

    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001  (pyarrow raises many types for bad files)
        raise DataError(f"{where}: cannot read as Parquet ({type(exc).__name__})") from None
    header = [str(c) for c in df.columns]
    rows = [(i + 2, ["" if v is None or v != v else str(v) for v in rec])
            for i, rec in enumerate(df.itertuples(index=False, name=None))]
    return header, rows  # line numbers as if the header were line 1, as in a CSV


def read_table(path: Path, max_rows: int) -> list[tuple[int, dict[str, str]]]:
    """The rows of a CSV or Parquet manifest as ``(line, {column: text})``, columns checked."""
    where = printable(str(path))
    if path.is_symlink() or not path.is_file():
        raise DataError(f"{where}: not a regular file")
    if path.stat().st_size > MAX_BYTES:
        raise DataError(f"{where}: larger than {MAX_BYTES >> 20} MiB; not a manifest")
    reader = _rows_parquet if path.suffix.lower() == ".parquet" else _rows_csv
    header, rows = reader(path, where)
    names = [h.strip().lower() for h in header]
    unknown = [h for h in names if h not in COLUMNS]
    if unknown:
        raise DataError(f"{where}: line 1: unknown column(s) {unknown}; expected "
                        f"{', '.join(REQUIRED)} and optionally group, split")
    absent = [c for c in REQUIRED if c not in names]
    if absent or len(set(names)) != len(names):
        raise DataError(f"{where}: line 1: columns {names}; expected each of "
                        f"{', '.join(REQUIRED)} once (and optionally group, split)")
    if len(rows) > max_rows:
        raise DataError(f"{where}: {len(rows)} rows, more than {max_rows}; limit "
                        "intake.max_members (params.yaml, or `data get --max-members`)")
    out = []
    for line, row in rows:
        if len(row) != len(names):
            raise DataError(f"{where}: line {line}: {len(row)} fields, the header has "
                            f"{len(names)}")
        out.append((line, {n: v.strip() for n, v in zip(names, row, strict=True)}))
    return out


def _relative(text: str, where: str) -> PurePosixPath:
    """``text`` as a relative POSIX path with no ``..``, ``.`` or empty part."""
    if not text:
        raise DataError(f"{where}: path: empty")
    if "\\" in text:
        raise DataError(f"{where}: path: {printable(text)!r} uses '\\'; write paths with '/'")
    rel = PurePosixPath(text)
    if rel.is_absolute() or any(p in ("..", ".") for p in text.split("/")) or "" in text.split("/"):
        raise DataError(f"{where}: path: {printable(text)!r} must be relative to the "
                        "manifest's folder, without '..', '.' or '//'")
    return rel


def _resolve(base: Path, rel: PurePosixPath, where: str) -> Path:
    """The regular file ``base/rel`` is, refusing one outside ``base`` (through a link too)."""
    path = base.joinpath(*rel.parts)
    shown = printable(str(rel))
    if not path.exists():
        raise DataError(f"{where}: path: {shown!r}: no such file")
    real = path.resolve()
    if not real.is_relative_to(base):
        raise DataError(f"{where}: path: {shown!r} leads outside the manifest's folder "
                        "(through a link); refusing it")
    if not real.is_file():
        raise DataError(f"{where}: path: {shown!r} is not a regular file")
    if rel.suffix.lower() not in AUDIO_EXTENSIONS:
        raise DataError(f"{where}: path: {shown!r} is not an audio file (extension one of "
                        f"{', '.join(AUDIO_EXTENSIONS)})")
    return real


def _entry(base: Path, line: int, row: dict[str, str], where: str) -> Entry:
    at = f"{where}: line {line}"
    rel = _relative(row["path"], at)
    file = _resolve(base, rel, at)
    why = check_label(row["label"])
    if why:
        raise DataError(f"{at}: label: {printable(row['label'])!r}: {why}")
    group = row.get("group") or None
    if group is not None and (len(group) > MAX_GROUP or not group.isprintable()):
        raise DataError(f"{at}: group: longer than {MAX_GROUP} characters or not printable")
    split = row.get("split") or None
    if split is not None and split not in SPLITS:
        raise DataError(f"{at}: split: {printable(split)!r}; expected one of "
                        f"{', '.join(SPLITS)} (or empty)")
    return Entry(file, str(rel), row["label"], group, split, line)


def parse_manifest(path: Path, max_rows: int = 1_000_000) -> list[Entry]:
    """Every row of the manifest at ``path``, checked: columns, paths inside its folder and
    present, labels, groups, splits, no path twice, no file under two labels, at least one row."""
    where = printable(str(path))
    base = path.parent.resolve()
    entries: list[Entry] = []
    seen: dict[Path, Entry] = {}
    labels: dict[str, Entry] = {}  # by case-folded label
    for line, row in read_table(path, max_rows):
        e = _entry(base, line, row, where)
        first = seen.get(e.file)
        if first is not None:
            what = ("the same file under two labels "
                    f"({first.label!r} on line {first.line}, {e.label!r} here)"
                    if first.label != e.label else f"listed twice (first on line {first.line})")
            raise DataError(f"{where}: line {line}: path: {printable(e.rel)!r}: {what}")
        seen[e.file] = e
        held = labels.setdefault(e.label.casefold(), e)
        if held.label != e.label:
            raise DataError(f"{where}: line {line}: label: {e.label!r} and {held.label!r} "
                            f"(line {held.line}) differ only in case; use one spelling")
        entries.append(e)
    if not entries:
        raise DataError(f"{where}: lists no audio files")
    return entries


def write_index(path: Path, rows: list[dict[str, str | None]]) -> None:
    """``clips.csv``: ``path,label,group,split`` (empty when unknown)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(COLUMNS)
        for r in rows:
            out.writerow([r.get(c) or "" for c in COLUMNS])
