#!/usr/bin/env bash
# Batches against single submits (docs/benchmarks.md, "Batches"): loadgen with jobs
# sent one per request to POST /v1/jobs against batches of BATCH through
# POST /v1/jobs/batch, in ROUNDS interleaved rounds in one session, so the ratio is
# measured on one machine at one time. Prints each run and the medians.
# Usage: scripts/bench-batch.sh [target/release]   (ROUNDS=3 JOBS=20000 BATCH=100)
set -euo pipefail
DIR=${1:-target/release}
ROUNDS=${ROUNDS:-3}; JOBS=${JOBS:-20000}; BATCH=${BATCH:-100}
LOADGEN="$DIR/examples/loadgen"
[ -x "$LOADGEN" ] || { echo "build first: cargo build --release -p gridx-server --bins --examples"; exit 2; }
OUT=$(mktemp); trap 'rm -f "$OUT"' EXIT
run() {
  local label=$1; shift
  local text
  text=$("$LOADGEN" --workers 1000 --slots 4 --jobs "$JOBS" --users 10 "$@" 2>/dev/null)
  local rate cpu p50 p99
  rate=$(grep -oP 'end to end\s+\K[0-9]+' <<<"$text")
  cpu=$(grep -oP 'coordinator\s+\K[0-9.]+(?= CPU-s)' <<<"$text")
  p50=$(grep -oP 'p50 \K[0-9.]+' <<<"$text")
  p99=$(grep -oP 'p99 \K[0-9.]+' <<<"$text")
  grep -q '^ledger ok' <<<"$text" || { echo "$label: ledger verify failed"; echo "$text"; exit 1; }
  echo "$label jobs/s=$rate cpu_us/job=$(python3 -c "print(round($cpu/$JOBS*1e6))") p50_ms=$p50 p99_ms=$p99" | tee -a "$OUT"
}
for round in $(seq "$ROUNDS"); do
  echo "--- round $round"
  run single --concurrency 64
  run "batch-$BATCH" --concurrency 8 --batch "$BATCH"
done
python3 - "$OUT" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    label, *fields = line.split()
    rows[label].append({k: float(v) for k, v in (f.split('=') for f in fields)})
base = rows['single']
print("\nmedians (min-max) over", len(base), "rounds")
b_rate = statistics.median(r['jobs/s'] for r in base)
b_cpu = statistics.median(r['cpu_us/job'] for r in base)
for label, runs in rows.items():
    rate = [r['jobs/s'] for r in runs]; cpu = [r['cpu_us/job'] for r in runs]
    print(f"{label:10} {statistics.median(rate):6.0f} jobs/s ({min(rate):.0f}-{max(rate):.0f}) "
          f"= {statistics.median(rate)/b_rate:.2f}x single · {statistics.median(cpu):.0f} us CPU/job "
          f"({min(cpu):.0f}-{max(cpu):.0f}) = {statistics.median(cpu)/b_cpu:.2f}x · "
          f"p50 {statistics.median(r['p50_ms'] for r in runs):.1f} ms")
PY
