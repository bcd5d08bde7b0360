#!/usr/bin/env bash
# Result checks under load (docs/benchmarks.md, "Result checks"): loadgen with checks
# off (one owner's trusted workers) against checks on (workers spread over 10 owners,
# untrusted, each starting with a record of STREAK confirmed results in a row), in
# ROUNDS interleaved rounds in one session, so the ratio is measured on one machine
# at one time. Prints each run's summary and the medians.
# Usage: scripts/bench-validation.sh [target/release]   (ROUNDS=3 JOBS=20000)
set -euo pipefail
DIR=${1:-target/release}
ROUNDS=${ROUNDS:-3}; JOBS=${JOBS:-20000}
LOADGEN="$DIR/examples/loadgen"
[ -x "$LOADGEN" ] || { echo "build first: cargo build --release -p gridx-server --bins --examples"; exit 2; }
OUT=$(mktemp); trap 'rm -f "$OUT"' EXIT
run() {
  local label=$1; shift
  local text
  text=$("$LOADGEN" --workers 200 --jobs "$JOBS" --users 10 --concurrency 64 "$@" 2>/dev/null)
  local rate runs cpu
  rate=$(grep -oP 'end to end\s+\K[0-9]+' <<<"$text")
  runs=$(grep -oP '[0-9.]+(?= runs per accepted job)' <<<"$text")
  cpu=$(grep -oP 'coordinator\s+\K[0-9.]+(?= CPU-s)' <<<"$text")
  grep -q '^ledger ok' <<<"$text" || { echo "$label: ledger verify failed"; echo "$text"; exit 1; }
  echo "$label jobs/s=$rate runs/job=$runs cpu_us/job=$(python3 -c "print(round($cpu/$JOBS*1e6))")" | tee -a "$OUT"
}
for round in $(seq "$ROUNDS"); do
  echo "--- round $round"
  run off
  run on-streak-200 --owners 10 --streak 200
  run on-streak-100 --owners 10 --streak 100
  run on-new --owners 10 --streak 0
done
python3 - "$OUT" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    label, *fields = line.split()
    rows[label].append({k: float(v) for k, v in (f.split('=') for f in fields)})
base = statistics.median(r['jobs/s'] for r in rows['off'])
print("\nmedians (min-max) over", len(rows['off']), "rounds")
for label, runs in rows.items():
    rate = [r['jobs/s'] for r in runs]; per = [r['runs/job'] for r in runs]; cpu = [r['cpu_us/job'] for r in runs]
    print(f"{label:14} {statistics.median(rate):6.0f} jobs/s ({min(rate):.0f}-{max(rate):.0f}) "
          f"= {statistics.median(rate)/base:.2f}x off · {statistics.median(per):.3f} runs/job "
          f"({min(per):.3f}-{max(per):.3f}) · {statistics.median(cpu):.0f} us CPU/job")
PY
