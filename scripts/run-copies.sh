#!/bin/bash
# Runs N copies of each scenario FILE in one `flatline run -j` (release build, root) and prints
# each side's detections per file and fault, sorted: how the lab measurements of docs/physics.md
# that name it were taken.
#
#     scripts/run-copies.sh OUT N FILE...
#
# Copy J of FILE is named `<FILE's basename>-cJ` (so files that share a `name` stay apart);
# copies, records and `run.log` are written to OUT. Compare with `flatline predict FILE`.
set -eu
out=$1
n=$2
shift 2
mkdir -p "$out"
paths=()
for f in "$@"; do
    b=$(basename "$f" .toml)
    for j in $(seq 1 "$n"); do
        sed -E "0,/^name = \"[^\"]+\"/s//name = \"$b-c$j\"/" "$f" >"$out/$b-c$j.toml"
        paths+=("$out/$b-c$j.toml")
    done
done
target/release/flatline run -j "${#paths[@]}" --out "$out" "${paths[@]}" >"$out/run.log" 2>&1 || true
python3 - "$out" <<'PY'
import collections, glob, json, sys

rows = collections.defaultdict(list)
for p in sorted(glob.glob(sys.argv[1] + "/*.json")):
    r = json.load(open(p))
    name = r["scenario"]["name"].rsplit("-c", 1)[0]
    for i, f in enumerate(r["summary"]["faults"]):
        for side in ("client", "server"):
            s = f.get(side) or {}
            d = s.get("detection_ms")
            rows[(name, i, side)].append("never" if d is None else f"{s.get('error')} {d / 1000:.3f}")
for (name, i, side), v in sorted(rows.items()):
    print(f"{name} fault {i} {side}: {', '.join(sorted(v))}")
PY
