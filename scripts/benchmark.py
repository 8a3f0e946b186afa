"""Benchmark (not a test): the paper's protocol on real GTZAN clips, several seeds.

    python scripts/benchmark.py --gtzan ../shared/gtzan --data-source gtzan \
        --genres blues,classical,jazz,rock --seeds 0,1,2 --models cnn,inception,segcnn \
        --out benchmarks/results/four-genres

For each seed: validate, a stratified balanced 80/9/10 split, features, then
every model trained on the same split. Tracking goes to a store inside
``--out`` (never the project's). Writes ``report.json`` and ``report.md``.
The data source recorded with every artefact comes from the data folder's
``SOURCE.json`` (written by ``genreflow data get|synth``); a folder without one
needs ``--data-source``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path

from genreflow.core.tfenv import set_tf_environment

set_tf_environment()


def main() -> None:
    from genreflow.audio.decode import read_source
    from genreflow.core.config import load_config
    from genreflow.kinds import get_kind
    from genreflow.models.featurestore import write_features
    from genreflow.models.splits import split_digest
    from genreflow.stages.features import compute_features
    from genreflow.stages.split import make_split, write_split
    from genreflow.stages.train import train_model
    from genreflow.stages.validate import validate_dataset

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--gtzan", default=os.environ.get("GTZAN_DIR", "../shared/gtzan"),
                    help="the audio folder (<genre>/<genre>.NNNNN.<ext>)")
    ap.add_argument("--data-source", choices=["gtzan", "synthetic"],
                    help="what --gtzan holds; default: the 'source' of its SOURCE.json")
    ap.add_argument("--genres", default="blues,classical,jazz,rock",
                    help="comma-separated, or 'all'")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--split", default="stratified", choices=["stratified", "fault_filtered"],
                    help="stratified: the paper's random 80/9/10 split by track, one per seed; "
                         "fault_filtered: the artist-filtered split (Kereliuk, Sturm & Larsen "
                         "2015) on the genres present, the same for every seed")
    ap.add_argument("--models", default="cnn,inception,segcnn")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--max-epochs", type=int, default=None)
    ap.add_argument("--robustness", action="store_true",
                    help="also score every model on re-encoded, resampled, quieter and cut "
                         "copies of its test clips (scripts/robustness.py)")
    ap.add_argument("--out", default="benchmarks/results/four-genres")
    ap.add_argument("--rebuild", metavar="DIR",
                    help="only rewrite DIR/report.md from DIR/report.json, then stop")
    args = ap.parse_args()
    if args.rebuild:
        rebuild(Path(args.rebuild))
        return

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(args.params)
    genres = "all" if args.genres == "all" else args.genres.split(",")
    cfg.data = replace(cfg.data, dir=str(Path(args.gtzan).resolve()))
    args.data_source = _data_source(args.data_source, read_source(cfg.data.dir), args.gtzan, ap)
    cfg.tracking = replace(cfg.tracking, uri=f"sqlite:///{out / 'mlflow.db'}",
                           artifact_root=str(out / "mlruns"))
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    cfg.train = replace(cfg.train, experiment="benchmark")

    t0 = time.perf_counter()
    report = validate_dataset(cfg.data, cfg.validate, workers=cfg.features.workers, audio=cfg.audio)
    print(f"validate: {report['n_ok']} usable clips in {time.perf_counter() - t0:.1f} s")
    results: dict[str, list[dict]] = {m: [] for m in args.models.split(",")}
    feature_times, embed_times = [], {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        cfg.split = replace(cfg.split, genres=genres, seed=seed, method=args.split)
        cfg.train = replace(cfg.train, seed=seed)
        manifest = make_split(report, cfg.split, cfg.data)
        sdir = out / f"seed{seed}"
        write_split(manifest, report, cfg.split, sdir / "split.csv", sdir)
        t0 = time.perf_counter()
        feats, classes, failed = compute_features(manifest, cfg.features)
        feature_times.append((len(manifest), time.perf_counter() - t0))
        write_features(feats, classes, failed, cfg.features, args.data_source,
                       sdir / "features", split_digest=split_digest(manifest))
        for model in results:  # frozen pretrained bases: embeddings (cached per clip)
            t0 = time.perf_counter()
            if get_kind(model).embed(cfg, manifest, sdir / "embeddings" / model,
                                     args.data_source) is not None:
                embed_times.setdefault(model, []).append(round(time.perf_counter() - t0, 1))
        for model in results:
            res = train_model(cfg, model, sdir / "features", bundle_dir=sdir / "models" / model,
                              report_dir=sdir / "reports" / model, max_epochs=args.max_epochs,
                              run_name=f"{model}-seed{seed}")
            results[model].append({"seed": seed, **res.metrics, "run_id": res.run_id})
            if args.robustness:
                import robustness

                for split, key in (("test", "robustness"), ("val", "robustness_val")):
                    part = manifest[manifest["split"] == split]  # val: for choosing settings
                    results[model][-1][key] = robustness.evaluate(
                        sdir / "models" / model, list(part["path"]), list(part["genre"]),
                        cfg.audio)
            print(json.dumps(results[model][-1]))
            partial = _summary(args, results, feature_times, classes, embed_times)
            (out / "report.json").write_text(json.dumps(partial, indent=1))
    summary = _summary(args, results, feature_times, classes, embed_times)
    (out / "report.json").write_text(json.dumps(summary, indent=1))
    (out / "report.md").write_text(_markdown(summary))
    print(_markdown(summary))


def _data_source(flag: str | None, recorded: dict, folder: str, ap) -> str:
    """The data source: SOURCE.json's, or ``--data-source`` (which must not contradict it)."""
    known = recorded.get("source") if recorded.get("source") != "unknown" else None
    if flag and known and flag != known:
        ap.error(f"--data-source {flag}, but {folder}/SOURCE.json says {known!r}")
    if not (flag or known):
        ap.error(f"{folder}: no SOURCE.json says what this audio is; pass --data-source gtzan "
                 "(or synthetic)")
    return flag or known


