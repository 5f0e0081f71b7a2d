#!/usr/bin/env bash
# Starts a throwaway S3 server (moto, in memory) on 127.0.0.1:$S3_PORT for the
# tests and creates the bucket $S3_BUCKET. Installs moto into a virtualenv at
# $MOTO_VENV on first use. Writes the server's PID to $S3_PIDFILE.
# Usage: scripts/s3-moto.sh   (prints nothing on success)
set -euo pipefail
S3_PORT=${S3_PORT:-9400}
S3_BUCKET=${S3_BUCKET:-streamhouse-test}
MOTO_VENV=${MOTO_VENV:-${TMPDIR:-/tmp}/streamhouse-moto-venv}
S3_PIDFILE=${S3_PIDFILE:-${TMPDIR:-/tmp}/streamhouse-moto.pid}
S3_LOG=${S3_LOG:-${TMPDIR:-/tmp}/streamhouse-moto.log}
if [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
  "$(dirname "$0")/python-venv.sh" "$MOTO_VENV" 'moto[server]==5.2.5'
fi
"$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" >"$S3_LOG" 2>&1 &
echo $! >"$S3_PIDFILE"
for _ in $(seq 200); do
  if curl -sf -o /dev/null "http://127.0.0.1:$S3_PORT/"; then
    curl -sf -o /dev/null -X PUT "http://127.0.0.1:$S3_PORT/$S3_BUCKET"
    exit 0
  fi
  sleep 0.1
done
echo "moto did not answer on 127.0.0.1:$S3_PORT (log: $S3_LOG)" >&2
exit 1
