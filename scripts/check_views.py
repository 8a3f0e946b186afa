"""Render what a user looks at in headless Chromium, offline, and fail on an empty chart.

Given a project folder after `dvc repro`, this runs `dvc plots show` and `genreflow report`
into OUT, opens both pages in Chromium with every network lookup blocked, and reads the DOM
after the scripts ran (vega draws SVG there). It fails when a page has no chart, a vega chart
drew no mark, an image is missing, a model of ``train.models`` has no learning curves or
they lack training or validation series of loss or accuracy, or the report misses a model or
the champion. Screenshots land in OUT for a person to look at.

    python scripts/check_views.py --project . --out tmp/views

Chromium: Debian `apt-get install -y chromium` (or set --chromium / $CHROMIUM).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import yaml

OFFLINE = ["--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9",
           "--proxy-bypass-list=<-loopback>"]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--hide-scrollbars", *OFFLINE]
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}
CURVES = {"concat_0_marks": "loss", "concat_1_marks": "accuracy"}  # .dvc/plots/learning_curves


@dataclass
class Chart:
    """One plot on a page: a ``<div id>`` of DVC's page, or a figure of the report."""

    id: str
    marks: int = 0  # drawn vega items (path/rect/text ... with role graphics-symbol)
    svgs: int = 0
    images: list[str] = field(default_factory=list)
    series: set[tuple[str, str]] = field(default_factory=set)  # (panel, series) of curves
    errors: list[str] = field(default_factory=list)


