"""Last stage, register: the best run by validation becomes a registry version.

The alias ``champion`` moves to the new version only when it wins on equal terms:
both the candidate and the current champion are evaluated on *this* validation
split, from raw audio, through the same path ``mlflow models serve`` uses. A
champion trained on other data, another split or other classes cannot be compared
there, so it never blocks a candidate trained on the current data. The test split
is evaluated for the record, never used to decide.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from genreflow.audio.refusal import AudioError
from genreflow.core.config import Config
from genreflow.core.errors import GenreflowError
from genreflow.core.paths import SPLIT_MANIFEST
from genreflow.models.bundle import BUNDLE_META, BUNDLE_MODEL
from genreflow.models.splits import split_digest
from genreflow.serving.loader import load_predictor
from genreflow.serving.predictor import GenrePredictor
from genreflow.tracking.store import data_digest, setup_mlflow

COMPARED_TAGS = ("data_digest", "split_digest", "classes")


@dataclass
class Score:
    """Track-level accuracy and loss of one model on one split, from raw audio."""

    accuracy: float
    loss: float
    n_tracks: int


@dataclass
class Decision:
    """The outcome of a registration."""

    version: str
    alias: str
    reason: str
    run_id: str
    model_kind: str
    candidate_val: Score
    champion_val: Score | None
    test_track_accuracy: float
    previous_champion: str | None
    latency_ms: float | None = None  # the model's time for a 30 s clip on this machine


def decide(candidate: Score, champion: Score | None, mismatch: str | None = None
           ) -> tuple[str, str]:
    """Champion/challenger rule on a shared validation split: higher accuracy wins, equal
    accuracy goes to the lower loss; a champion that cannot be compared never blocks."""
    if mismatch is not None:
        return "champion", mismatch
    if champion is None:
        return "champion", "there was no champion yet"
    ours = f"{candidate.accuracy:.4f} (loss {candidate.loss:.4f})"
    theirs = f"{champion.accuracy:.4f} (loss {champion.loss:.4f})"
    where = f"on the same {candidate.n_tracks} validation tracks, from raw audio"
    if candidate.accuracy > champion.accuracy + 1e-9 or (
            abs(candidate.accuracy - champion.accuracy) <= 1e-9 and candidate.loss < champion.loss):
        return "champion", f"validation {ours} beats the champion's {theirs} {where}"
    return "challenger", f"validation {ours} does not beat the champion's {theirs} {where}"


def best_run(cfg: Config, data_digest: str, split: str, experiments: list[str]):
    """The finished, non-pruned run with the highest validation metric on this data and split.

    Ties go to the lower ``val_track_loss``, then to the newer run.
    """
    return ranked_runs(cfg, data_digest, split, experiments)[0]


def ranked_runs(cfg: Config, data_digest: str, split: str, experiments: list[str]) -> list:
    """Every finished, non-pruned run on this data and split, best first (see :func:`best_run`)."""
    # deferred: MLflow import (see docs/benchmarks.md, Import cost)
    import mlflow

    exps = [e for e in (mlflow.get_experiment_by_name(n) for n in experiments) if e is not None]
    if not exps:
        raise GenreflowError(f"no MLflow experiment among {experiments}: train a model first "
                             "(`dvc repro` or `genreflow train segcnn`)")
    metric = cfg.register.metric
    runs = mlflow.search_runs(
        experiment_ids=[e.experiment_id for e in exps],
        filter_string=(f"attributes.status = 'FINISHED' and tags.data_digest = '{data_digest}' "
                       f"and tags.split_digest = '{split}' and metrics.{metric} >= 0"),
        order_by=[f"metrics.{metric} DESC", "metrics.val_track_loss ASC",
                  "attributes.start_time DESC"],
        output_format="list",
    )
    runs = [r for r in runs if r.data.tags.get("trial_state") != "pruned"]
    if not runs:
        raise GenreflowError(
            f"no finished run with metric '{metric}' on the current data and split (data digest "
            f"{data_digest}, split digest {split}); "
            "train a model first (`dvc repro` or `genreflow train segcnn`)")
    return runs


def score_on_audio(predictor: GenrePredictor, rows: pd.DataFrame, audio,
                   log: Callable[[str], None] = print) -> Score:
    """Decode every clip of ``rows`` (path, genre) under the input contract ``audio``, as the
    served model does, and score the predictor's answers by genre name (a model of other
    classes can still be scored: a genre it does not know counts as wrong, at loss -log 1e-7)."""
    index = {c: i for i, c in enumerate(predictor.classes)}
    hits, losses = [], []
    for path, genre in tqdm(list(zip(rows["path"], rows["genre"], strict=True)),
                            desc="scoring", unit="clip", leave=False):
        try:
            probs = predictor.probs_from_source(path, audio, where=str(path))
        except (AudioError, GenreflowError) as exc:
            log(f"skipped {path}: {exc}")
            continue
        hits.append(predictor.classes[int(np.argmax(probs))] == genre)
        p_true = float(probs[index[genre]]) if genre in index else 0.0
        losses.append(-np.log(max(p_true, 1e-7)))
    return Score(accuracy=float(np.mean(hits)) if hits else 0.0,
                 loss=float(np.mean(losses)) if losses else 0.0, n_tracks=len(hits))


def _version_identity(tags: dict) -> dict:
    """What decides comparability, plus the data source the reasons name."""
    return {k: tags.get(k) for k in (*COMPARED_TAGS, "data_source")}


def _mismatch(champion: dict, candidate: dict) -> str | None:
    """Why the champion is not compared with the candidate on its split, if it is not."""
    differs = []
    if champion["data_digest"] != candidate["data_digest"]:
        source = champion.get("data_source")
        differs.append(f"other data ({source + ' data, ' if source else ''}digest "
                       f"{champion['data_digest']}; now {candidate['data_digest']})")
    if champion["classes"] != candidate["classes"]:
        differs.append(f"other classes ({champion['classes']}; now {candidate['classes']})")
    if differs:
        return (f"the champion was trained on {' and '.join(differs)}, so it never blocks a "
                "model of the current data (its score on the same clips is for the record)")
    if champion["split_digest"] != candidate["split_digest"]:
        return ("the champion was trained on another split of this data (its training clips "
                "may be in this validation split), so it is not compared here")
    return None


def _load_bundle(run, bundle: Path) -> GenrePredictor:
    """The run's model and front-end as a bundle folder, loaded through the run's kind (its
    own layers registered by :meth:`~genreflow.kinds.base.ModelKind.load_servable`): the
    same path a served or predicted bundle takes, never a loader that bypasses the kind."""
    # deferred: MLflow import (see docs/benchmarks.md, Import cost)
    import mlflow

    uri = run.data.tags.get("keras_model_uri")
    if not uri:
        raise GenreflowError(f"run {run.info.run_id} has no 'keras_model_uri' tag (trained by an "
                             "older genreflow); retrain it (`dvc repro` or `genreflow train KIND`)")
    bundle.mkdir(parents=True)
    logged = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri,
                                                      dst_path=str(bundle.parent / "dl-model")))
    _keras_file(logged, uri).replace(bundle / BUNDLE_MODEL)
    meta = mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                               artifact_path=f"bundle/{BUNDLE_META}",
                                               dst_path=str(bundle.parent / "dl"))
    Path(meta).replace(bundle / BUNDLE_META)
    return GenrePredictor.from_bundle(bundle)


def _keras_file(logged: Path, uri: str) -> Path:
    """The ``.keras`` file inside a model logged in MLflow's Keras flavour (its ``data``
    folder, as the flavour's MLmodel entry names it)."""
    # deferred: MLflow import (see docs/benchmarks.md, Import cost)
    from mlflow.models import Model

    flavor = Model.load(logged).flavors.get("keras", {})
    found = sorted((logged / flavor.get("data", "data")).glob("*.keras"))
    if not found:
        raise GenreflowError(f"{uri}: no .keras file in the logged model (not logged by "
                             "genreflow's training?); retrain it (`genreflow train KIND`)")
    return found[0]


