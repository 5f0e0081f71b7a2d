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
  if ! python3 -m venv "$MOTO_VENV" >/dev/null 2>&1; then
    # Debian's python3 needs its venv module installed separately.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      rm -rf "$MOTO_VENV"
      python3 -m venv "$MOTO_VENV"
    else
      echo "python3 -m venv failed: install python3-venv" >&2
      exit 1
    fi
  fi
  "$MOTO_VENV/bin/pip" install -q 'moto[server]==5.2.5'
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
