"""Last stage, register: the best run by validation becomes a registry version.

The alias ``champion`` moves to the new version only when it wins on equal terms:
both the candidate and the current champion are evaluated on *this* validation
split, from raw audio, through the same path ``mlflow models serve`` uses. A
champion trained on other data, another split or other classes cannot be compared
there, so it never blocks a candidate trained on the current data. The test split
is evaluated for the record, never used to decide.

:func:`register_best` is four steps, each a function of the settings it reads:
:func:`select` (the best run within the latency budget), :func:`score_candidate` and
:func:`score_champion` (validation from raw audio; test for the record),
:func:`decide_alias` (the rule, against the champion that holds the alias at that moment)
and :func:`log_candidate` + :func:`publish` (the audio model, the version, the alias,
``register.json``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from tqdm import tqdm

from genreflow.audio.refusal import AudioError
from genreflow.core.config import AudioConfig, Config, RegisterConfig
from genreflow.core.errors import GenreflowError
from genreflow.core.paths import SPLIT_MANIFEST
from genreflow.core.safe_text import printable
from genreflow.models.bundle import BUNDLE_META, BUNDLE_MODEL
from genreflow.models.splits import split_digest
from genreflow.serving.loader import load_predictor
from genreflow.serving.predictor import GenrePredictor
from genreflow.serving.pyfunc import log_audio_model
from genreflow.tracking.store import data_digest, setup_mlflow

COMPARED_TAGS = ("data_digest", "split_digest", "classes")
Log = Callable[[str], None]


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


@dataclass
class SplitRows:
    """The manifest's validation and test rows, and what makes two models comparable on
    them (``data_digest``, ``split_digest``, ``classes``)."""

    val: pd.DataFrame
    test: pd.DataFrame
    ident: dict[str, str]


@dataclass
class Candidate:
    """The selected run, its model as a bundle folder, and the model's latency here."""

    run: object  # mlflow.entities.Run
    bundle: Path
    predictor: GenrePredictor
    latency_ms: float

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    @property
    def kind(self) -> str:
        return _kind_of(self.run)


@dataclass
class Champion:
    """The version that held ``@champion`` when this registration looked, and how it
    compares: ``score`` on the same validation clips, ``mismatch`` (why it cannot block),
    ``already`` (it *is* the candidate's version)."""

    version: object | None = None  # mlflow.entities.model_registry.ModelVersion
    score: Score | None = None
    mismatch: str | None = None
    already: bool = False

    @property
    def number(self) -> str | None:
        return None if self.version is None else str(self.version.version)


@dataclass
class Verdict:
    """Where the alias goes, why, and the champion it was decided against."""

    alias: str
    reason: str
    champion: Champion


def read_split(manifest: Path, data_dir: str | Path) -> SplitRows:
    """The validation and test rows of the split manifest (a one-line error without one)."""
    if not Path(manifest).is_file():
        raise GenreflowError(f"{manifest}: no split manifest; run `dvc repro split` first")
    table = pd.read_csv(manifest)
    ident = {"data_digest": data_digest(data_dir), "split_digest": split_digest(table),
             "classes": ",".join(sorted(table["genre"].unique()))}
    return SplitRows(val=table[table["split"] == "val"], test=table[table["split"] == "test"],
                     ident=ident)


# ------------------------------------------------------------------------------ select
def ranked_runs(metric: str, data_digest: str, split: str, experiments: list[str]) -> list:
    """Every finished, non-pruned run on this data and split, best ``metric`` first; ties
    go to the lower ``val_track_loss``, then to the newer run."""
    exps = [e for e in (mlflow.get_experiment_by_name(n) for n in experiments) if e is not None]
    if not exps:
        raise GenreflowError(f"no MLflow experiment among {experiments}: train a model first "
                             "(`dvc repro` or `genreflow train segcnn`)")
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


