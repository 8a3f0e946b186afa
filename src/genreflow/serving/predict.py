"""``genreflow predict``: genres of local audio files from a registered model or a bundle.

Every file goes through the same input contract as the served model and ``validate``
(:mod:`genreflow.audio.contract`): a logged model brings the contract it was registered with,
a bare bundle folder uses params.yaml ``audio:``. A refused file gets an ``error`` with
its ``reason`` class; the other files are still answered.
"""

from __future__ import annotations

from pathlib import Path

from genreflow.audio.contract import check_path
from genreflow.audio.refusal import AudioError
from genreflow.core.config import AudioConfig, RegisterConfig
from genreflow.core.safe_text import printable
from genreflow.serving.loader import load_model

DEFAULT_MODEL_URI = RegisterConfig().champion_uri  # params.yaml's register.model_name: cli.py


def predict_files(files: list[Path], model_uri: str = DEFAULT_MODEL_URI, top: int = 3,
                  audio: AudioConfig | None = None) -> list[dict]:
    """Genre probabilities for each file; a refused file gets ``error`` (one line naming
    the file) and ``reason`` (its class, see :data:`genreflow.audio.contract.REASONS`).

    The contract is the logged model's own; for a bundle folder, ``audio`` (default
    :class:`AudioConfig`).
    """
    predictor, carried = load_model(model_uri)
    contract = carried or audio or AudioConfig()
    classes = list(predictor.classes)
    results: list[dict] = []
    for f in files:
        path = Path(f)
        try:
            bad = check_path(path)
            if bad is not None:
                raise bad
            probs = predictor.probs_from_source(path, contract, where=str(path))
        except AudioError as exc:
            results.append({"file": str(path), "error": str(exc), "reason": exc.reason})
            continue
        except OSError as exc:  # permission denied, I/O error
            results.append({"file": str(path), "reason": "not_a_file",
                            "error": printable(f"{path}: not_a_file: {exc.strerror or exc}")})
            continue
        ranked = sorted(zip(classes, (float(p) for p in probs), strict=True),
                        key=lambda kv: kv[1], reverse=True)
        results.append({
            "file": str(path),
            "genre": ranked[0][0],
            "probability": ranked[0][1],
            "top": [[g, p] for g, p in ranked[:max(1, top)]],
            "probabilities": dict(zip(classes, (float(p) for p in probs), strict=True)),
        })
    return results


def format_table(results: list[dict]) -> str:
    """A plain-text table: each file with its top genres and percentages (cf. Fig. 12)."""
    if not results:
        return "(no files)"
    n_top = max((len(r.get("top", [])) for r in results), default=1) or 1
    names = [printable(Path(r["file"]).name) for r in results]
    genre_w = max((len(g) for r in results for g, _ in r.get("top", [])), default=0)
    cells = []
    for r in results:
        if "error" in r:
            cells.append([f"error: {r['error']}"])
        else:
            cells.append([f"{g:<{genre_w}} {100 * p:5.1f} %" for g, p in r["top"]])
    ok_rows = [c for r, c in zip(results, cells, strict=True) if "error" not in r]
    widths = [max([len(f"#{i + 1}")] + [len(c[i]) for c in ok_rows if i < len(c)])
              for i in range(n_top)]
    file_w = max(len("file"), *(len(n) for n in names))
    header = "  ".join(["file".ljust(file_w), *(f"#{i + 1}".ljust(w) for i, w in
                                                 enumerate(widths))]).rstrip()
    lines = [header, "-" * len(header)]
    for name, r, row in zip(names, results, cells, strict=True):
        if "error" in r:
            lines.append(f"{name.ljust(file_w)}  {row[0]}")
        else:
            lines.append("  ".join([name.ljust(file_w), *(c.ljust(w) for c, w in
                                                          zip(row, widths, strict=False))]).rstrip())
    return "\n".join(lines)
