#!/bin/sh
# Runs `gridx-server ledger verify` and writes its result for node_exporter's textfile
# collector, for the GridxLedgerVerify* alerts of gridx-alerts.yml. The coordinator
# exports no ledger check itself (verifying reads the whole ledger). From cron, as the
# user that owns the store, e.g. /etc/cron.d/gridx-ledger-verify:
#   17 3 * * * gridx /usr/local/bin/gridx-ledger-verify.sh /var/lib/gridx /var/lib/prometheus/node-exporter
# Usage: gridx-ledger-verify.sh DATA_DIR TEXTFILE_DIR
set -u
data_dir=${1:?usage: gridx-ledger-verify.sh DATA_DIR TEXTFILE_DIR}
out_dir=${2:?usage: gridx-ledger-verify.sh DATA_DIR TEXTFILE_DIR}
bin=${GRIDX_SERVER_BIN:-/usr/local/bin/gridx-server}
# Exit 0: the books balance; 1: violations (listed on stdout, kept in the log).
if "$bin" --data-dir "$data_dir" ledger verify; then ok=1; else ok=0; fi
tmp="$out_dir/gridx_ledger.prom.$$"
# Written aside and renamed, so the collector never reads half a file.
cat > "$tmp" <<METRICS
# HELP gridx_ledger_verify_ok 1 if the last gridx-server ledger verify passed, 0 if not.
# TYPE gridx_ledger_verify_ok gauge
gridx_ledger_verify_ok $ok
# HELP gridx_ledger_verify_last_run_timestamp_seconds When gridx-server ledger verify last ran.
# TYPE gridx_ledger_verify_last_run_timestamp_seconds gauge
gridx_ledger_verify_last_run_timestamp_seconds $(date +%s)
METRICS
chmod 0644 "$tmp" && mv "$tmp" "$out_dir/gridx_ledger.prom"
