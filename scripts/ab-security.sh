#!/usr/bin/env bash
# A/B of the produce benchmarks with TLS and tokens off (A: plaintext) and
# on (B: `--secure`: TLS, `--auth required`, a user with a token and topic
# rules), alternating A1 B1 A2 B2 ... on the same release binaries, each run
# an embedded agent of 2 shards sharing the machine with the client, ack
# durable, 100-byte values. The floor is measured once at the start.
# Usage: scripts/ab-security.sh [PAIRS (default 3)] [OUT_DIR (default ./ab-security)]
# Prints one line per run; the JSON reports stay in OUT_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${1:-3}
OUT=${2:-./ab-security}
PERF=${STREAMHOUSE_PERF_BIN:-target/release/streamhouse-perf}
[ -x "$PERF" ] || { echo "$PERF missing: cargo build --release -p streamhouse-agent -p streamhouse-perf" >&2; exit 2; }
mkdir -p "$OUT"
"$PERF" floor --dir "$OUT"
rows=(
  "tput-b1000|throughput --api batch --batch-records 1000 --partitions 1"
  "tput-b100|throughput --api batch --batch-records 100 --partitions 1"
  "lat-record|latency"
  "lat-b100|latency --api batch --batch-records 100"
)
for row in "${rows[@]}"; do
  name=${row%%|*}
  args=${row#*|}
  for i in $(seq 1 "$PAIRS"); do
    for side in A B; do
      extra=""
      [ "$side" = B ] && extra="--secure"
      json="$OUT/$name-$side$i.json"
      # shellcheck disable=SC2086
      "$PERF" $args --embedded --no-floor --data-root "$OUT/data" --json "$json" $extra >/dev/null
      python3 - "$json" "$name" "$side$i" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:<11} {sys.argv[3]:<3} {j['settings']['security']:<10} "
      f"{j['records_per_s']:>12,.0f} rec/s  p50 {j['latency_ms']['p50']:.2f} ms  "
      f"p99 {j['latency_ms']['p99']:.2f} ms  agent {1e6 * j['agent_cpu_s'] / j['acked']:.2f} us/record")
EOF
    done
  done
done
