"""Stage 1, validate: decode every clip and report what is usable (paper Fig. 6)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from genreflow.audio.contract import REASONS, check_signal, sample_rates
from genreflow.audio.decode import Clip, decode, read_source, rms
from genreflow.audio.refusal import AudioError
from genreflow.core.config import GTZAN_GENRES, AudioConfig, DataConfig, ValidateConfig
from genreflow.core.errors import DataError
from genreflow.core.labels import resolve_labels
from genreflow.core.parallel import parallel_map
from genreflow.core.safe_text import printable
from genreflow.data.collection import discover
from genreflow.stages.plots import plot_class_counts

LAYOUTS = ("<genre>/<genre>.000NN.<ext> files (GTZAN), audio files at any depth below label "
           "folders (<label>/**/<file>.<ext>), or a clips.csv index (path,label[,group][,split])"
           "; bring data with `genreflow data get SOURCE` or `genreflow data synth`")
MAX_IGNORED = 1000  # files listed as ignored in validate.json (all are counted)
# "ok", every refusal class of the input contract, and GTZAN clips absent from the folder
STATUSES = ("ok", *REASONS, "missing")


def check_clip(clip: Clip, audio: AudioConfig) -> dict:
    """Decode one clip and check it against the input contract (:mod:`genreflow.audio.contract`):
    ``status`` is ``ok`` or the refusal's reason class, ``reason`` its detail."""
    rec = {"clip_id": clip.clip_id, "genre": clip.genre, "path": str(clip.path),
           "format": clip.path.suffix.lstrip(".").lower(), "seconds": None,
           "sample_rate": None, "rms": None, "status": "ok", "reason": "",
           "group": clip.group, "split": clip.split}
    try:
        y, sr = decode(clip.path, max_seconds=audio.max_seconds, sample_rates=sample_rates(audio))
        rec.update(seconds=round(len(y) / sr, 3), sample_rate=sr,
                   rms=rms(y))
        check_signal(y, sr, audio, str(clip.path))
    except AudioError as exc:
        rec.update(status=exc.reason, reason=exc.detail)
    except Exception as exc:  # anything else a broken file can throw
        rec.update(status="not_audio", reason=printable(f"{type(exc).__name__}: {exc}"))
    return rec


def _check(args: tuple[Clip, AudioConfig]) -> dict:
    return check_clip(*args)


def validate_dataset(
    data: DataConfig,
    cfg: ValidateConfig,
    workers: int = 2,
    log: Callable[[str], None] = print,
    audio: AudioConfig | None = None,
) -> dict:
    """Check every clip under ``data.dir`` against the input contract ``audio``
    (params.yaml ``audio:``); return the machine-readable report.

    For a GTZAN source, clip names of the full 1000-clip set that are absent
    are listed as ``missing``.
    """
    source = read_source(data.dir)
    found = discover(data.dir)
    clips = found.clips
    if not clips:
        raise DataError(f"{data.dir}: no audio clips; expected {LAYOUTS}")
    audio = audio or AudioConfig()
    jobs = [(c, audio) for c in clips]
    records = parallel_map(_check, jobs, workers, desc="validate", chunksize=8, min_jobs=9)

    if source.get("source") == "gtzan":
        records += _missing_gtzan(records, resolve_labels(data, found.labels))
    records.sort(key=lambda r: r["clip_id"])
    for r in records:
        if r["status"] not in ("ok", "missing"):
            log(printable(f"excluded {r['clip_id']} ({r['path']}): {r['status']}: {r['reason']}"))
        if r["status"] == "ok" and r["sample_rate"] != cfg.expected_sample_rate:
            r["reason"] = f"sample rate {r['sample_rate']} Hz (resampled later)"

    for path, why in found.ignored[:5]:
        log(printable(f"ignored {path}: {why}"))
    if len(found.ignored) > 5:
        log(f"ignored {len(found.ignored) - 5} more file(s) (listed in validate.json)")
    table = genre_table(records)
    ok = [r for r in records if r["status"] == "ok"]
    return {
        "data_source": source.get("source", "unknown"),
        "origin": source.get("origin"),
        "n_files": len(clips),
        "n_ok": len(ok),
        "counts": {s: sum(r["status"] == s for r in records) for s in STATUSES},
        "genres": table.to_dict(orient="index"),
        "excluded": [r for r in records if r["status"] not in ("ok", "missing")],
        "missing": [r["clip_id"] for r in records if r["status"] == "missing"],
        "n_ignored": len(found.ignored),
        "ignored": [{"path": p, "reason": why} for p, why in found.ignored[:MAX_IGNORED]],
        "duplicates": found.duplicates,
        "indexed": found.indexed,
        "clips": records,
    }


