#!/usr/bin/env bash
# The coordinator on PostgreSQL against SQLite (docs/benchmarks.md, "PostgreSQL"):
# loadgen on a temporary SQLite store and on a fresh database of a throwaway
# PostgreSQL cluster (initdb in a temporary directory, fsync and synchronous_commit
# on, as SQLite runs at synchronous=FULL), in ROUNDS interleaved rounds in one
# session. For PostgreSQL it also measures the CPU of the database's own processes
# during the run, since the coordinator's CPU alone would hide the work moved there.
# Usage: scripts/bench-postgres.sh [target/release]
#        (ROUNDS=3 JOBS=20000 WORKERS=1000 CONCURRENCY=64; RATE=N for the latency at a
#        fixed submit rate)
set -euo pipefail
DIR=${1:-target/release}
ROUNDS=${ROUNDS:-3}; JOBS=${JOBS:-20000}; WORKERS=${WORKERS:-1000}
CONCURRENCY=${CONCURRENCY:-64}; RATE=${RATE:-0}
LOADGEN="$DIR/examples/loadgen"
[ -x "$LOADGEN" ] || { echo "build first: cargo build --release -p gridx-server --bins --examples"; exit 2; }
PGBIN=$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
[ -x "$PGBIN/initdb" ] || { echo "no PostgreSQL server: run .ci/install-deps"; exit 2; }

WORK=$(mktemp -d); OUT="$WORK/runs"
as_owner() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown 65534:65534 "$WORK"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_owner "$PGBIN/initdb" -D "$WORK/data" -U gridx --auth=trust -E UTF8 --locale=C >/dev/null
as_owner "$PGBIN/postgres" -D "$WORK/data" -p "$PORT" -c listen_addresses=127.0.0.1 \
  -k "$WORK" -c max_connections=200 >"$WORK/postgres.log" 2>&1 &
LAUNCHER=$!
trap 'kill -9 $LAUNCHER $PG 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" && break; sleep 0.1; done
# The postmaster's own pid (the background job is the shell running setpriv): the
# backends serving the coordinator are its children.
PG=$(head -1 "$WORK/data/postmaster.pid")

# CPU seconds (user + system) of the postmaster and all its children, living and
# reaped (cutime/cstime count the backends of connections that ended).
pg_cpu() {
  python3 - "$PG" <<'PY'
import os, sys
tick = os.sysconf("SC_CLK_TCK"); root = int(sys.argv[1]); total = 0
def stat(pid):
    with open(f"/proc/{pid}/stat") as f: return f.read().rsplit(")", 1)[1].split()
for pid in os.listdir("/proc"):
    if not pid.isdigit(): continue
    try: s = stat(pid)
    except OSError: continue
    if int(pid) == root or int(s[1]) == root:
        total += int(s[11]) + int(s[12]) + (int(s[13]) + int(s[14]) if int(pid) == root else 0)
print(total / tick)
PY
}

run() {
  local label=$1; shift
  local text before after db_cpu=0
  before=$(pg_cpu)
  text=$("$LOADGEN" --workers "$WORKERS" --slots 4 --jobs "$JOBS" --users 10 \
    --concurrency "$CONCURRENCY" --rate "$RATE" "$@" 2>/dev/null)
  after=$(pg_cpu)
  [ "$label" = postgres ] && db_cpu=$(python3 -c "print($after - $before)")
  local rate cpu p50 p99
  rate=$(grep -oP 'end to end\s+\K[0-9]+' <<<"$text")
  cpu=$(grep -oP 'coordinator\s+\K[0-9.]+(?= CPU-s)' <<<"$text")
  p50=$(grep -oP 'p50 \K[0-9.]+' <<<"$text")
  p99=$(grep -oP 'p99 \K[0-9.]+' <<<"$text")
  grep -q '^ledger ok' <<<"$text" || { echo "$label: ledger verify failed"; echo "$text"; exit 1; }
  echo "$label jobs/s=$rate cpu_us/job=$(python3 -c "print(round($cpu/$JOBS*1e6))") db_cpu_us/job=$(python3 -c "print(round($db_cpu/$JOBS*1e6))") p50_ms=$p50 p99_ms=$p99" | tee -a "$OUT"
}

for round in $(seq "$ROUNDS"); do
  echo "--- round $round"
  run sqlite
  "$PGBIN/psql" -q -h 127.0.0.1 -p "$PORT" -U gridx postgres -c "CREATE DATABASE bench$round"
  run postgres --store "postgres://gridx@127.0.0.1:$PORT/bench$round"
done
python3 - "$OUT" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    label, *fields = line.split()
    rows[label].append({k: float(v) for k, v in (f.split('=') for f in fields)})
base = rows['sqlite']
print("\nmedians (min-max) over", len(base), "rounds")
b_rate = statistics.median(r['jobs/s'] for r in base)
b_cpu = statistics.median(r['cpu_us/job'] for r in base)
for label, runs in rows.items():
    med = lambda k: statistics.median(r[k] for r in runs)
    rate = [r['jobs/s'] for r in runs]
    print(f"{label:9} {med('jobs/s'):6.0f} jobs/s ({min(rate):.0f}-{max(rate):.0f}) = "
          f"{med('jobs/s')/b_rate:.2f}x SQLite · coordinator {med('cpu_us/job'):.0f} us CPU/job "
          f"= {med('cpu_us/job')/b_cpu:.2f}x · database {med('db_cpu_us/job'):.0f} us/job · "
          f"p50 {med('p50_ms'):.1f} ms · p99 {med('p99_ms'):.1f} ms")
PY
