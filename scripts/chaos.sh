#!/usr/bin/env bash
# Runs `streamhouse-perf chaos` against a real PostgreSQL and a real S3
# server (moto), starting both with the project's scripts unless
# STREAMHOUSE_TEST_POSTGRES_URL / STREAMHOUSE_TEST_S3_ENDPOINT point at
# running ones, and stops what it started. Builds the perf tool and the
# agent (debug profile, like the test suite) unless STREAMHOUSE_PERF_BIN
# names a binary. Extra arguments go to the chaos run, e.g.
#   scripts/chaos.sh --duration 10m --seed 7
#   scripts/chaos.sh --duration 10m --seed 7 --agent-bin /path/to/streamhouse-agent
# See docs/RELIABILITY.md.
set -euo pipefail
cd "$(dirname "$0")/.."
started_s3=""
started_pg=""
chaos_pgdir=${TMPDIR:-/tmp}/streamhouse-chaos-pg
cleanup() {
  if [ -n "$started_s3" ]; then kill "$(cat "$S3_PIDFILE")" 2>/dev/null || true; fi
  if [ -n "$started_pg" ]; then PGDIR=$chaos_pgdir scripts/postgres.sh stop; fi
}
trap cleanup EXIT
if [ -z "${STREAMHOUSE_TEST_S3_ENDPOINT:-}" ]; then
  export S3_PORT=${S3_PORT:-9410} S3_BUCKET=${S3_BUCKET:-streamhouse-chaos}
  export S3_PIDFILE=${TMPDIR:-/tmp}/streamhouse-chaos-moto.pid
  export S3_LOG=${TMPDIR:-/tmp}/streamhouse-chaos-moto.log
  scripts/s3-moto.sh
  started_s3=1
  STREAMHOUSE_TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
  STREAMHOUSE_TEST_S3_BUCKET="$S3_BUCKET"
fi
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-streamhouse-test}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-streamhouse-test}
if [ -z "${STREAMHOUSE_TEST_POSTGRES_URL:-}" ]; then
  STREAMHOUSE_TEST_POSTGRES_URL=$(PGPORT=${PGPORT:-55442} PGDIR=$chaos_pgdir scripts/postgres.sh)
  started_pg=1
fi
if [ "$(id -u)" = 0 ] && ! command -v mkfs.ext4 >/dev/null && command -v apt-get >/dev/null; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends e2fsprogs >/dev/null
fi
perf=${STREAMHOUSE_PERF_BIN:-}
if [ -z "$perf" ]; then
  cargo build -q -p streamhouse-perf -p streamhouse-agent
  perf=target/debug/streamhouse-perf
fi
status=0
"$perf" chaos \
  --metadata "$STREAMHOUSE_TEST_POSTGRES_URL" \
  --object-store "s3://${STREAMHOUSE_TEST_S3_BUCKET:-streamhouse-test}?endpoint=$STREAMHOUSE_TEST_S3_ENDPOINT&region=us-east-1" \
  --data-root "${STREAMHOUSE_CHAOS_ROOT:-target/chaos}" \
  "$@" || status=$?
exit $status
