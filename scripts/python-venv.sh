#!/usr/bin/env bash
# Makes a Python virtualenv at DIR with PACKAGES installed (pip), for the
# tools the tests run: the S3 server (moto), independent gRPC clients
# (grpcio). Installs Debian's python3-venv when running as root and it is
# missing. Does nothing when DIR already has every package.
# Usage: scripts/python-venv.sh DIR PACKAGE...
set -euo pipefail
venv=$1
shift
if [ ! -x "$venv/bin/pip" ]; then
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    # Debian's python3 needs its venv module installed separately.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      rm -rf "$venv"
      python3 -m venv "$venv"
    else
      echo "python3 -m venv failed: install python3-venv" >&2
      exit 1
    fi
  fi
fi
"$venv/bin/pip" install -q "$@"
