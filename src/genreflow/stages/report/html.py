"""The HTML page of ``genreflow report``: one self-contained file (figures inlined, no script)."""

from __future__ import annotations

import base64
import os
from html import escape
from pathlib import Path

from genreflow.models.metrics import UNBALANCED, WIDE_INTERVAL
from genreflow.models.splits import SPLITS
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

CSS = """
body { font-family: system-ui, sans-serif; margin: 20px auto; max-width: 1180px; color: #222; }
h1 { margin-bottom: 4px; } h2 { margin-top: 28px; border-bottom: 1px solid #ddd; }
.source { font-size: 20px; font-weight: 700; padding: 10px 16px; border-radius: 6px; }
.source-synthetic, .source-mixed, .source-unknown { background: #fff1d6; border: 3px solid #e67e22; }
.source-mixed { background: #fde2e1; border-color: #c0392b; }
.source-gtzan { background: #e3f5e6; border: 3px solid #27ae60; }
.problem { color: #c0392b; font-weight: 600; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { padding: 5px 10px; border-bottom: 1px solid #eee; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; min-width: 90px; }
.bar { background: #4c78a8; height: 6px; margin-top: 2px; }
tr.missing td { color: #a0522d; font-style: italic; }
tr.champion { background: #fff9e0; }
code { background: #f4f4f4; padding: 1px 4px; }
figure { display: inline-block; vertical-align: top; margin: 6px; max-width: 560px; }
figure img { max-width: 560px; border: 1px solid #ddd; }
figcaption { font-size: 12px; color: #555; }
dl { display: grid; grid-template-columns: max-content auto; gap: 4px 14px; }
dt { font-weight: 600; } dd { margin: 0; }
"""