def _missing_gtzan(records: list[dict], labels: list[str]) -> list[dict]:
    """Records for the clips of GTZAN's 100 per genre that are absent (GTZAN sources only)."""
    present = {r["clip_id"] for r in records}
    return [{"clip_id": cid, "genre": genre, "path": None, "format": None, "seconds": None,
             "sample_rate": None, "rms": None, "status": "missing",
             "reason": "not in the data folder", "group": None, "split": None}
            for genre in GTZAN_GENRES if genre in labels
            for cid in (f"{genre}.{i:05d}" for i in range(100)) if cid not in present]


def genre_table(records: list[dict]) -> pd.DataFrame:
    """Per-genre counts by status, with duration and sample-rate ranges of usable clips."""
    df = pd.DataFrame(records)
    counts = pd.crosstab(df["genre"], df["status"]).reindex(columns=list(STATUSES), fill_value=0)
    ok = df[df["status"] == "ok"]
    stats = ok.groupby("genre").agg(
        min_seconds=("seconds", "min"), max_seconds=("seconds", "max"),
        sample_rates=("sample_rate", lambda s: ",".join(str(int(v)) for v in sorted(set(s)))),
    )
    table = counts.join(stats).fillna({"sample_rates": ""})
    table.index.name = "genre"
    return table


def write_report(report: dict, out_dir: Path) -> None:
    """Write ``validate.json``, the per-genre table (CSV) and its bar chart (Fig. 6)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "validate.json").write_text(json.dumps(report, indent=1))
    table = pd.DataFrame.from_dict(report["genres"], orient="index")
    table.index.name = "genre"
    table.to_csv(out_dir / "validate_genres.csv")
    (out_dir / "validate_summary.json").write_text(json.dumps(summary(report), indent=1))

    plot_class_counts(table[["ok"]].rename(columns={"ok": "usable clips"}),
                      f"Usable clips per genre [{report['data_source']}]",
                      out_dir / "validate_genres.png")


def summary(report: dict) -> dict:
    """``validate_summary.json``: counts by status, usable clips per label, and the files
    left out before decoding (not audio, links, not in the index...) by reason."""
    ignored = Counter(i["reason"] for i in report.get("ignored", []))
    return {"data_source": report["data_source"], "n_files": report["n_files"],
            "n_ok": report["n_ok"], **{f"n_{k}": v for k, v in report["counts"].items()},
            "ok_per_label": {g: int(row["ok"]) for g, row in report["genres"].items()},
            "excluded_reasons": {k: n for k, n in report["counts"].items()
                                 if n and k not in ("ok", "missing")},
            "n_ignored": report.get("n_ignored", 0), "ignored_reasons": dict(ignored),
            "n_duplicates": report.get("duplicates", 0)}


def format_table(report: dict) -> str:
    """Fig. 6 as text: one line per genre."""
    lines = []
    for genre, row in report["genres"].items():
        extra = ", ".join(f"{row[s]} {s}" for s in STATUSES[1:] if row.get(s))
        lines.append(f"Size of {genre} dataset: {row['ok']} files." + (f" ({extra})" if extra else ""))
    return "\n".join(lines)
