"""The ``genreflow`` command line: thin wrappers over each stage's pure function."""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="genreflow: GTZAN genre classification with DVC, MLflow and Optuna.")
data_app = typer.Typer(no_args_is_help=True, help="Bring audio into data/ (tracked by data.dvc).")
app.add_typer(data_app, name="data")

from genreflow.core import paths  # noqa: E402
from genreflow.core.errors import GenreflowError, require  # noqa: E402
from genreflow.core.quiet import import_tensorflow  # noqa: E402
from genreflow.core.tfenv import set_tf_environment  # noqa: E402

Params = Annotated[Path, typer.Option("--params", "-p", help="Parameter file.")]
PARAMS_DEFAULT = Path("params.yaml")


@app.callback()
def _quiet_tensorflow() -> None:
    """TensorFlow's environment (quiet start-up, oneDNN kernels) before any stage imports it."""
    set_tf_environment()


def _load_tensorflow() -> None:
    """Import TensorFlow now, with its start-up notices (oneDNN, absl) kept off stderr: for the
    commands that train, embed or score models (a later plain ``import keras`` would print them)."""
    import_tensorflow()


def _log(msg: str) -> None:
    typer.echo(msg, err=True)


DEBUG_ENV = "GENREFLOW_DEBUG"


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Report a user error (:class:`GenreflowError`) as one red line on stderr, exit status 1.

    Any other exception is a bug and keeps its traceback. ``GENREFLOW_DEBUG=1``
    shows the traceback of user errors too.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GenreflowError as exc:
            if os.environ.get(DEBUG_ENV, "").strip() not in ("", "0"):
                raise
            typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.secho("interrupted", err=True, fg=typer.colors.RED)
            raise typer.Exit(130) from None

    return wrapper


def _cfg(params: Path):
    # deferred: keeps `genreflow --help` fast (see docs/benchmarks.md, Import cost)
    from genreflow.core.config import load_config

    cfg = load_config(params)
    cfg.train.export_plugins()  # every process of this command finds the plug-in kinds
    return cfg


# ----------------------------------------------------------------------------- data
def _intake(params: Path, **options: float | None):
    """``intake`` limits: params.yaml's section (when the file exists), then the options given."""
    from dataclasses import replace

    from genreflow.core.config import IntakeConfig, load_config

    base = load_config(params).intake if params.exists() else IntakeConfig()
    return replace(base, **{k: v for k, v in options.items() if v is not None})


@data_app.command("get")
@friendly
def data_get(
    source: Annotated[str, typer.Argument(help="Folder (GTZAN or label folders), archive "
                                               "(.tar.gz/.zip) or http(s) URL of one, or a "
                                               "manifest (.csv/.parquet: path,label[,group]"
                                               "[,split]).")],
    dest: Annotated[Path, typer.Option(help="Where the raw audio goes: absent, empty, or a "
                                            "folder genreflow staged (never anything else).")]
    = Path("data"),
    sha256: Annotated[str | None, typer.Option(help="Expected SHA-256 of a downloaded file.")] = None,
    dvc: Annotated[bool, typer.Option(help="Run `dvc add` on the result.")] = True,
    params: Params = PARAMS_DEFAULT,  # its intake: section; the options below override it
    max_clip_mb: Annotated[float | None, typer.Option(help="MB per clip [intake.max_clip_mb: 200]")]
    = None,
    max_total_gb: Annotated[float | None, typer.Option(help="GB read in all [intake.max_total_gb: 20]")]
    = None,
    max_members: Annotated[int | None, typer.Option(help="Archive entries / clips "
                                                  "[intake.max_members: 50000]")] = None,
    max_ratio: Annotated[float | None, typer.Option(help="Expanded/compressed bytes "
                                                  "[intake.max_ratio: 100]")] = None,
    max_download_gb: Annotated[float | None, typer.Option(help="GB per download "
                                                        "[intake.max_download_gb: 20]")] = None,
    download_minutes: Annotated[float | None, typer.Option(help="Minutes per download "
                                                         "[intake.download_minutes: 360]")] = None,
) -> None:
    """Bring a labelled collection (GTZAN, label folders or a manifest; wav, au, flac, ogg,
    mp3, aiff) into DEST, within bounds."""
    # deferred: keeps `genreflow --help` fast (see docs/benchmarks.md, Import cost)
    from genreflow.data import get_data, track_with_dvc

    limits = _intake(params, max_clip_mb=max_clip_mb, max_total_gb=max_total_gb,
                     max_members=max_members, max_ratio=max_ratio,
                     max_download_gb=max_download_gb, download_minutes=download_minutes)
    info = get_data(source, dest, sha256=sha256, log=_log, limits=limits)
    _log(f"{info['n_clips']} clips in {dest}: {info['genres']}")
    if dvc:
        track_with_dvc(dest, log=_log)


