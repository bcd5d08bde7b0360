#!/usr/bin/env bash
# Idle CPU of a running dashboard (target: under 1% of one core).
# A coordinator and a bubblewrap worker run as their own processes; the dashboard runs
# in tmux at 160x48; after the jobs settle, its CPU time is read from /proc over
# SECONDS_TO_MEASURE (default 60). Usage: scripts/bench-idle-cpu.sh [target/release]
set -euo pipefail
DIR=${1:-target/release}
MEASURE=${SECONDS_TO_MEASURE:-60}
SERVER="$DIR/gridx-server"; TUI="$DIR/gridx-tui"
[ -x "$SERVER" ] && [ -x "$TUI" ] || { echo "build first: cargo build --release --workspace"; exit 2; }
DATA=$(mktemp -d); PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() { tmux kill-session -t gridx-idle 2>/dev/null || true; kill "$SRV" "$WRK" 2>/dev/null || true; rm -rf "$DATA"; }
trap cleanup EXIT
TOKEN=$("$SERVER" --data-dir "$DATA" user add idle --credits 10 2>/dev/null)
WTOKEN=$("$SERVER" --data-dir "$DATA" worker add --owner idle --name idle-worker 2>/dev/null)
GRIDX_LOG=warn "$SERVER" --data-dir "$DATA" serve --listen "127.0.0.1:$PORT" 2>/dev/null & SRV=$!
sleep 1
GRIDX_LOG=warn "$TUI" worker --headless --server "http://127.0.0.1:$PORT" --token "$WTOKEN" --executor bubblewrap --work-dir "$DATA/work" 2>/dev/null & WRK=$!
sleep 1
"$TUI" --server "http://127.0.0.1:$PORT" --token "$TOKEN" submit --lang python --code 'print(1)' --wait >/dev/null
tmux new-session -d -s gridx-idle -x 160 -y 48 "$TUI --server http://127.0.0.1:$PORT --token $TOKEN"
sleep 5
PID=$(pgrep -f "$TUI --server http://127.0.0.1:$PORT --token" | head -1)
HZ=$(getconf CLK_TCK)
read -r U1 S1 < <(awk '{print $14, $15}' "/proc/$PID/stat")
sleep "$MEASURE"
read -r U2 S2 < <(awk '{print $14, $15}' "/proc/$PID/stat")
python3 -c "t=(($U2+$S2)-($U1+$S1))/$HZ; print(f'dashboard idle: {t:.3f} CPU-s over $MEASURE s = {100*t/$MEASURE:.2f}% of one core')"