def _num(value, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "-"


def _acc_cell(value: float | None) -> str:
    if value is None:
        return '<td class="num">-</td>'
    return (f'<td class="num">{value:.3f}'
            f'<div class="bar" style="width:{max(0.0, min(1.0, value)) * 100:.0f}%"></div></td>')


def _banner(summary: Summary) -> str:
    source = summary.data_source
    text = f"[{source}] {source_note(summary)}."
    return f'<p class="source source-{escape(source)}" id="data-source">{escape(text)}</p>'


def _models_table(summary: Summary) -> str:
    star = champion_row(summary)
    head = "".join(f'<th class="num">{s}</th>' for s in SPLITS)
    rows = []
    for m in summary.models:
        attrs = f'class="model{" champion" if m.name == star else ""}{" missing" if m.status == "missing" else ""}"'
        attrs += f' data-model="{escape(m.name)}" data-status="{escape(m.status)}"'
        if m.status == "missing":
            rows.append(f"<tr {attrs}><td>{escape(m.name)}</td><td colspan='10'>missing: no "
                        f"<code>{escape(str(m.folder / 'metrics.json'))}</code> (run "
                        f"<code>dvc repro train@{escape(m.name)}</code>)</td></tr>")
            continue
        mt = m.metrics
        note = " (not in train.models: old output)" if m.status != "ok" else ""
        note += " &#9733; registered" if m.name == star else ""
        rows.append(
            f"<tr {attrs}><td><b>{escape(m.name)}</b>{note}</td>"
            + "".join(_acc_cell(m.accuracy(s)) for s in SPLITS)
            + f'<td class="num val-interval">{interval_text(m.interval("val"))}</td>'
            + "".join(f'<td class="num">{_num(m.macro_f1(s))}</td>' for s in ("val", "test"))
            + f'<td class="num">{_num(mt.get("val_track_loss"))}</td>'
            f'<td class="num">{escape(str(mt.get("epochs", "-")))} '
            f'({escape(str(mt.get("best_epoch", "-")))})</td>'
            f'<td>{escape(str(mt.get("data_source", "?")))}</td>'
            f'<td><code>{escape(str(mt.get("run_id", "-")))[:12]}</code></td></tr>')
    wide = wide_intervals(summary)
    warning = (f"<p class='problem' id='wide-intervals'>Validation split too small to choose "
               f"between models: the 95 % interval of {escape(', '.join(wide))} is wider than "
               f"{WIDE_INTERVAL:g}; models whose scores fall inside each other's interval are "
               "not told apart.</p>" if wide else "")
    return (f"<table id='models'><tr><th>model</th>{head}<th class='num'>val 95 % interval"
            "</th><th class='num'>macro-F1 val</th><th class='num'>macro-F1 test</th>"
            "<th class='num'>val loss</th>"
            "<th class='num'>epochs (best)</th><th>data</th><th>MLflow run</th></tr>"
            + "".join(rows) + "</table>" + warning +
            "<p>Track accuracy: segment probabilities averaged over each whole clip; its "
            "interval is a bootstrap over the split's tracks (95 %). Macro-F1 is the mean of "
            "the classes' F1, each class counting the same however many tracks it has. "
            "The test split is never used to choose a model.</p>")


def _class_tables(summary: Summary) -> str:
    """Per model: precision, recall, F1 and support per class (test split, else val)."""
    star = champion_row(summary)
    parts = []
    for m in summary.models:
        found = m.class_table()
        if found is None:
            continue
        split, table = found
        ratio = imbalance(table)
        note = ("" if ratio is None or ratio < UNBALANCED else
                f"<p class='problem'>Unbalanced ({escape(imbalance_text(ratio))}): accuracy "
                "leans on the large classes, macro-F1 counts each class the same.</p>")
        rows = "".join(
            f"<tr><td>{escape(str(label))}</td><td class='num'>{escape(str(row.get('support')))}"
            f"</td>" + "".join(f"<td class='num'>{_num(row.get(k))}</td>"
                                for k in ("precision", "recall", "f1")) + "</tr>"
            for label, row in table.items())
        mark = " &#9733; champion" if m.name == star else ""
        parts.append(
            f"<h3>{escape(m.name)}{mark}: {split} split, macro-F1 "
            f"{_num(m.macro_f1(split))}</h3>"
            f"<table class='per-class' data-model='{escape(m.name)}' data-split='{split}'>"
            "<tr><th>class</th><th class='num'>support</th><th class='num'>precision</th>"
            "<th class='num'>recall</th><th class='num'>F1</th></tr>" + rows + "</table>" + note)
    return "<h2>Per-class metrics</h2>" + ("".join(parts) or "<p>No <code>per_class.json"
                                           "</code> (runs trained before it existed).</p>")


def _dl(items: list[tuple[str, object]]) -> str:
    return "<dl>" + "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>"
                            for k, v in items if v is not None) + "</dl>"


def _champion(summary: Summary) -> str:
    champ = summary.champion
    if not champ:
        return ("<section id='champion' data-version=''><h2>Champion</h2><p class='problem'>"
                "No model is registered yet: no <code>reports/register.json</code> "
                "(run <code>dvc repro register</code>).</p></section>")
    name = champ.get("model_name", summary.model_name)
    return (f"<section id='champion' data-version='{escape(str(champ.get('version', '')))}'>"
            f"<h2>Champion: {escape(name)} v{escape(str(champ.get('version', '?')))} "
            f"@{escape(str(champ.get('alias', '?')))}</h2>"
            + _dl([("model kind", champ.get("model_kind")),
                   ("from", champion_origin(summary)),
                   ("decision", champ.get("reason")),
                   (f"{summary.metric} (raw audio)", _num(registered_val(champ))),
                   ("previous champion on the same clips", _num(previous_val(champ))),
                   ("test track accuracy", _num(champ.get("test_track_accuracy"))),
                   ("time for a 30 s clip", None if champ.get("latency_ms") is None
                    else f"{champ['latency_ms']:.0f} ms on the machine that registered it"),
                   ("previous champion", champ.get("previous_champion") or "none"),
                   ("data source", champ.get("data_source")),
                   ("MLflow run", champ.get("run_id"))])
            + f"<p>Serve it: <code>MLFLOW_TRACKING_URI=sqlite:///mlflow.db mlflow models serve "
            f"-m models:/{escape(name)}@champion --env-manager local</code></p></section>")