def select(runs: list, max_latency_ms: float | None, tmp: Path, log: Log = print) -> Candidate:
    """The first of ``runs`` (ranked) whose model answers a 30 s clip within
    ``max_latency_ms`` on this machine (the first when there is no budget), loaded into a
    bundle folder under ``tmp``."""
    timed = []
    for i, run in enumerate(runs):
        bundle = tmp / f"bundle{i}"
        predictor = _load_bundle(run, bundle)
        latency = predictor.latency_ms()
        if max_latency_ms is None or latency <= max_latency_ms:
            return Candidate(run, bundle, predictor, latency)
        timed.append((latency, _kind_of(run)))
        log(f"passed over run {run.info.run_id} ({_kind_of(run)}): {latency:.0f} ms for a 30 s "
            f"clip, over register.max_latency_ms = {max_latency_ms:g}")
    fastest, kind = min(timed)
    raise GenreflowError(f"register.max_latency_ms = {max_latency_ms:g}: no run on this data "
                         f"and split answers a 30 s clip within it here (fastest: {kind}, "
                         f"{fastest:.0f} ms); raise the budget, set it to null, or train a "
                         "faster kind")


def _kind_of(run) -> str:
    return run.data.tags.get("model") or run.data.params.get("model.name")


def _load_bundle(run, bundle: Path) -> GenrePredictor:
    """The run's model and front-end as a bundle folder, loaded through the run's kind (its
    own layers registered by :meth:`~genreflow.kinds.base.ModelKind.load_servable`): the
    same path a served or predicted bundle takes, never a loader that bypasses the kind."""
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
    flavor = Model.load(logged).flavors.get("keras", {})
    found = sorted((logged / flavor.get("data", "data")).glob("*.keras"))
    if not found:
        raise GenreflowError(f"{uri}: no .keras file in the logged model (not logged by "
                             "genreflow's training?); retrain it (`genreflow train KIND`)")
    return found[0]


# ------------------------------------------------------------------------------- score
def score_on_audio(predictor: GenrePredictor, rows: pd.DataFrame, audio: AudioConfig,
                   log: Log = print) -> Score:
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
            log(printable(f"skipped {path}: {exc}"))
            continue
        hits.append(predictor.classes[int(np.argmax(probs))] == genre)
        p_true = float(probs[index[genre]]) if genre in index else 0.0
        losses.append(-np.log(max(p_true, 1e-7)))
    return Score(accuracy=float(np.mean(hits)) if hits else 0.0,
                 loss=float(np.mean(losses)) if losses else 0.0, n_tracks=len(hits))


def score_candidate(candidate: Candidate, rows: SplitRows, audio: AudioConfig,
                    log: Log = print) -> tuple[Score, Score]:
    """The candidate's validation score (what decides) and test score (for the record)."""
    val = score_on_audio(candidate.predictor, rows.val, audio, log)
    log(f"candidate on validation from raw audio: {val.accuracy:.4f} ({val.n_tracks} tracks)")
    test = score_on_audio(candidate.predictor, rows.test, audio, log)
    log(f"test track accuracy of the candidate (for the record): {test.accuracy:.4f} "
        f"({test.n_tracks} tracks)")
    return val, test


def current_champion(client: MlflowClient, name: str):
    """The version ``@champion`` points to, or ``None``."""
    try:
        return client.get_model_version_by_alias(name, "champion")
    except MlflowException:
        return None


def score_champion(version, existing, candidate_val: Score, rows: SplitRows,
                   rcfg: RegisterConfig, audio: AudioConfig, log: Log = print) -> Champion:
    """The champion ``version`` scored on the candidate's validation clips from raw audio
    (always, for the record), and why it cannot block the candidate, if it cannot: other
    data, split or classes, over the latency budget, or not loadable. ``existing`` is the
    version already made from the candidate's run: when it is the champion, nothing is
    scored."""
    if version is None:
        return Champion()
    number = str(version.version)
    if existing is not None and str(existing.version) == number:
        return Champion(version, score=candidate_val, already=True)
    mismatch = _mismatch(_version_identity(version.tags), rows.ident)
    try:
        predictor = load_predictor(f"models:/{rcfg.model_name}@champion")
        score = score_on_audio(predictor, rows.val, audio, log)
        log(f"champion v{number} on the same validation tracks: {score.accuracy:.4f}")
        budget = rcfg.max_latency_ms
        if budget is not None and mismatch is None:
            slow = predictor.latency_ms()
            if slow > budget:
                mismatch = (f"the champion takes {slow:.0f} ms for a 30 s clip here, over "
                            f"register.max_latency_ms = {budget:g}, so it does not block")
    except GenreflowError as exc:
        log(f"champion v{number} could not be scored: {exc}")
        return Champion(version, mismatch=mismatch or (
            f"the champion (version {number}) could not be loaded and scored here ({exc}), "
            "so it does not block"))
    return Champion(version, score=score, mismatch=mismatch)


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


