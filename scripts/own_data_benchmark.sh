#!/usr/bin/env bash
# "Your own data" against GTZAN's own protocol, on the same clips, model and seeds:
#   A. the four complete genres re-arranged as a user's library (scripts/gtzan_as_library.py:
#      label folders, track names unrelated to GTZAN's ids, a catalogue.csv with a group column
#      that follows the fault-filtered partition), `genreflow data get catalogue.csv`,
#      split.method: group with split.ratios set to that partition's proportions;
#   B. the same clips as GTZAN (`data get` of the folder), split.method: fault_filtered.
# Each: a fresh clone, MODELS (default musicnn) trained and tuned, `dvc repro`; the summary
# gives each flow's split sizes, champion and test accuracy / macro-F1. A benchmark, never a test.
#
#   bash scripts/own_data_benchmark.sh GTZAN_DIR [WORKDIR] [MODELS]
# Uses this checkout's .venv (PYTHONPATH points at each clone's src).
set -uo pipefail

gtzan=$(realpath "${1:?usage: own_data_benchmark.sh GTZAN_DIR [WORKDIR] [MODELS]}")
work=$(realpath -m "${2:-own-data-benchmark}")
models=${3:-musicnn}
here=$(cd "$(dirname "$0")/.." && pwd)
venv="$here/.venv/bin"
genres='["blues", "classical", "jazz", "rock"]'
mkdir -p "$work"
summary="$work/summary.txt"
echo "own-data benchmark of $(git -C "$here" log --oneline -1) on $(date -u +%FT%TZ), models $models" \
    | tee "$summary"

rm -rf "$work/library"
ratios=$("$venv/python" "$here/scripts/gtzan_as_library.py" "$gtzan" "$work/library" \
    --genres blues classical jazz rock | tee -a "$summary" | sed -n 's/^split.ratios reproducing it: //p')

flow() {  # flow NAME SOURCE METHOD RATIOS
    local name=$1 source=$2 method=$3 ratios=$4 clone="$work/run-$1"
    rm -rf "$clone"
    git clone -q "$here" "$clone" && cd "$clone" || return 2
    PYTHONPATH="$clone/src" "$venv/python" - "$method" "$ratios" "$models" "$genres" "$name" <<'PY'
import json, sys, yaml
method, ratios, models, genres, name = sys.argv[1:]
p = yaml.safe_load(open("params.yaml"))
p["split"].update(method=method, ratios=json.loads(ratios), balance=False,
                  genres="all" if name == "library" else json.loads(genres))
p["train"]["models"] = models.split(",")
p["tune"]["model"] = models.split(",")[0]
open("params.yaml", "w").write(yaml.safe_dump(p, sort_keys=False))
PY
    local t0=$SECONDS
    export PYTHONPATH="$clone/src" PATH="$venv:$PATH"
    { genreflow data get "$source" && dvc repro; } >"$work/$name.log" 2>&1
    local rc=$?
    "$venv/python" - "$name" "$rc" "$(( (SECONDS - t0) / 60 ))" <<'PY' | tee -a "$summary"
import json, sys
name, rc, minutes = sys.argv[1:]
try:
    split = json.load(open("reports/split/split.json"))
    reg = json.load(open("reports/register.json"))
    c = reg["champion"]
    run = json.load(open(f"reports/train/{c['model_kind']}/metrics.json"))
    print(f"{name}: exit {rc} in {minutes} min; split {split['method']} {split['counts']}; "
          f"@champion {c['model_kind']} val {c['val_track_accuracy']:.3f}, "
          f"test {c['test_track_accuracy']:.3f}; trained run test macro-F1 "
          f"{run.get('test_macro_f1', float('nan')):.3f}")
except (OSError, KeyError, ValueError) as exc:
    print(f"{name}: exit {rc} in {minutes} min; no result ({type(exc).__name__}: {exc})")
PY
    cd "$work" || return 2
    return "$rc"
}

flow library "$work/library/catalogue.csv" group "$ratios"
flow gtzan "$gtzan" fault_filtered '[0.8, 0.09, 0.1]'
