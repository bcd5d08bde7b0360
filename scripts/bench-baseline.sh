#!/usr/bin/env bash
# Issue 20: the current tree against the round-one baseline (commit 9fb9c84, with its
# own loadgen), interleaved in ROUNDS rounds in one session on this machine, so every
# figure is a ratio measured at one time. Also measures the disk's commit floor
# (scripts/fsync-latency.py) in the same run. Prints each run and the medians.
#
# Usage: scripts/bench-baseline.sh [target/release]
#   ROUNDS=3 JOBS=20000 WORKERS=1000 CONCURRENCY=64 RATE=0 (RATE=N paces the submits)
#   CURRENT_ARGS="--owners 10 --streak 200": more flags for the current loadgen only
#   (result checks on, which the baseline does not have; or --batch 100)
#   BASE_SRC=target/baseline-src: where 9fb9c84 is checked out (a git worktree) and
#   built, once; its build takes as long as a release build of the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-target/release}
ROUNDS=${ROUNDS:-3}; JOBS=${JOBS:-20000}; WORKERS=${WORKERS:-1000}
CONCURRENCY=${CONCURRENCY:-64}; RATE=${RATE:-0}
BASELINE=9fb9c84
BASE_SRC=${BASE_SRC:-target/baseline-src}
CURRENT="$DIR/examples/loadgen"
[ -x "$CURRENT" ] || { echo "build first: cargo build --release -p gridx-server --bins --examples"; exit 2; }
if [ ! -d "$BASE_SRC" ]; then
  git worktree add --detach "$BASE_SRC" "$BASELINE"
fi
BASE="$BASE_SRC/target/release/examples/loadgen"
if [ ! -x "$BASE" ]; then
  echo "building the baseline ($BASELINE) in $BASE_SRC ..."
  (cd "$BASE_SRC" && CARGO_TARGET_DIR=target cargo build --release -p gridx-server --bins --examples)
fi

OUT=$(mktemp); trap 'rm -f "$OUT"' EXIT
run() {
  local label=$1 loadgen=$2; shift 2
  local text rate cpu p50 p99
  text=$("$loadgen" --workers "$WORKERS" --slots 4 --jobs "$JOBS" --users 10 \
    --concurrency "$CONCURRENCY" --rate "$RATE" "$@" 2>/dev/null)
  grep -q '^ledger ok' <<<"$text" || { echo "$label: ledger verify failed"; echo "$text"; exit 1; }
  rate=$(grep -oP 'end to end\s+\K[0-9]+' <<<"$text")
  cpu=$(grep -oP 'coordinator\s+\K[0-9.]+(?= CPU-s)' <<<"$text")
  p50=$(grep -oP 'p50 \K[0-9.]+' <<<"$text")
  p99=$(grep -oP 'p99 \K[0-9.]+' <<<"$text")
  echo "$label jobs/s=$rate cpu_us/job=$(python3 -c "print(round($cpu/$JOBS*1e6))") p50_ms=$p50 p99_ms=$p99" | tee -a "$OUT"
}

scripts/fsync-latency.py 2000
for round in $(seq "$ROUNDS"); do
  echo "--- round $round"
  run baseline "$BASE"
  # shellcheck disable=SC2086 # CURRENT_ARGS is a list of flags
  run current "$CURRENT" ${CURRENT_ARGS:-}
done
scripts/fsync-latency.py 2000
python3 - "$OUT" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    label, *fields = line.split()
    rows[label].append({k: float(v) for k, v in (f.split('=') for f in fields)})
base = rows['baseline']
med = lambda runs, k: statistics.median(r[k] for r in runs)
print("\nmedians (min-max) over", len(base), "rounds")
for label, runs in rows.items():
    rate = [r['jobs/s'] for r in runs]
    print(f"{label:9} {med(runs, 'jobs/s'):6.0f} jobs/s ({min(rate):.0f}-{max(rate):.0f}) = "
          f"{med(runs, 'jobs/s') / med(base, 'jobs/s'):.2f}x baseline · "
          f"{med(runs, 'cpu_us/job'):.0f} us CPU/job = {med(runs, 'cpu_us/job') / med(base, 'cpu_us/job'):.2f}x · "
          f"p50 {med(runs, 'p50_ms'):.1f} ms · p99 {med(runs, 'p99_ms'):.1f} ms")
PY