def _within_budget(cfg: Config, runs: list, tmp: Path, log: Callable[[str], None]):
    """``(run, bundle folder, predictor, latency_ms)`` of the best run whose model answers a 30 s clip within
    ``register.max_latency_ms`` on this machine (the best run when there is no budget)."""
    budget = cfg.register.max_latency_ms
    timed = []
    for i, run in enumerate(runs):
        bundle = tmp / f"bundle{i}"
        predictor = _load_bundle(run, bundle)
        latency = predictor.latency_ms()
        if budget is None or latency <= budget:
            return run, bundle, predictor, latency
        kind = run.data.tags.get("model") or run.data.params.get("model.name")
        timed.append((latency, kind))
        log(f"passed over run {run.info.run_id} ({kind}): {latency:.0f} ms for a 30 s clip, "
            f"over register.max_latency_ms = {budget:g}")
    fastest, kind = min(timed)
    raise GenreflowError(f"register.max_latency_ms = {budget:g}: no run on this data and split "
                         f"answers a 30 s clip within it here (fastest: {kind}, {fastest:.0f} ms); "
                         "raise the budget, set it to null, or train a faster kind")


def _champion_moved(client, name: str, previous: str | None):
    """The champion's version when it is no longer ``previous`` (what this run compared
    against), else ``None``."""
    # deferred: MLflow import (see docs/benchmarks.md, Import cost)
    import mlflow

    try:
        now = client.get_model_version_by_alias(name, "champion")
    except mlflow.exceptions.MlflowException:
        return None
    return None if str(now.version) == previous else now