def _data(summary: Summary) -> str:
    v, s, t = summary.validate or {}, summary.split or {}, summary.tune or {}
    items = [("usable clips", f"{v['n_ok']} of {v['n_files']} files" if v else "no report"),
             ("usable clips per label", ", ".join(
                 f"{g} {n}" for g, n in (v.get("ok_per_label") or {}).items()) or None),
             ("excluded (input contract)", ", ".join(
                 f"{n} {why}" for why, n in (v.get("excluded_reasons") or {}).items())
              or ("none" if v else None)),
             ("left out before decoding", ", ".join(
                 f"{n} {why}" for why, n in (v.get("ignored_reasons") or {}).items())
              + (f", {v['n_duplicates']} duplicate(s) in another format"
                 if v.get("n_duplicates") else "") or None),
             ("missing GTZAN clips", v.get("n_missing") or None),
             ("split", f"{s.get('method')} (seed {s.get('seed')}), genres "
                       f"{', '.join(s.get('genres', []))}" if s else "no report"),
             ("tracks per split", ", ".join(f"{k} {n}" for k, n in s.get("counts", {}).items())
              or None)]
    tune = [("study", t.get("study")), ("model", t.get("model")),
            ("trials", f"{t.get('n_complete')} complete, {t.get('n_pruned')} pruned, "
                       f"{t.get('n_failed')} failed" if t else None),
            (f"best {t.get('metric', 'value')}", (_num(t.get("best_value")) + (
                f" (95 % interval {interval_text(t['best_interval'])}, macro-F1 "
                f"{_num(t.get('best_macro_f1'))})" if t.get("best_interval") else ""))
             if t else None),
            ("warning", t.get("warning")),
            ("best parameters", ", ".join(
                f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                for k, v in (t.get("best_params") or {}).items()) or None)]
    return ("<h2>Data</h2>" + _dl(items) + "<h2>Tuning</h2>"
            + (_dl(tune) if t else "<p>No <code>reports/tune/tune.json</code>.</p>"))


def _figure(summary: Summary, rel: Path, page_dir: Path) -> str:
    path = summary.root / rel
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    link = escape(Path(os.path.relpath(path.resolve(), page_dir.resolve())).as_posix())
    return (f'<figure><a href="{link}"><img alt="{escape(str(rel))}" '
            f'src="data:image/png;base64,{data}"></a>'
            f'<figcaption><a href="{link}">{escape(str(rel))}</a></figcaption></figure>')


def render_page(summary: Summary, page_dir: Path) -> str:
    """The whole page; figure links are relative to ``page_dir``."""
    problems = "".join(f"<p class='problem'>{escape(p)}</p>" for p in summary.problems)
    missing = [m.name for m in summary.models if m.status == "missing"]
    if missing:
        problems += (f"<p class='problem'>Missing model(s): {escape(', '.join(missing))}: "
                     "their training output is not there.</p>")
    figures = "".join(f"<h3>{escape(section)}</h3>"
                      + "".join(_figure(summary, p, page_dir) for p in paths)
                      for section, paths in summary.figures().items())
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>genreflow report [{escape(summary.data_source)}]</title>"
            f"<style>{CSS}</style></head><body>"
            f"<h1>genreflow report</h1>{_banner(summary)}{problems}"
            f"<h2>Models: track accuracy per split</h2>{_models_table(summary)}"
            f"{_class_tables(summary)}"
            f"{_champion(summary)}{_data(summary)}<h2>Figures</h2>{figures or '<p>none</p>'}"
            "<h2>More</h2><p><code>dvc plots show</code> (interactive curves and confusion "
            "matrices, offline), <code>dvc metrics show</code>, <code>mlflow ui "
            "--backend-store-uri sqlite:///mlflow.db</code>.</p></body></html>\n")
