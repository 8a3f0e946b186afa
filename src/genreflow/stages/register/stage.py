"""The ``register`` stage: :func:`register_best`, the steps of the package in order."""

from __future__ import annotations

import tempfile
from pathlib import Path

from mlflow import MlflowClient

from genreflow.core.config import Config
from genreflow.core.paths import SPLIT_MANIFEST
from genreflow.stages.register.champion import current_champion, score_champion
from genreflow.stages.register.decide import Log, decide_alias, small_split_warning
from genreflow.stages.register.interval import Resampling
from genreflow.stages.register.publish import (
    Decision,
    log_candidate,
    publish,
    registered_version,
    version_tags,
    write_register_json,
)
from genreflow.stages.register.score import read_split, score_candidate
from genreflow.stages.register.select import ranked_runs, select
from genreflow.tracking.store import setup_mlflow


def register_best(cfg: Config, manifest: Path = SPLIT_MANIFEST, out: Path | None = None,
                  log: Log = print) -> Decision:
    """Register the best run's model as a raw-audio pyfunc and apply the alias rule."""
    rcfg, audio = cfg.register, cfg.audio
    res = Resampling(rcfg.bootstrap, rcfg.confidence, rcfg.seed)
    setup_mlflow(cfg.tracking, cfg.train.experiment)
    rows = read_split(manifest, cfg.data.dir)
    runs = ranked_runs(rcfg.metric, rows.ident["data_digest"], rows.ident["split_digest"],
                       [cfg.train.experiment])
    client, name = MlflowClient(), rcfg.model_name
    with tempfile.TemporaryDirectory(prefix="genreflow-register-") as tmp:
        cand = select(runs, rcfg.max_latency_ms, Path(tmp), log)
        log(f"best run {cand.run_id} ({cand.kind}, {cand.run.info.run_name}): {rcfg.metric} = "
            f"{cand.run.data.metrics[rcfg.metric]:.4f} (as trained); "
            f"{cand.latency_ms:.0f} ms for a 30 s clip here")
        val, test = score_candidate(cand, rows, audio, log, res)
        existing = registered_version(client, name, cand.run_id, rows.ident)
        champion = score_champion(current_champion(client, name), existing, val, rows, rcfg,
                                  audio, log, res)
        model_uri = None
        if existing is not None:
            log(f"run {cand.run_id} is already version {existing.version}: no new version")
        else:
            model_uri = log_candidate(cand, audio, val, test)
    keys = rows.val_keys
    verdict = decide_alias(client, name, rcfg.metric, val, champion, cand.run_id, rows.ident,
                           log, keys=keys, res=res)
    version = publish(client, name, verdict, val, existing=existing, model_uri=model_uri,
                      tags=version_tags(cand, rows.ident, rcfg.metric, val, test, keys))
    warning = small_split_warning(val, verdict.gain)
    decision = Decision(version=version, alias=verdict.alias, reason=verdict.reason,
                        run_id=cand.run_id, model_kind=cand.kind, candidate_val=val,
                        champion_val=verdict.champion.score, test_track_accuracy=test.accuracy,
                        previous_champion=verdict.champion.number,
                        latency_ms=round(cand.latency_ms, 1), basis=verdict.basis,
                        gain=verdict.gain, confidence=rcfg.confidence, warning=warning,
                        test_track_accuracy_lo=test.lo, test_track_accuracy_hi=test.hi)
    log(f"{name} version {version} -> @{verdict.alias} ({verdict.basis}): {verdict.reason}")
    if warning:
        log(f"warning: {warning}")
    if out is not None:
        write_register_json(out, decision, verdict, name, cand.run.data.tags.get("data_source"))
    return decision