def _summary(args, results, feature_times, classes, embed_times=None) -> dict:
    def stats(vals: list[float]) -> dict:
        return {"mean": statistics.mean(vals), "std": statistics.pstdev(vals),
                "min": min(vals), "max": max(vals)} if vals else {}

    n, secs = sum(f[0] for f in feature_times), sum(f[1] for f in feature_times)
    return {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "command": vars(args),
        "data_source": args.data_source,
        "classes": classes,
        "features_clips_per_second": n / secs if secs else None,
        "split": args.split,
        "embedding_seconds": embed_times or {},
        "models": {m: {"test_track_accuracy": stats([r["test_track_accuracy"] for r in rs]),
                       "val_track_accuracy": stats([r["val_track_accuracy"] for r in rs]),
                       # runs of before per-class metrics have none: left out, not zero
                       "test_macro_f1": stats([r["test_macro_f1"] for r in rs
                                               if "test_macro_f1" in r]),
                       "train_seconds": stats([r["train_seconds"] for r in rs]),
                       "epochs": [r["epochs"] for r in rs], "runs": rs}
                   for m, rs in results.items()},
    }


def _markdown(s: dict) -> str:
    """The report: per-model summary, per-seed runs, and the targets of the training issue."""
    models = {m: r for m, r in s["models"].items() if r["test_track_accuracy"]}
    lines = [f"# Benchmark: {', '.join(s['classes'])} [{s.get('data_source', 'unknown')}], "
             f"{s.get('split', 'stratified')} split", "",
             f"{s['machine']['cpus']} CPUs, {s['machine']['platform']}; "
             f"features: {s['features_clips_per_second']:.1f} clips/s", "",
             "| model | test track accuracy (mean ± sd) | min-max | test macro-F1 (mean ± sd) "
             "| val track accuracy (mean) | train time (s, mean / max) | epochs |",
             "|---|---|---|---|---|---|---|"]
    for m, r in models.items():
        a, v, t = r["test_track_accuracy"], r["val_track_accuracy"], r["train_seconds"]
        f1 = r.get("test_macro_f1") or {}
        f1_text = f"{f1['mean']:.3f} ± {f1['std']:.3f}" if f1 else "-"
        lines.append(f"| {m} | {a['mean']:.3f} ± {a['std']:.3f} | {a['min']:.3f}-{a['max']:.3f} "
                     f"| {f1_text} | {v['mean']:.3f} | {t['mean']:.0f} / {t['max']:.0f} "
                     f"| {r['epochs']} |")
    lines += ["", "| seed | model | test | test 95 % interval (tracks) | test macro-F1 | val "
              "| epochs (best) | train s |", "|---|---|---|---|---|---|---|---|"]
    for m, r in models.items():
        for run in r["runs"]:
            lo, hi = run.get("test_track_accuracy_lo"), run.get("test_track_accuracy_hi")
            span = f"{lo:.3f}-{hi:.3f}" if lo is not None and hi is not None else "-"
            f1 = f"{run['test_macro_f1']:.3f}" if "test_macro_f1" in run else "-"
            lines.append(f"| {run['seed']} | {m} | {run['test_track_accuracy']:.3f} | {span} "
                         f"| {f1} | {run['val_track_accuracy']:.3f} | {run['epochs']} "
                         f"({run.get('best_epoch', '?')}) | {run['train_seconds']:.0f} |")
    base = models.get("cnn")
    if base:
        lines += ["", "Test error relative to the paper's cnn on the same splits:"]
        cnn_err = {run["seed"]: 1 - run["test_track_accuracy"] for run in base["runs"]}
        for m, r in models.items():
            if m == "cnn":
                continue
            pairs = [(1 - run["test_track_accuracy"], cnn_err[run["seed"]])
                     for run in r["runs"] if run["seed"] in cnn_err]
            if pairs and sum(c for _, c in pairs) > 0:
                ratio = sum(e for e, _ in pairs) / sum(c for _, c in pairs)
                lines.append(f"- {m}: mean error {statistics.mean(e for e, _ in pairs):.3f} vs "
                             f"{statistics.mean(c for _, c in pairs):.3f} -> {ratio:.2f}x "
                             f"over {len(pairs)} seed(s)")
    if any("robustness" in run for r in models.values() for run in r["runs"]):
        import robustness

        runs = {m: r["runs"] for m, r in models.items()}
        lines += robustness.markdown(runs)
        lines += robustness.markdown(runs, "robustness_val", "validation clips, for choosing")
    return "\n".join(lines) + "\n"


def rebuild(out: Path) -> None:
    """Rewrite ``report.md`` from an existing ``report.json``."""
    text = _markdown(json.loads((out / "report.json").read_text()))
    (out / "report.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
