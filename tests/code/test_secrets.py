"""Secrets stay out of messages, logs, MLflow and committed files: store URLs come from the
environment, :func:`redact` fails closed, and a password in params.yaml is refused."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from genreflow.core.config import TUNE_STORAGE_ENV, ConfigError, TuneConfig, load_config
from genreflow.core.safe_text import holds_secret, printable, redact, scrub

# (hostile URL, the secret it holds, what must still be shown)
HOSTILE = [
    ("postgresql://me:p@ss@w0rd@db.example.com:5432/optuna", "p@ss@w0rd",
     "postgresql://me:***@db.example.com:5432/optuna"),
    ("postgresql://me:pa/ss?x#y@db/optuna", "pa/ss?x#y", "postgresql://me:***@db/optuna"),
    ("postgresql://me@db/optuna?sslmode=require&password=hunter22", "hunter22",
     "?sslmode=require&password=***"),
    ("https://bucket.s3.amazonaws.com/gtzan.tar.gz?X-Amz-Algorithm=AWS4-HMAC-SHA256"
     "&X-Amz-Credential=AKIAEXAMPLE%2F20250101%2Fus-east-1%2Fs3%2Faws4_request"
     "&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLE&X-Amz-Signature=0123456789abcdef",
     "AKIAEXAMPLE", "https://bucket.s3.amazonaws.com/gtzan.tar.gz?X-Amz-Algorithm=AWS4"),
    ("https://acct.blob.core.windows.net/c/g.zip?sv=2024&sig=AzUr3Sig%3D", "AzUr3Sig",
     "sig=***"),
    ("https://h/x?access_token=tok123&api_key=key456&Signature=sig789", "tok123", "https://h/x?"),
    ("me:s3cr3t@db.example.com/optuna", "s3cr3t", "me:***@db.example.com/optuna"),
    ("postgresql://me:s3cr3t@[::1]:5432/optuna", "s3cr3t", "postgresql://me:***@[::1]:5432/"),
    ("https://ghp_T0KEN@github.com/me/data", "ghp_T0KEN", "***@github.com/me/data"),
    ("::::@@@%%%\x00garbage:pa55word@", "pa55word", "***@"),
    ("http://h/x#access_token=fragtok&state=1", "fragtok", "state=1"),
    # an @ inside a query value: which part is the host is anyone's guess, so all is masked
    ("postgresql://me@db:5432/optuna?password=p@ss@w0rd", "w0rd", "postgresql://***"),
]


@pytest.mark.parametrize("url,secret,shown", HOSTILE, ids=[h[1] for h in HOSTILE])
def test_redact_hides_the_secret_and_keeps_the_rest(url, secret, shown):
    out = redact(url)
    assert secret not in out and shown in out, out
    assert redact(out) == out  # idempotent: redacting a message twice changes nothing
    assert all(ch.isprintable() for ch in out)


def test_redact_leaves_urls_without_secrets_alone():
    for url in ("sqlite:///optuna.db", "sqlite:////abs/path/mlflow.db", "http://127.0.0.1:5000",
                "databricks", "file:///srv/artefacts", "postgresql://db:5432/optuna?sslmode=verify"):
        assert redact(url) == url and not holds_secret(url)


def test_redact_never_raises_nor_echoes():
    class Hostile:
        def __str__(self):
            raise RuntimeError("postgresql://me:leak@db")

    assert redact(Hostile()) == "***"
    assert redact("postgresql://me:x\n@db") == "postgresql://me:***@db"


def test_scrub_hides_urls_and_passwords_an_exception_echoes():
    url = "postgresql://me:p@ss@w0rd@db/optuna"
    text = (f"Could not parse SQLAlchemy URL from string '{url}'; password 'p@ss@w0rd' "
            "rejected; 403 for url: https://b.s3.amazonaws.com/g.tgz?X-Amz-Signature=abc123")
    out = scrub(text, url)
    assert "p@ss@w0rd" not in out and "abc123" not in out
    assert "postgresql://me:***@db/optuna" in out and "X-Amz-Signature=***" in out


def test_printable_escapes_control_characters():
    assert printable("a\x1b[31mb\nc\u2028d\te.wav") == "a\\x1b[31mb\\x0ac\\u2028d\\x09e.wav"
    assert printable("café — 音楽.wav") == "café — 音楽.wav"


@pytest.mark.parametrize("field,value", [
    ("tune.storage", "postgresql://me:hunter22@db/optuna"),
    ("tracking.uri", "postgresql://me@db/mlflow?password=hunter22"),
])
def test_a_password_in_params_yaml_is_refused_without_echoing_it(field, value, tmp_path):
    section, key = field.split(".")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({section: {key: value}}))
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path / "params.yaml")
    msg = str(exc.value)
    assert field in msg and "hunter22" not in msg and "\n" not in msg, msg
    assert ("GENREFLOW_TUNE_STORAGE" if section == "tune" else "MLFLOW_TRACKING_URI") in msg


def test_store_urls_from_the_environment_take_precedence(monkeypatch):
    tune = TuneConfig(storage="sqlite:///from-params.db")
    monkeypatch.delenv(TUNE_STORAGE_ENV, raising=False)
    assert tune.resolved_storage() == "sqlite:///from-params.db"
    monkeypatch.setenv(TUNE_STORAGE_ENV, "postgresql://me@db/optuna")
    assert tune.resolved_storage() == "postgresql://me@db/optuna"
    monkeypatch.setenv(TUNE_STORAGE_ENV, "")  # empty means unset
    assert tune.resolved_storage() == "sqlite:///from-params.db"


@pytest.mark.filterwarnings("ignore:Query string argument")  # SQLAlchemy: pysqlite ignores it
def test_tune_with_storage_from_the_environment_leaves_no_secret(tiny_project, tmp_path: Path,
                                                                 monkeypatch):
    """Real Optuna and MLflow, one trial: params.yaml's default storage is never touched, the
    study lands in the storage the environment names, and the secret that URL carries is in
    no MLflow param or tag, no log line and not in tune.json."""
    import optuna
    from mlflow.tracking import MlflowClient

    from genreflow.stages.study import study_name
    from genreflow.stages.tune import tune

    cfg, feat_dir = tiny_project
    cfg.tune = replace(cfg.tune, storage=TuneConfig.storage, max_epochs=1)  # the default
    db = tmp_path / "env-study" / "optuna.db"
    secret = "tune-s3cret-value"
    monkeypatch.setenv(TUNE_STORAGE_ENV, f"sqlite:///{db}?password={secret}")
    lines: list[str] = []
    out = tmp_path / "reports"
    summary = tune(cfg, feat_dir, n_trials=1, out_dir=out, log=lines.append)

    assert summary["trials_this_run"] == 1
    assert not (tmp_path / "optuna.db").exists()  # params.yaml's storage: never opened
    study = optuna.load_study(study_name=study_name(cfg), storage=f"sqlite:///{db}")
    assert len(study.trials) == 1
    assert summary["storage"] == f"sqlite:///{db}?password=***"

    client = MlflowClient(cfg.tracking.uri)
    exp = client.get_experiment_by_name(cfg.train.experiment)
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 2  # the study's parent run and its one trial
    recorded = json.dumps([[r.data.params, r.data.tags] for r in runs])
    assert secret not in recorded
    parent = next(r for r in runs if r.data.tags.get("role") == "optuna_study")
    assert parent.data.params["tune.storage"] == f"sqlite:///{db}?password=***"
    assert secret not in "\n".join(lines) and any(str(db) in line for line in lines)
    assert secret not in (out / "tune.json").read_text()


@pytest.mark.parametrize("url", ["postgresql://me:p@ss@w0rd@db:notaport/optuna",
                                 "nosuchdialect://me:p@ss@w0rd@db/optuna",
                                 "postgresql://me@db:notaport/optuna?password=p@ss@w0rd"])
def test_a_storage_that_cannot_be_opened_is_named_without_its_password(url, monkeypatch):
    from genreflow.stages.study import _storage

    monkeypatch.setenv(TUNE_STORAGE_ENV, url)
    with pytest.raises(ConfigError) as exc:
        _storage(TuneConfig())
    msg = str(exc.value)
    assert msg.startswith(f"{TUNE_STORAGE_ENV}: cannot open ") and "p@ss@w0rd" not in msg, msg
    assert "w0rd" not in msg and "ss@" not in msg, msg