@data_app.command("synth")
@friendly
def data_synth(
    dest: Annotated[Path, typer.Option(help="Where the synthetic audio goes.")] = Path("data"),
    clips_per_genre: int = 30,
    seconds: float = 30.0,
    seed: int = 0,
    dvc: Annotated[bool, typer.Option(help="Run `dvc add` on the result.")] = True,
) -> None:
    """Make a deterministic, GTZAN-shaped synthetic set of 10 classes."""
    # deferred: keeps `genreflow --help` fast (see docs/benchmarks.md, Import cost)
    from genreflow.data import synth, track_with_dvc

    info = synth(dest, clips_per_genre=clips_per_genre, seconds=seconds, seed=seed, log=_log)
    _log(f"{info['n_clips']} synthetic clips in {dest}")
    if dvc:
        track_with_dvc(dest, log=_log)


@data_app.command("auto")
@friendly
def data_auto(
    dest: Annotated[Path, typer.Option(help="Where the raw audio goes.")] = Path("data"),
    gtzan_dir: Annotated[str | None, typer.Option(envvar="GTZAN_DIR",
                                                  help="Real GTZAN (folder, archive or URL).")] = None,
    clips_per_genre: Annotated[int, typer.Option(help="Size of the synthetic fallback.")] = 20,
    dvc: Annotated[bool, typer.Option(help="Run `dvc add` on the result.")] = True,
    params: Params = PARAMS_DEFAULT,
) -> None:
    """Use GTZAN_DIR when set, else the synthetic set (said loudly)."""
    # deferred: keeps `genreflow --help` fast (see docs/benchmarks.md, Import cost)
    from genreflow.data import prepare_default, track_with_dvc

    prepare_default(dest, gtzan_dir=gtzan_dir or None, log=_log, limits=_intake(params),
                    clips_per_genre=clips_per_genre)
    if dvc:
        track_with_dvc(dest, log=_log)


# --------------------------------------------------------------------------- stages
@app.command()
@friendly
def validate(params: Params = PARAMS_DEFAULT,
             out: Annotated[Path, typer.Option(help="Report folder.")] = paths.VALIDATE_REPORTS,
             ) -> None:
    """Stage 1: decode every clip; report and exclude the unusable ones (Fig. 6)."""
    # deferred: keeps `genreflow --help` fast (see docs/benchmarks.md, Import cost)
    from genreflow.stages.validate import format_table, validate_dataset, write_report

    cfg = _cfg(params)
    report = validate_dataset(cfg.data, cfg.validate, workers=cfg.features.workers, log=_log,
                              audio=cfg.audio)
    write_report(report, out)
    typer.echo(format_table(report))
    typer.echo(f"[{report['data_source']}] {report['n_ok']} usable of {report['n_files']} files; "
               f"{len(report['excluded'])} excluded, {len(report['missing'])} missing")


