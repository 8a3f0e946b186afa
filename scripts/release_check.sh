#!/usr/bin/env bash
# The release check: the README's quickstart on a fresh clone, as a new user runs it.
#   1. `make repro` (synthetic data),
#   2. `GTZAN_DIR=... make repro` with the fault-filtered split of four complete genres,
#   3. `GTZAN_DIR=... make repro` with params.yaml's default split;
#   4. `make test-all` (the slow tests too).
# Each must exit 0 with `@champion` the run `reports/register.json` names; the summary gives the
# champion's kind and its test accuracy per flow. A benchmark (over an hour on 2 cores), never a test.
#
#   bash scripts/release_check.sh /path/to/gtzan [WORKDIR] [COMMIT]
set -uo pipefail

gtzan=$(realpath "${1:?usage: release_check.sh GTZAN_DIR [WORKDIR] [COMMIT]}")
work=$(realpath -m "${2:-release-check}")
here=$(cd "$(dirname "$0")/.." && pwd)
commit=${3:-$(git -C "$here" rev-parse HEAD)}
mkdir -p "$work"
clone="$work/clone"
rm -rf "$clone"
git clone -q "$here" "$clone" && git -C "$clone" checkout -q "$commit" || exit 2
cd "$clone" || exit 2
summary="$work/summary.txt"
echo "release check of $(git log --oneline -1) on $(date -u +%FT%TZ)" | tee "$summary"

set_split() {  # set_split METHOD GENRES-JSON: edit params.yaml as a user would
    .venv/bin/python - "$1" "$2" <<'PY'
import json, sys, yaml
p = yaml.safe_load(open("params.yaml"))
p["split"]["method"], p["split"]["genres"] = sys.argv[1], json.loads(sys.argv[2])
open("params.yaml", "w").write(yaml.safe_dump(p, sort_keys=False))
PY
}

flow() {  # flow NAME [ENV=VALUE ...]: one `make repro`, its log and the champion it leaves
    local name=$1; shift
    local t0=$SECONDS
    env "$@" make repro >"$work/$name.log" 2>&1
    local rc=$?
    local champion
    champion=$(.venv/bin/python - <<'PY' 2>/dev/null
import json
d = json.load(open("reports/register.json"))
c = d["champion"]
print(f"@champion v{c['version']} {c['model_kind']} ({d['data_source']}), "
      f"val {c['val_track_accuracy']:.3f}, test {c['test_track_accuracy']:.3f}; this run -> @{d['alias']}")
PY
)
    echo "$name: exit $rc in $(( (SECONDS - t0) / 60 )) min; ${champion:-no register.json}" | tee -a "$summary"
    .venv/bin/genreflow report >"$work/$name.report.txt" 2>&1
    return $rc
}

flow synthetic || exit 1
cp params.yaml "$work/params.default.yaml"
set_split fault_filtered '["blues", "classical", "jazz", "rock"]'
flow gtzan-fault-filtered GTZAN_DIR="$gtzan" || exit 1
cp "$work/params.default.yaml" params.yaml
flow gtzan-default-split GTZAN_DIR="$gtzan" || exit 1
t0=$SECONDS
make test-all >"$work/test-all.log" 2>&1
rc=$?
echo "make test-all: exit $rc in $(( (SECONDS - t0) / 60 )) min; $(tail -1 "$work/test-all.log")" \
    | tee -a "$summary"
[ "$rc" -eq 0 ] || exit 1
echo "all flows and the whole test suite passed" | tee -a "$summary"