class PageParser(HTMLParser):
    """Attribute SVG marks, images and error text to the chart (div with id) holding them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, str | None, str]] = []  # (tag, chart id, class)
        self.charts: dict[str, Chart] = {}
        self.images: list[str] = []  # every <img src> of the page
        self.hidden_banner = True

    def _chart(self) -> str | None:
        return self.stack[-1][1] if self.stack else None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        chart = self._chart()
        if tag == "div" and a.get("id") == "genreflow-no-vega":
            self.hidden_banner = "display: block" not in (a.get("style") or "")
        elif tag in ("div", "section", "figure") and a.get("id") and chart is None:
            chart = a["id"]
            self.charts.setdefault(chart, Chart(chart))
        cls = a.get("class") or ""
        if tag == "img" and a.get("src"):
            self.images.append(a["src"])
        if chart is not None and chart in self.charts:
            c = self.charts[chart]
            if tag == "svg":
                c.svgs += 1
            if tag == "img" and a.get("src"):
                c.images.append(a["src"])
            # a drawn data item: nearest vega mark group is a data mark ("role-mark"),
            # not an axis, legend or title; paths must have a shape
            parent = next((s[2] for s in reversed(self.stack) if "mark-" in s[2]), "")
            if a.get("role") == "graphics-symbol" and tag != "g" and "role-mark" in parent \
                    and (tag != "path" or a.get("d")):
                c.marks += 1
                label = a.get("aria-label") or ""
                found = re.search(r"series: ([^;]+)", label)
                for key, panel in CURVES.items():
                    if key in parent and found:
                        c.series.add((panel, found.group(1).strip()))
        if tag not in VOID:
            self.stack.append((tag, chart, cls))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        if self.stack and self.stack[-1][2] == "chart-error" and self._chart():
            self.charts[self._chart()].errors.append(data.strip())


def find_chromium(explicit: str | None) -> str:
    for name in (explicit, os.environ.get("CHROMIUM"), "chromium", "chromium-browser",
                 "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    sys.exit("check_views: Chromium not found. Install it (Debian/Ubuntu: "
             "`sudo apt-get update && sudo apt-get install -y chromium`) or pass --chromium PATH.")


def chromium(binary: str, url: str, *args: str, budget_ms: int = 20000) -> str:
    with tempfile.TemporaryDirectory(prefix="check-views-") as profile:
        proc = subprocess.run([binary, *FLAGS, f"--user-data-dir={profile}",
                               f"--virtual-time-budget={budget_ms}", *args, url],
                              capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:
        raise RuntimeError(f"chromium failed on {url}:\n{proc.stderr[-2000:]}")
    return proc.stdout


def render(binary: str, page: Path, shot: Path, n_charts: int) -> tuple[PageParser, str]:
    """DOM after the scripts ran (parsed and as text); and a screenshot tall enough for it."""
    url = page.resolve().as_uri()
    dom = chromium(binary, url, "--dump-dom")
    parser = PageParser()
    parser.feed(dom)
    height = min(16000, 900 + 420 * max(1, n_charts))
    chromium(binary, url, f"--window-size=1600,{height}", f"--screenshot={shot.resolve()}")
    return parser, dom


def run(args: list[str], cwd: Path) -> str:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return proc.stdout


def check_template(project: Path) -> list[str]:
    """The configured ``plots.html_template`` exists and carries its own vega."""
    cfg = project / ".dvc" / "config"
    text = cfg.read_text() if cfg.is_file() else ""
    found = re.search(r"html_template\s*=\s*(.+)", text)
    if not found:
        return ["no plots.html_template in .dvc/config: DVC's page loads vega from a CDN"]
    path = Path(found.group(1).strip())
    path = path if path.is_absolute() else project / ".dvc" / path
    if not path.is_file():
        return [f"{path}: the plots template is missing; run `make plots-deps`"]
    if "/* vega-embed@" not in path.read_text(encoding="utf-8"):
        return [f"{path}: vega is not inlined (CDN fallback?); run `make plots-deps` with npm"]
    return []


def check_dvc_page(parser: PageParser, page: Path, models: list[str]) -> list[str]:
    problems = [] if parser.hidden_banner else ["the 'chart libraries are missing' banner shows"]
    charts = {k: c for k, c in parser.charts.items() if k != "genreflow-no-vega"}
    if not charts:
        problems.append("no chart on the page")
    for c in charts.values():
        if c.errors:
            problems.append(f"{c.id}: {' '.join(c.errors)[:300]}")
        if c.images:
            problems += [f"{c.id}: image {src} is missing or empty" for src in c.images
                         if not src.startswith("data:") and
                         not ((page.parent / src).is_file() and (page.parent / src).stat().st_size)]
        elif c.marks == 0:
            problems.append(f"{c.id}: empty chart ({c.svgs} svg, no drawn mark)")
    for model in models:
        c = charts.get(f"reports_train_{model}_history_csv")
        if c is None:
            problems.append(f"{model}: no learning-curve chart")
            continue
        want = {(p, s) for p in ("loss", "accuracy") for s in ("training", "validation")}
        if not want <= c.series:
            problems.append(f"{model}: learning curves lack {sorted(want - c.series)}")
    return problems


def check_report(parser: PageParser, html: str, models: list[str]) -> list[str]:
    problems = []
    for model in models:
        if f'data-model="{model}"' not in html:
            problems.append(f"report: model {model} is not listed")
    champ = parser.charts.get("champion")
    if champ is None:
        problems.append("report: no champion section")
    if 'id="data-source"' not in html:
        problems.append("report: no data-source banner")
    figures = parser.images
    if not figures:
        problems.append("report: no figure")
    problems += [f"report: empty image {src[:60]}" for src in figures
                 if src.startswith("data:") and len(src) < 200]
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--project", type=Path, default=Path("."), help="project after dvc repro")
    ap.add_argument("--out", type=Path, default=Path("tmp/views"), help="pages and screenshots")
    ap.add_argument("--chromium", help="Chromium binary (default: chromium on PATH)")
    args = ap.parse_args(argv)
    binary = find_chromium(args.chromium)
    project, out = args.project.resolve(), args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((project / "params.yaml").read_text())
    models = list(params["train"]["models"])

    problems = check_template(project)
    run(["dvc", "plots", "show", "-o", str(out / "dvc_plots")], project)
    dvc_page = out / "dvc_plots" / "index.html"
    parsed, _ = render(binary, dvc_page, out / "dvc_plots.png", len(models) * 8 + 8)
    problems += check_dvc_page(parsed, dvc_page, models)
    charts = {k: c for k, c in parsed.charts.items() if k != "genreflow-no-vega"}
    for c in charts.values():
        kind = "image" if c.images else f"{c.marks} marks"
        series = f", series {sorted(c.series)}" if c.series else ""
        print(f"dvc plots: {c.id}: {kind}{series}")

    table = run(["genreflow", "report", "--out", str(out / "report")], project)
    print(table)
    report_page = out / "report" / "index.html"
    parsed, html = render(binary, report_page, out / "report.png", len(models) * 2 + 4)
    problems += check_report(parsed, html, models)

    print(f"screenshots: {out / 'dvc_plots.png'}, {out / 'report.png'}")
    for p in problems:
        print(f"FAIL {p}", file=sys.stderr)
    print("views: OK" if not problems else f"views: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