@app.command()
@friendly
def split(params: Params = PARAMS_DEFAULT,
          report: Path = paths.VALIDATE_REPORT,
          manifest: Path = paths.SPLIT_MANIFEST,
          out: Path = paths.SPLIT_REPORTS) -> None:
    """Stage 2: choose genres, balance, split by track (Fig. 7)."""
    # deferred: keeps `genreflow --help` fast (see docs/benchmarks.md, Import cost)
    from genreflow.stages.split import format_table, make_split, write_split

    cfg = _cfg(params)
    rep = json.loads(require(report, "run `dvc repro validate` first").read_text())
    table = make_split(rep, cfg.split, cfg.data, log=_log)
    summary = write_split(table, rep, cfg.split, manifest, out)
    typer.echo(format_table(table))
    typer.echo(f"[{summary['data_source']}] {cfg.split.method} split: {summary['counts']}")


@app.command()
@friendly
def features(params: Params = PARAMS_DEFAULT,
             manifest: Path = paths.SPLIT_MANIFEST,
             out: Path = paths.FEATURES_DIR) -> None:
    """Stage 3: log-mel spectrograms for every split, cached for training."""
    # deferred: keeps `genreflow --help` fast (see docs/benchmarks.md, Import cost)
    import pandas as pd

    from genreflow.audio.decode import read_source
    from genreflow.models.featurestore import write_features
    from genreflow.models.splits import split_digest
    from genreflow.stages.features import compute_features

    cfg = _cfg(params)
    table = pd.read_csv(require(manifest, "run `dvc repro split` first"))
    t0 = time.perf_counter()
    feats, classes, failed = compute_features(table, cfg.features, log=_log)
    elapsed = time.perf_counter() - t0
    meta = write_features(feats, classes, failed, cfg.features,
                          read_source(cfg.data.dir).get("source", "unknown"), out,
                          split_digest=split_digest(table))
    n = sum(meta["counts"].values())
    typer.echo(f"[{meta['data_source']}] {n} clips in {elapsed:.1f} s "
               f"({n / max(elapsed, 1e-9):.1f} clips/s); {len(failed)} failed; {meta['counts']}")


@app.command()
@friendly
def embed(params: Params = PARAMS_DEFAULT,
          manifest: Path = paths.SPLIT_MANIFEST,
          out: Path = paths.EMBEDDINGS_DIR) -> None:
    """Embeddings of every clip by the frozen pretrained bases of the kinds in train.models."""
    _load_tensorflow()
    # deferred: keeps `genreflow --help` fast (see docs/benchmarks.md, Import cost)
    import pandas as pd

    from genreflow.kinds import check_models
    from genreflow.stages.embed import embed_all

    cfg = _cfg(params)
    check_models(cfg.train, cfg)
    table = pd.read_csv(require(manifest, "run `dvc repro split` first"))
    done = embed_all(cfg, table, out, log=_log)
    typer.echo(f"embeddings: {done or 'no kind in train.models needs any'}")


@app.command()
@friendly
def figures(params: Params = PARAMS_DEFAULT,
            report: Path = paths.VALIDATE_REPORT,
            out: Path = paths.FIGURES_DIR) -> None:
    """Stage 4: waveform, spectrogram, log-spectrogram, rolloff and chroma (Figs. 1-5)."""
    # deferred: keeps `genreflow --help` fast (see docs/benchmarks.md, Import cost)
    from genreflow.stages.figures import make_figures

    cfg = _cfg(params)
    rep = json.loads(require(report, "run `dvc repro validate` first").read_text())
    valid = {r["clip_id"] for r in rep["clips"] if r["status"] == "ok"}
    paths = make_figures(Path(cfg.data.dir), out, cfg.features, cfg.figures,
                         valid_ids=valid, log=_log)
    typer.echo(f"{len(paths)} figures in {out}")


