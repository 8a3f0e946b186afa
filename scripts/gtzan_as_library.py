"""GTZAN clips re-arranged as a user's own collection: the benchmark of "Your own data".

    python scripts/gtzan_as_library.py GTZAN_DIR OUT [--genres blues classical jazz rock]

writes ``OUT/library/<Label>/<Group>/<Track name>.<ext>`` (label folders with capitalised
names, track names unrelated to GTZAN's ids, one sub-folder per group) and
``OUT/catalogue.csv`` (``path,label,group``, paths relative to the catalogue). A clip's group
is its genre and its part of the fault-filtered split (Kereliuk, Sturm & Larsen 2015), so no
group straddles that split's partition: ``split.method: group`` with
``split.ratios`` set to the partition's proportions can reproduce it, and its test accuracy
is comparable with ``split.method: fault_filtered`` on the original layout (same seeds).
Clips absent from the fault-filtered lists are left out. Files are hard-linked when OUT is
on the same file system as GTZAN_DIR, else copied; nothing is written outside OUT.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
from pathlib import Path

SPLITS = Path(__file__).resolve().parents[1] / "src" / "genreflow" / "stages" / "resources" \
    / "gtzan_fault_filtered.json"
PART = {"train": "train", "valid": "val", "test": "test"}


def track_name(clip_id: str) -> str:
    """A stable name with nothing of the GTZAN id in it."""
    digest = hashlib.sha256(clip_id.encode()).hexdigest()
    return f"Track {digest[:6]} ({digest[6:10]})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gtzan", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--genres", nargs="*", default=None, help="genres to keep (default: all)")
    args = ap.parse_args()
    lists = json.loads(SPLITS.read_text())
    part_of = {cid: PART[p] for p in PART for cid in lists[p]}
    library = args.out / "library"
    if library.exists():
        raise SystemExit(f"{library} exists; choose another OUT")
    rows, counts = [], {}
    for genre_dir in sorted(p for p in args.gtzan.iterdir() if p.is_dir()):
        genre = genre_dir.name
        if args.genres and genre not in args.genres:
            continue
        for f in sorted(genre_dir.iterdir()):
            part = part_of.get(f.stem)
            if part is None or f.name.startswith("."):
                continue
            label, group = genre.capitalize(), f"{genre}-{part}"
            rel = Path(label) / group / f"{track_name(f.stem)}{f.suffix}"
            (library / rel).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(f, library / rel)
            except OSError:
                shutil.copyfile(f, library / rel)
            rows.append({"path": f"library/{rel.as_posix()}", "label": label, "group": group})
            counts[part] = counts.get(part, 0) + 1
    with open(args.out / "catalogue.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "label", "group"])
        writer.writeheader()
        writer.writerows(rows)
    total = sum(counts.values())
    print(f"{total} clips in {args.out / 'library'}; catalogue {args.out / 'catalogue.csv'}")
    print("fault-filtered partition: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print("split.ratios reproducing it: [" + ", ".join(
        f"{counts.get(k, 0) / total:.3f}" for k in ("train", "val", "test")) + "]")


if __name__ == "__main__":
    main()