# ------------------------------------------------------------------------------ decide
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


def decide_alias(client: MlflowClient, name: str, metric: str, candidate_val: Score,
                 champion: Champion, run_id: str, ident: dict, log: Log = print) -> Verdict:
    """The rule against ``champion``; if another ``register`` moved ``@champion`` meanwhile,
    against the version it holds now, from the raw-audio scores that version records."""
    if champion.already:
        return Verdict("champion", f"run {run_id} is already the champion (version "
                       f"{champion.number}); nothing new to register", champion)
    alias, reason = decide(candidate_val, champion.score, champion.mismatch)
    now = current_champion(client, name)
    if now is None or str(now.version) == champion.number:
        return Verdict(alias, reason, champion)
    moved = _recorded_champion(now, ident, candidate_val, metric)
    alias, reason = decide(candidate_val, moved.score, moved.mismatch)
    log(f"the champion moved to version {moved.number} while this run was scoring: {reason}")
    return Verdict(alias, reason, moved)


def _recorded_champion(version, ident: dict, candidate_val: Score, metric: str) -> Champion:
    """A champion registered by a concurrent ``register``, compared through the raw-audio
    validation scores its version records (the same clips when its data, split and classes
    are these)."""
    mismatch = _mismatch(_version_identity(version.tags), ident)
    acc, loss = _float(version.tags.get(metric)), _float(version.tags.get("val_track_loss"))
    score = None if acc is None else Score(acc, loss or 0.0, candidate_val.n_tracks)
    if mismatch is None and score is None:
        mismatch = f"version {version.version} records no {metric}, so it does not block"
    return Champion(version, score=score, mismatch=mismatch)


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


# ----------------------------------------------------------------------------- publish
def registered_version(client: MlflowClient, name: str, run_id: str, ident: dict):
    """The registry version already made from ``run_id`` on this data and split, if any."""
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    same = [v for v in versions if v.tags.get("run_id") == run_id
            and all(v.tags.get(k) == ident[k] for k in COMPARED_TAGS)]
    return max(same, key=lambda v: int(v.version), default=None)


def log_candidate(candidate: Candidate, audio: AudioConfig, val: Score, test: Score) -> str:
    """Log the candidate as a raw-audio model into its run (at the restored epoch, with the
    trained model's final numbers and the raw-audio scores on its page): its model URI."""
    run = candidate.run
    with mlflow.start_run(run_id=candidate.run_id):
        info = log_audio_model(candidate.bundle, audio=audio,
                               step=int(run.data.metrics.get("best_epoch", 0)))
        _link_metrics(run, run.data.tags["keras_model_uri"], info.model_id)
        # the raw-audio scores: on the run and (after it, in its run) on the model
        mlflow.log_metrics({"registered_val_track_accuracy": val.accuracy,
                            "registered_test_track_accuracy": test.accuracy},
                           model_id=info.model_id)
    return info.model_uri


def _link_metrics(run, keras_uri: str, model_id: str) -> None:
    """The registered model's page shows what the trained model's page shows: MLflow links
    the run's values at the restored epoch when the model is logged at that step; the final
    numbers are added here with the dataset (once each: no other step-0 values are linked)."""
    trained = mlflow.get_logged_model(keras_uri.rsplit("/", 1)[-1])
    dataset = run.inputs.dataset_inputs[0].dataset if run.inputs.dataset_inputs else None
    mlflow.log_metrics({m.key: m.value for m in trained.metrics if m.step == 0}, step=0,
                       model_id=model_id, dataset=dataset)


def version_tags(candidate: Candidate, ident: dict, metric: str, val: Score, test: Score
                 ) -> dict[str, str | None]:
    """A new version's tags: what makes it comparable, its raw-audio scores, its origin."""
    tags = candidate.run.data.tags
    return {**ident, metric: repr(val.accuracy), "val_track_loss": repr(val.loss),
            "test_track_accuracy": repr(test.accuracy), "data_source": tags.get("data_source"),
            "git_commit": tags.get("git_commit", "unknown"), "model_kind": candidate.kind,
            "run_id": candidate.run_id, "latency_ms_30s": f"{candidate.latency_ms:.0f}"}