@app.command()
@friendly
def train(model: Annotated[str, typer.Argument(help="A model kind, built-in or plug-in "
                                                   "(see train.models).")],
          params: Params = PARAMS_DEFAULT,
          features_dir: Path = paths.FEATURES_DIR,
          max_epochs: Annotated[int | None, typer.Option(help="Override train.max_epochs.")] = None,
          ) -> None:
    """Stage 5: train one model; log params, curves, confusion matrices and model to MLflow."""
    _load_tensorflow()
    # deferred: keeps `genreflow --help` fast (see docs/benchmarks.md, Import cost)
    from genreflow.stages.train import train_model

    cfg = _cfg(params)
    # deferred: keeps `genreflow --help` fast (see docs/benchmarks.md, Import cost)
    from genreflow.kinds import check_models, settings

    check_models(cfg.train, cfg)
    settings(cfg.train, model, project=cfg)  # the name and section, before a run is opened
    res = train_model(cfg, model, features_dir, bundle_dir=paths.MODELS_DIR / model,
                      report_dir=paths.TRAIN_REPORTS / model, max_epochs=max_epochs, log=_log)
    typer.echo(json.dumps({"run_id": res.run_id, **res.metrics}, indent=1))


@app.command()
@friendly
def tune(params: Params = PARAMS_DEFAULT,
         features_dir: Path = paths.FEATURES_DIR,
         model: Annotated[str | None, typer.Option(help="Override tune.model.")] = None,
         n_trials: Annotated[int | None, typer.Option(help="Override tune.n_trials.")] = None,
         timeout: Annotated[float | None, typer.Option(help="Seconds; override tune.timeout.")]
         = None,
         out: Path = paths.TUNE_REPORTS) -> None:
    """Optuna study over optimiser and learning rate; resumes a stored study."""
    _load_tensorflow()
    # deferred: keeps `genreflow --help` fast (see docs/benchmarks.md, Import cost)
    from genreflow.stages.tune import tune as run_study

    cfg = _cfg(params)
    summary = run_study(cfg, features_dir, n_trials=n_trials, timeout=timeout, model=model,
                        out_dir=out, log=_log)
    typer.echo(json.dumps(summary, indent=1, default=str))


@app.command()
@friendly
def register(params: Params = PARAMS_DEFAULT,
             manifest: Path = paths.SPLIT_MANIFEST,
             out: Path = paths.REGISTER_REPORT) -> None:
    """Register the best run (by validation); `champion` moves if its gain is clear of the noise."""
    _load_tensorflow()
    # deferred: keeps `genreflow --help` fast (see docs/benchmarks.md, Import cost)
    from genreflow.stages.register import register_best

    cfg = _cfg(params)
    d = register_best(cfg, manifest, out=out, log=_log)
    typer.echo(f"{cfg.register.model_name} v{d.version} ({d.model_kind}) is now @{d.alias}: "
               f"{d.reason} (test track accuracy {d.test_track_accuracy:.3f})")


@app.command("report")
@friendly
def report_cmd(params: Params = PARAMS_DEFAULT,
               root: Annotated[Path, typer.Option(help="Project folder holding reports/.")]
               = Path("."),
               out: Annotated[Path, typer.Option(help="Folder of index.html and champion.json.")]
               = paths.REPORT_DIR) -> None:
    """Summary page (offline HTML) and table: every model's track accuracy, the champion."""
    # deferred: keeps `genreflow --help` fast (see docs/benchmarks.md, Import cost)
    from genreflow.stages.report.summary import collect
    from genreflow.stages.report.write import terminal_table, write_report

    cfg = _cfg(params)
    summary = collect(root, list(cfg.train.models), cfg.register.model_name, cfg.register.metric)
    page = write_report(summary, out, log=_log)
    typer.echo(terminal_table(summary, page))


