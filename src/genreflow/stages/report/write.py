"""The report's outputs: the terminal table, ``champion.json`` and the page (``index.html``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from genreflow.models.metrics import UNBALANCED, WIDE_INTERVAL
from genreflow.models.splits import SPLITS
from genreflow.stages.report.html import render_page
from genreflow.stages.report.summary import (
    Summary,
    champion_origin,
    champion_row,
    imbalance,
    imbalance_text,
    interval_text,
    previous_val,
    registered_val,
    source_note,
    wide_intervals,
)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def terminal_table(summary: Summary, page: Path | None = None) -> str:
    """A short plain-text summary: data source, per-model track accuracy (the validation
    interval, macro-F1), champion."""
    lines = [f"genreflow report [{summary.data_source}] ({source_note(summary)})",
             "track accuracy (whole clips); val 95 % interval over its tracks; macro-F1",
             f"{'model':<12}{'train':>7}{'val':>7}{'test':>7}  {'epochs (best)':<15}"
             f"{'val interval':<17}{'F1 val':>7}{'test':>7}"]
    star = champion_row(summary)
    for m in summary.models:
        name = m.name + (" *" if m.name == star else "")
        if m.status == "missing":
            lines.append(f"{name:<12}missing: no {m.folder / 'metrics.json'} "
                         f"(run `dvc repro train@{m.name}`)")
            continue
        accs = "".join(f"{_fmt(m.accuracy(s)):>7}" for s in SPLITS)
        epochs = f"{m.metrics.get('epochs', '-')} ({m.metrics.get('best_epoch', '-')})"
        f1 = "".join(f"{_fmt(m.macro_f1(s)):>7}" for s in ("val", "test"))
        extra = "  (not in train.models)" if m.status != "ok" else ""
        lines.append(f"{name:<12}{accs}  {epochs:<15}{interval_text(m.interval('val')):<17}{f1}{extra}")
        found = m.class_table()
        ratio = imbalance(found[1]) if found else None
        if ratio is not None and ratio >= UNBALANCED:
            lines.append(f"{'':<12}unbalanced {found[0]} split ({imbalance_text(ratio)}): "
                         "read macro-F1 and per_class.json, not accuracy alone")
    wide = wide_intervals(summary)
    if wide:
        lines.append(f"warning     val interval wider than {WIDE_INTERVAL:g} ({', '.join(wide)}):"
                     " the validation split is too small to choose between models")
    champ = summary.champion
    if champ:
        lines.append(f"champion    {champ.get('model_name', summary.model_name)} "
                     f"v{champ.get('version', '?')} @{champ.get('alias', '?')}: "
                     f"{champ.get('model_kind', '?')} from {champion_origin(summary)}, "
                     f"{summary.metric} {_fmt(registered_val(champ))} (previous champion "
                     f"{_fmt(previous_val(champ))} on the same clips), "
                     f"test {_fmt(champ.get('test_track_accuracy'))}"
                     + (f", {champ['latency_ms']:.0f} ms for a 30 s clip"
                        if champ.get("latency_ms") is not None else ""))
        lines.append(f"            {champ.get('reason', '')}")
    else:
        lines.append("champion    none: no reports/register.json (run `dvc repro register`)")
    if star:
        lines.append("            * the model whose run was registered")
    lines += [f"problem     {p}" for p in summary.problems]
    if page is not None:
        lines.append(f"page        {page}")
    return "\n".join(lines)


def champion_metrics(summary: Summary) -> dict:
    """The champion as a small DVC metrics file with the same keys as the models' files."""
    champ = summary.champion or {}
    out: dict = {"data_source": champ.get("data_source", summary.data_source)}
    if champ:
        out.update({"version": int(champ["version"]) if str(champ.get("version", "")).isdigit()
                    else champ.get("version"),
                    summary.metric: registered_val(champ),
                    "test_track_accuracy": champ.get("test_track_accuracy")})
        row = next((m for m in summary.models if m.name == champion_row(summary)), None)
        if row is not None and row.macro_f1("test") is not None:
            out["test_macro_f1"] = row.macro_f1("test")  # its training run's, on features
    return out


def write_report(summary: Summary, out_dir: Path, log: Callable[[str], None] = print) -> Path:
    """Write ``index.html`` (self-contained) and ``champion.json`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    page = out_dir / "index.html"
    page.write_text(render_page(summary, page.parent), encoding="utf-8")
    (out_dir / "champion.json").write_text(json.dumps(champion_metrics(summary), indent=1))
    for problem in summary.problems:
        log(f"warning: {problem}")
    return page