def _decide_again(champ, ident: dict, cand_val: Score, metric: str
                  ) -> tuple[Score | None, str, str]:
    """The alias rule against a champion registered by a concurrent ``register``, from the
    raw-audio validation scores its version records (the same clips when its data, split and
    classes are these): ``(its score, alias, reason)``."""
    mismatch = _mismatch(_version_identity(champ.tags), ident)
    acc, loss = _float(champ.tags.get(metric)), _float(champ.tags.get("val_track_loss"))
    score = None if acc is None else Score(acc, loss or 0.0, cand_val.n_tracks)
    if mismatch is None and score is None:
        mismatch = f"version {champ.version} records no {metric}, so it does not block"
    return (score, *decide(cand_val, score, mismatch))


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _registered_version(client, name: str, run_id: str, ident: dict):
    """The registry version already made from ``run_id`` on this data and split, if any."""
    # deferred: MLflow import (see docs/benchmarks.md, Import cost)
    import mlflow

    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except mlflow.exceptions.MlflowException:
        return None
    same = [v for v in versions if v.tags.get("run_id") == run_id
            and all(v.tags.get(k) == ident[k] for k in COMPARED_TAGS)]
    return max(same, key=lambda v: int(v.version), default=None)


def _link_metrics(run, keras_uri: str, model_id: str) -> None:
    """The registered model's page shows what the trained model's page shows: MLflow links
    the run's values at the restored epoch when the model is logged at that step; the final
    numbers are added here with the dataset (once each: no other step-0 values are linked)."""
    # deferred: MLflow import (see docs/benchmarks.md, Import cost)
    import mlflow

    trained = mlflow.get_logged_model(keras_uri.rsplit("/", 1)[-1])
    dataset = run.inputs.dataset_inputs[0].dataset if run.inputs.dataset_inputs else None
    mlflow.log_metrics({m.key: m.value for m in trained.metrics if m.step == 0}, step=0,
                       model_id=model_id, dataset=dataset)