def publish(client: MlflowClient, name: str, verdict: Verdict, candidate_val: Score, *,
            existing, model_uri: str | None, tags: dict) -> str:
    """The version (``existing``, or a new one of ``model_uri`` with ``tags``) with the
    verdict's alias and, unless it already was the champion, the reason as its ``decision``
    tag: the version number."""
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="GTZAN genre classifier: raw audio in, "
                                       "genre probabilities out (genreflow).")
    mv = existing or mlflow.register_model(model_uri, name, tags=tags)
    client.set_registered_model_alias(name, verdict.alias, mv.version)
    if not verdict.champion.already:  # the version keeps the reason it was made champion
        theirs = verdict.champion.score
        both = (f"candidate {candidate_val.accuracy:.4f}, champion "
                f"{'n/a' if theirs is None else f'{theirs.accuracy:.4f}'}")
        client.set_model_version_tag(name, mv.version, "decision",
                                     f"{verdict.alias}: {verdict.reason} ({both})")
    return str(mv.version)


def champion_record(decision: Decision, verdict: Verdict) -> dict:
    """Who holds ``@champion`` after ``decision``: the new version, or (challenger) the
    champion it was decided against, from its version's tags."""
    if decision.alias != "challenger":
        return {"version": decision.version, "model_kind": decision.model_kind,
                "run_id": decision.run_id, "val_track_accuracy": decision.candidate_val.accuracy,
                "test_track_accuracy": decision.test_track_accuracy,
                "latency_ms": decision.latency_ms}
    champ, score = verdict.champion, verdict.champion.score
    return {"version": champ.number, "model_kind": champ.version.tags.get("model_kind"),
            "run_id": champ.version.tags.get("run_id"),
            "val_track_accuracy": score.accuracy if score else None,
            "test_track_accuracy": _float(champ.version.tags.get("test_track_accuracy")),
            "latency_ms": _float(champ.version.tags.get("latency_ms_30s"))}


def write_register_json(out: Path, decision: Decision, verdict: Verdict, name: str,
                        data_source: str | None) -> None:
    """``register.json``: the decision, and who holds ``@champion`` (what the report and
    ``dvc metrics`` show)."""
    holder = champion_record(decision, verdict)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**asdict(decision), "model_name": name, "data_source": data_source,
                               "champion_version": holder["version"], "champion": holder},
                              indent=1))


# --------------------------------------------------------------------------- the stage
def register_best(cfg: Config, manifest: Path = SPLIT_MANIFEST, out: Path | None = None,
                  log: Log = print) -> Decision:
    """Register the best run's model as a raw-audio pyfunc and apply the alias rule."""
    rcfg, audio = cfg.register, cfg.audio
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
        val, test = score_candidate(cand, rows, audio, log)
        existing = registered_version(client, name, cand.run_id, rows.ident)
        champion = score_champion(current_champion(client, name), existing, val, rows, rcfg,
                                  audio, log)
        model_uri = None
        if existing is not None:
            log(f"run {cand.run_id} is already version {existing.version}: no new version")
        else:
            model_uri = log_candidate(cand, audio, val, test)
    verdict = decide_alias(client, name, rcfg.metric, val, champion, cand.run_id, rows.ident, log)
    version = publish(client, name, verdict, val, existing=existing, model_uri=model_uri,
                      tags=version_tags(cand, rows.ident, rcfg.metric, val, test))
    decision = Decision(version=version, alias=verdict.alias, reason=verdict.reason,
                        run_id=cand.run_id, model_kind=cand.kind, candidate_val=val,
                        champion_val=verdict.champion.score, test_track_accuracy=test.accuracy,
                        previous_champion=verdict.champion.number,
                        latency_ms=round(cand.latency_ms, 1))
    log(f"{name} version {version} -> @{verdict.alias}: {verdict.reason}")
    if out is not None:
        write_register_json(out, decision, verdict, name, cand.run.data.tags.get("data_source"))
    return decision
