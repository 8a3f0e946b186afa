"""Model kinds from outside genreflow: found through ``train.plugins`` (and ``GENREFLOW_PLUGINS``,
which the CLI sets from it for the processes it starts) or the ``genreflow.kinds`` entry-point
group. The whole path (train -> tune -> register -> predict -> serve) of the plug-in kind
``tests/plugins/toykind.py`` runs in tests/model/test_kind_matrix.py, as every built-in kind's.

Each check runs in a fresh interpreter: registering a kind is process-wide.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_DIR = ROOT / "tests" / "plugins"
BIN = Path(sys.executable).parent


def _env(*paths: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "GENREFLOW_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), env.get("PYTHONPATH", "")])
    return env


def _python(code: str, env: dict, cwd: Path) -> str:
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


def test_train_plugins_registers_the_kind_and_its_settings(tmp_path):
    code = ("from genreflow.core.config import Config, TrainConfig\n"
            "from genreflow.kinds import check_models, kind_names, settings\n"
            "t = TrainConfig.from_mapping({'models': ['toy'], 'plugins': ['toykind'],"
            " 'toy': {'learning_rate': 0.5}}, 'train')\n"
            "check_models(t)\n"
            "print(kind_names()[-1], settings(t, 'toy').learning_rate)\n")
    assert _python(code, _env(PLUGIN_DIR), tmp_path) == "toy 0.5"


def test_the_environment_names_plugins_for_child_processes(tmp_path):
    env = {**_env(PLUGIN_DIR), "GENREFLOW_PLUGINS": "toykind"}
    code = "from genreflow.kinds import get_kind\nprint(type(get_kind('toy')).__name__)\n"
    assert _python(code, env, tmp_path) == "Toy"


def test_an_entry_point_registers_a_kind_from_an_installed_distribution(tmp_path):
    site = tmp_path / "site"
    dist = site / "toy_genreflow_kind-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-genreflow-kind\n"
                                   "Version: 0.1\n")
    (dist / "entry_points.txt").write_text("[genreflow.kinds]\ntoy = toykind\n")
    (site / "toykind.py").write_text((PLUGIN_DIR / "toykind.py").read_text())
    code = "from genreflow.kinds import kind_names\nprint(' '.join(kind_names()))\n"
    assert _python(code, _env(site), tmp_path).split()[-1] == "toy"


def test_a_plugin_that_does_not_import_is_a_one_line_error(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["plugins"] = ["no_such_kind_module"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run([str(BIN / "genreflow"), "train", "toy"], cwd=tmp_path,
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "train.plugins: cannot import model kind module 'no_such_kind_module'" in proc.stderr
