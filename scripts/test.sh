#!/usr/bin/env bash
# Runs the whole StreamHouse test suite: unit, property, integration and
# crash tests against real agent processes, a real S3 server and a real
# PostgreSQL. Starts both (scripts/s3-moto.sh, scripts/postgres.sh) unless
# STREAMHOUSE_TEST_S3_ENDPOINT / STREAMHOUSE_TEST_POSTGRES_URL point at
# running ones, and stops what it started.
# Then a short seeded chaos run (scripts/chaos.sh).
# Usage: scripts/test.sh [cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."
started_s3=""
started_pg=""
cleanup() {
  if [ -n "$started_s3" ]; then kill "$(cat "$S3_PIDFILE")" 2>/dev/null || true; fi
  if [ -n "$started_pg" ]; then scripts/postgres.sh stop; fi
}
trap cleanup EXIT
if [ -z "${STREAMHOUSE_TEST_S3_ENDPOINT:-}" ]; then
  export S3_PORT=${S3_PORT:-9400} S3_BUCKET=${S3_BUCKET:-streamhouse-test}
  export S3_PIDFILE=${TMPDIR:-/tmp}/streamhouse-moto.pid
  scripts/s3-moto.sh
  started_s3=1
  export STREAMHOUSE_TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
  export STREAMHOUSE_TEST_S3_BUCKET="$S3_BUCKET"
  export STREAMHOUSE_TEST_S3_PIDFILE="$S3_PIDFILE"
fi
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-streamhouse-test}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-streamhouse-test}
if [ -z "${STREAMHOUSE_TEST_POSTGRES_URL:-}" ]; then
  export PGDIR=${PGDIR:-${TMPDIR:-/tmp}/streamhouse-pg}
  STREAMHOUSE_TEST_POSTGRES_URL=$(scripts/postgres.sh)
  export STREAMHOUSE_TEST_POSTGRES_URL
  # The CA and client certificate of the server's TLS (the metadata TLS tests).
  export STREAMHOUSE_TEST_POSTGRES_TLS_DIR="$PGDIR/tls"
  started_pg=1
fi
# The disk-full tests loop-mount a small ext4 (root only; skipped otherwise);
# the clock tests step agents' wall clocks with libfaketime; the metrics
# tests check a scrape with promtool and a real Prometheus server.
missing=""
command -v mkfs.ext4 >/dev/null || missing="$missing e2fsprogs"
command -v faketime >/dev/null || missing="$missing faketime"
command -v promtool >/dev/null || missing="$missing prometheus"
if [ -n "$missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq >/dev/null
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# An independent gRPC client (Python grpcio) for the interoperability tests.
if [ -z "${STREAMHOUSE_TEST_GRPCIO_PYTHON:-}" ]; then
  GRPCIO_VENV=${GRPCIO_VENV:-${TMPDIR:-/tmp}/streamhouse-grpcio-venv}
  if [ ! -x "$GRPCIO_VENV/bin/python" ] || ! "$GRPCIO_VENV/bin/python" -c 'import grpc_health' 2>/dev/null; then
    scripts/python-venv.sh "$GRPCIO_VENV" grpcio==1.85.4 grpcio-health-checking==1.85.1
  fi
  export STREAMHOUSE_TEST_GRPCIO_PYTHON="$GRPCIO_VENV/bin/python"
fi
# Seeds of the storage engine's simulated power losses (docs/RELIABILITY.md).
export STREAMHOUSE_POWER_LOSS_SEEDS=${STREAMHOUSE_POWER_LOSS_SEEDS:-256}
echo "== test.sh: servers and tools ready at ${SECONDS}s; building"
cargo build --workspace --all-targets --all-features
echo "== test.sh: built at ${SECONDS}s; testing"
cargo test --workspace --all-targets --all-features "$@"
echo "== test.sh: cargo tests passed at ${SECONDS}s"
if [ "$#" -eq 0 ]; then
  # The client's documentation examples and README (--all-targets runs no
  # doc tests), and the published crates package: every dependency has a
  # version, every file they build from is inside them.
  cargo test --doc -p streamhouse-client -p streamhouse-proto
  cargo package --no-verify --allow-dirty -q -p streamhouse-proto -p streamhouse-client
fi
# A short seeded chaos run against the same servers (docs/RELIABILITY.md):
# kills, pauses, reshards, handoffs, store faults, full disks and clock steps, checked
# against the model. Only for the whole suite (no cargo test arguments);
# STREAMHOUSE_SKIP_CHAOS=1 skips it. Every fault kind by default;
# STREAMHOUSE_CHAOS_FAULTS=kill,pause,... narrows it.
if [ "$#" -eq 0 ] && [ -z "${STREAMHOUSE_SKIP_CHAOS:-}" ]; then
  echo "== test.sh: chaos run from ${SECONDS}s"
  STREAMHOUSE_PERF_BIN=target/debug/streamhouse-perf scripts/chaos.sh \
    --duration "${STREAMHOUSE_CHAOS_DURATION:-150s}" --seed "${STREAMHOUSE_CHAOS_SEED:-1}" \
    --faults "${STREAMHOUSE_CHAOS_FAULTS:-kill,pause,reshard,term,leave,object,metadata,disk,clock}"
fi