@app.command()
@friendly
def serve(model: Annotated[str | None, typer.Argument(
              help="MLflow model URI or local model folder (default: "
                   "models:/<register.model_name>@champion, the name read from --params).",
              show_default=False)] = None,
          host: Annotated[str, typer.Option(help="Address to listen on. Anything but loopback "
                                                 "prints a warning: see README, serving.")]
          = "127.0.0.1",
          port: int = 5001,
          workers: Annotated[int, typer.Option(help="Scoring processes (each loads the model; "
                                                    "about one per CPU core).")] = 1,
          timeout: Annotated[float, typer.Option(
              help="Seconds from a request's head to its answer: reading the body, waiting for "
                   "and running the model (408 while the body arrives, 504 after).")] = 60.0,
          header_timeout: Annotated[float, typer.Option(
              help="Seconds a connection has to send a request head, from connecting or from "
                   "its previous answer; then it is closed (slow or idle clients).")] = 10.0,
          keep_alive: Annotated[int, typer.Option(
              help="Seconds an idle connection stays open between requests.")] = 5,
          max_connections: Annotated[int, typer.Option(
              help="Open connections per worker; requests beyond get 503.")] = 256,
          max_concurrent: Annotated[int, typer.Option(
              help="Requests running the model at once, per worker.")] = 4,
          max_queued: Annotated[int, typer.Option(
              help="Requests waiting for the model, per worker; more get 503.")] = 16,
          api_key_file: Annotated[Path | None, typer.Option(
              help="File holding a shared secret (16+ printable characters) that requests "
                   "must send as X-API-Key (else 401; /ping and /health stay open). Without "
                   "it, $GENREFLOW_API_KEY is the key when set.")] = None,
          params: Params = PARAMS_DEFAULT) -> None:
    """Serve a registered model over HTTP: MLflow's scoring server, guarded.

    Same API as `mlflow models serve` (POST /invocations; /ping and /health; every other
    path is 404), plus: bodies over audio.max_request_mb get 413 (counted whatever the
    framing), every request has one deadline, slow and idle connections are closed, a
    missing Content-Type (or curl -d's form type) means JSON, and errors carry genreflow's
    one-line message and a `reason` class. No TLS: expose it only through a reverse proxy."""
    # deferred: keeps `genreflow --help` fast (see docs/benchmarks.md, Import cost)
    from genreflow.serving.http import serve as run_server
    from genreflow.serving.limits import Limits

    cfg = _project_cfg(params)
    limits = Limits(timeout=timeout, header_timeout=header_timeout, keep_alive=keep_alive,
                    max_connections=max_connections, max_concurrent=max_concurrent,
                    max_queued=max_queued)
    run_server(model or _champion_uri(cfg), host=host, port=port, workers=workers, limits=limits,
               api_key_file=api_key_file, log=_log)


@app.command()
@friendly
def predict(files: Annotated[list[Path], typer.Argument(help="Audio files: wav, flac, ogg, mp3, au, aiff.")],
            model: Annotated[str | None, typer.Option(
                "--model", help="MLflow model URI or bundle dir (default: "
                                "models:/<register.model_name>@champion, the name read from "
                                "--params).",
                show_default=False)] = None,
            top: Annotated[int, typer.Option(help="How many genres to show.")] = 3,
            as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
            params: Params = PARAMS_DEFAULT) -> None:
    """Predict the genre of local audio files (Fig. 12).

    Exits 1 when any file was refused (the others are still answered)."""
    # deferred: keeps `genreflow --help` fast (see docs/benchmarks.md, Import cost)
    from genreflow.serving.predict import format_table, predict_files

    cfg = _project_cfg(params)
    results = predict_files(files, model_uri=model or _champion_uri(cfg), top=top,
                            audio=cfg.audio if cfg is not None else None)
    typer.echo(json.dumps(results, indent=1) if as_json else format_table(results))
    failed = sum("error" in r for r in results)
    if failed:
        _log(f"{failed} of {len(results)} file(s) refused")
        raise typer.Exit(1)


def _project_cfg(params: Path):
    """params.yaml when there is one (its tracking store becomes MLflow's unless
    MLFLOW_TRACKING_URI is set), else ``None``: predict and serve work outside a project."""
    if not params.exists():
        return None
    cfg = _cfg(params)
    os.environ.setdefault("MLFLOW_TRACKING_URI", cfg.tracking.resolved_uri())
    return cfg


def _champion_uri(cfg) -> str:
    """``models:/<register.model_name>@champion``, the built-in name without a params file."""
    from genreflow.core.config import RegisterConfig

    return (cfg.register if cfg is not None else RegisterConfig()).champion_uri


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
