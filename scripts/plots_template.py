"""Build the offline HTML template of `dvc plots show` (run by `make plots-deps`).

DVC's default page loads vega, vega-lite and vega-embed from a CDN, so without network it
draws no chart. This script fetches the three libraries from the npm registry with
`npm pack` (the versions DVC's renderer, dvc-render, asks the CDN for), checks them, and
inlines them into the committed skeleton ``scripts/dvc_plots_template.html``. The result,
``.venv/share/genreflow/dvc_plots.html``, is what ``.dvc/config`` names as
``plots.html_template``; every ``dvc_plots/index.html`` built from it opens offline.
The libraries are never committed (vega, vega-lite, vega-embed: BSD-3-Clause, (c) the
University of Washington Interactive Data Lab; their LICENSE files are kept beside the
template).

Without npm (or without registry access) it writes the template with DVC's CDN tags instead
and says so: charts then need network, and the page shows a banner when they cannot load.

    python scripts/plots_template.py [--dest .venv/share/genreflow] [--cdn]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKELETON = ROOT / "scripts" / "dvc_plots_template.html"
MARKER = "<!-- GENREFLOW_VEGA -->"
VERSIONS_MARKER = "GENREFLOW_VEGA_VERSIONS"
# name -> (version, file in the npm package, global it defines). The versions of dvc-render 1.0's
# VegaRenderer.SCRIPTS, so the page draws exactly what DVC's own online page would.
LIBRARIES = {
    "vega": ("5.20.2", "package/build/vega.min.js", "vega"),
    "vega-lite": ("5.2.0", "package/build/vega-lite.min.js", "vegaLite"),
    "vega-embed": ("6.18.2", "package/build/vega-embed.min.js", "vegaEmbed"),
}
CDN = "https://cdn.jsdelivr.net/npm"
DVC_PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")


class TemplateError(RuntimeError):
    """The template could not be built as asked."""


def npm_pack(dest: Path) -> dict[str, Path]:
    """`npm pack` each library into ``dest`` (npm checks the registry's integrity hash)."""
    npm = shutil.which("npm")
    if npm is None:
        raise TemplateError("npm not found: install Node.js/npm (Debian: apt-get install npm)")
    dest.mkdir(parents=True, exist_ok=True)
    specs = [f"{name}@{version}" for name, (version, _, _) in LIBRARIES.items()]
    proc = subprocess.run([npm, "pack", *specs, "--json", "--pack-destination", str(dest)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise TemplateError(f"npm pack {' '.join(specs)} failed:\n{proc.stderr.strip()[-1500:]}")
    packed = {entry["name"]: dest / entry["filename"] for entry in json.loads(proc.stdout)}
    missing = set(LIBRARIES) - set(packed)
    if missing:
        raise TemplateError(f"npm pack did not return {sorted(missing)}")
    return packed


def extract(tarball: Path, member: str) -> str:
    with tarfile.open(tarball) as tar:
        try:
            return tar.extractfile(member).read().decode("utf-8")
        except KeyError:
            raise TemplateError(f"{tarball.name}: no {member} in the package") from None


def inline_scripts(packed: dict[str, Path], dest: Path) -> str:
    """The three ``<script>`` elements with the libraries inlined; licences copied to dest."""
    parts = []
    for name, (version, member, global_name) in LIBRARIES.items():
        code = extract(packed[name], member)
        if global_name not in code[:2000]:
            raise TemplateError(f"{name}@{version}: {member} does not define {global_name}")
        for placeholder in DVC_PLACEHOLDERS:
            if placeholder in code:  # DVC would substitute it inside the library
                raise TemplateError(f"{name}@{version} contains the DVC placeholder {placeholder}")
        code = code.replace("</script", "<\\/script")  # cannot end the inline element early
        (dest / f"LICENSE.{name}").write_text(extract(packed[name], "package/LICENSE"))
        parts.append(f"<script>/* {name}@{version}, BSD-3-Clause */\n{code}\n</script>")
    return "\n".join(parts)


def cdn_scripts() -> str:
    return "\n".join(f'<script src="{CDN}/{name}@{version}"></script>'
                     for name, (version, _, _) in LIBRARIES.items())


def build(dest: Path, use_cdn: bool = False, log=print) -> Path:
    """Write ``dest/dvc_plots.html``; offline (inlined libraries) unless ``use_cdn``."""
    skeleton = SKELETON.read_text(encoding="utf-8")
    if MARKER not in skeleton or "{plot_divs}" not in skeleton:
        raise TemplateError(f"{SKELETON}: expected the markers {MARKER} and {{plot_divs}}")
    dest.mkdir(parents=True, exist_ok=True)
    versions = ", ".join(f"{n} {v}" for n, (v, _, _) in LIBRARIES.items())
    if use_cdn:
        scripts, how = cdn_scripts(), f"{versions} from {CDN} (needs network)"
    else:
        with tempfile.TemporaryDirectory(prefix="genreflow-npm-") as tmp:
            scripts = inline_scripts(npm_pack(Path(tmp)), dest)
        how = f"{versions}, inlined"
    page = skeleton.replace(MARKER, scripts).replace(VERSIONS_MARKER, how)
    out = dest / "dvc_plots.html"
    out.write_text(page, encoding="utf-8")
    log(f"{out}: DVC plots template with {how} ({out.stat().st_size / 1e6:.1f} MB)")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dest", type=Path, default=ROOT / ".venv" / "share" / "genreflow",
                    help="folder of the generated template (default: .venv/share/genreflow)")
    ap.add_argument("--cdn", action="store_true",
                    help="reference the CDN instead of inlining (pages then need network)")
    args = ap.parse_args(argv)
    try:
        build(args.dest, use_cdn=args.cdn)
    except (TemplateError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"warning: {exc}", file=sys.stderr)
        print("warning: falling back to the CDN: `dvc plots show` charts will need network; "
              "run `make plots-deps` again once npm works", file=sys.stderr)
        build(args.dest, use_cdn=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