def register_best(
    cfg: Config,
    manifest: Path = SPLIT_MANIFEST,
    out: Path | None = None,
    log: Callable[[str], None] = print,
) -> Decision:
    """Register the best run's model as a raw-audio pyfunc and apply the alias rule."""
    # deferred: MLflow import (see docs/benchmarks.md, Import cost)
    import mlflow
    from mlflow import MlflowClient

    from genreflow.serving.pyfunc import log_audio_model

    setup_mlflow(cfg.tracking, cfg.train.experiment)
    if not Path(manifest).is_file():
        raise GenreflowError(f"{manifest}: no split manifest; run `dvc repro split` first")
    table = pd.read_csv(manifest)

    digest = data_digest(cfg.data.dir)
    runs = ranked_runs(cfg, digest, split_digest(table), [cfg.train.experiment])
    classes = sorted(table["genre"].unique())
    metric = cfg.register.metric
    client = MlflowClient()
    name = cfg.register.model_name
    ident = {"data_digest": digest, "split_digest": split_digest(table),
             "classes": ",".join(classes)}
    budget = cfg.register.max_latency_ms

    with tempfile.TemporaryDirectory(prefix="genreflow-register-") as tmp:
        run, bundle, candidate, latency = _within_budget(cfg, runs, Path(tmp), log)
        run_id, tags = run.info.run_id, run.data.tags
        kind = tags.get("model") or run.data.params.get("model.name")
        uri = tags["keras_model_uri"]
        log(f"best run {run_id} ({kind}, {run.info.run_name}): {metric} = "
            f"{run.data.metrics[metric]:.4f} (as trained); {latency:.0f} ms for a 30 s clip here")
        val_rows, test_rows = table[table["split"] == "val"], table[table["split"] == "test"]
        cand_val = score_on_audio(candidate, val_rows, cfg.audio, log)
        log(f"candidate on validation from raw audio: {cand_val.accuracy:.4f} "
            f"({cand_val.n_tracks} tracks)")
        test_score = score_on_audio(candidate, test_rows, cfg.audio, log)
        log(f"test track accuracy of the candidate (for the record): {test_score.accuracy:.4f} "
            f"({test_score.n_tracks} tracks)")

        champ_score, previous, mismatch = None, None, None
        try:
            champ = client.get_model_version_by_alias(name, "champion")
        except mlflow.exceptions.MlflowException:
            champ = None
        existing = _registered_version(client, name, run_id, ident)
        already = existing is not None and champ is not None and \
            str(existing.version) == str(champ.version)
        if already:  # the same model on the same clips: nothing to compare, nothing to add
            previous, champ_score = str(champ.version), cand_val
        elif champ is not None:
            previous = str(champ.version)
            mismatch = _mismatch(_version_identity(champ.tags), ident)
            try:  # scored on the same clips in any case, for the record
                champion = load_predictor(f"models:/{name}@champion")
                champ_score = score_on_audio(champion, val_rows, cfg.audio, log)
                log(f"champion v{previous} on the same validation tracks: "
                    f"{champ_score.accuracy:.4f}")
                if budget is not None and mismatch is None:
                    slow = champion.latency_ms()
                    if slow > budget:
                        mismatch = (f"the champion takes {slow:.0f} ms for a 30 s clip here, over "
                                    f"register.max_latency_ms = {budget:g}, so it does not block")
            except GenreflowError as exc:
                log(f"champion v{previous} could not be scored: {exc}")
                mismatch = mismatch or (f"the champion (version {previous}) could not be loaded "
                                        f"and scored here ({exc}), so it does not block")

        best_epoch = int(run.data.metrics.get("best_epoch", 0))
        model_uri = None
        if existing is not None:
            log(f"run {run_id} is already version {existing.version}: no new version")
        else:
            with mlflow.start_run(run_id=run_id):
                info = log_audio_model(bundle, audio=cfg.audio, step=best_epoch)
                _link_metrics(run, uri, info.model_id)
                # the raw-audio scores: on the run and (after it, in its run) on the model
                mlflow.log_metrics({"registered_val_track_accuracy": cand_val.accuracy,
                                    "registered_test_track_accuracy": test_score.accuracy},
                                   model_id=info.model_id)
            model_uri = info.model_uri
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name, description="GTZAN genre classifier: raw audio in, "
                                       "genre probabilities out (genreflow).")
    if already:
        alias, reason = "champion", (f"run {run_id} is already the champion (version "
                                     f"{existing.version}); nothing new to register")
    else:
        alias, reason = decide(cand_val, champ_score, mismatch)
        moved = _champion_moved(client, name, previous)
        if moved is not None:  # another `register` moved it while this one was scoring
            champ, previous = moved, str(moved.version)
            champ_score, alias, reason = _decide_again(moved, ident, cand_val, metric)
            log(f"the champion moved to version {previous} while this run was scoring: {reason}")
    mv = existing or mlflow.register_model(model_uri, name, tags={
        **ident, metric: repr(cand_val.accuracy), "val_track_loss": repr(cand_val.loss),
        "test_track_accuracy": repr(test_score.accuracy), "data_source": tags.get("data_source"),
        "git_commit": tags.get("git_commit", "unknown"), "model_kind": kind, "run_id": run_id,
        "latency_ms_30s": f"{latency:.0f}"})
    client.set_registered_model_alias(name, alias, mv.version)
    both = (f"candidate {cand_val.accuracy:.4f}, champion "
            f"{'n/a' if champ_score is None else f'{champ_score.accuracy:.4f}'}")
    if not already:  # the version keeps the reason it was made champion
        client.set_model_version_tag(name, mv.version, "decision", f"{alias}: {reason} ({both})")
    decision = Decision(version=str(mv.version), alias=alias, reason=reason, run_id=run_id,
                        model_kind=kind, candidate_val=cand_val, champion_val=champ_score,
                        test_track_accuracy=test_score.accuracy, previous_champion=previous,
                        latency_ms=round(latency, 1))
    log(f"{name} version {mv.version} -> @{alias}: {reason}")
    if out is not None:
        holder = {"version": str(mv.version), "model_kind": kind, "run_id": run_id,
                  "val_track_accuracy": cand_val.accuracy,
                  "test_track_accuracy": test_score.accuracy, "latency_ms": decision.latency_ms}
        if alias == "challenger":  # the champion stays: what report and metrics must show
            holder = {"version": previous, "model_kind": champ.tags.get("model_kind"),
                      "run_id": champ.tags.get("run_id"),
                      "val_track_accuracy": champ_score.accuracy if champ_score else None,
                      "test_track_accuracy": _float(champ.tags.get("test_track_accuracy")),
                      "latency_ms": _float(champ.tags.get("latency_ms_30s"))}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({**asdict(decision), "model_name": name,
                                   "data_source": tags.get("data_source"),
                                   "champion_version": holder["version"], "champion": holder},
                                  indent=1))
    return decision
