#!/usr/bin/env bash
# Starts a throwaway PostgreSQL on 127.0.0.1:$PGPORT with its files under
# $PGDIR, installing Debian's `postgresql` package first if it is missing
# (needs root). The server runs as the `postgres` user; it refuses root.
# Prints the connection URL of database `streamhouse`.
# Stop it with: scripts/postgres.sh stop
set -euo pipefail
PGPORT=${PGPORT:-55432}
PGDIR=${PGDIR:-${TMPDIR:-/tmp}/streamhouse-pg}
find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -c "$1"; else sh -c "$1"; fi; }
BIN=$(find_bin)
if [ "${1:-}" = stop ]; then
  [ -n "$BIN" ] && as_pg "$BIN/pg_ctl -D $PGDIR/data stop -m fast" >/dev/null 2>&1 || true
  exit 0
fi
if [ -z "$BIN" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "PostgreSQL is not installed; run as root or: apt-get install postgresql" >&2
    exit 1
  fi
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  BIN=$(find_bin)
fi
as_pg "$BIN/pg_ctl -D $PGDIR/data stop -m immediate" >/dev/null 2>&1 || true
rm -rf "$PGDIR"
mkdir -p "$PGDIR"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$PGDIR"
as_pg "$BIN/initdb -D $PGDIR/data -A trust -U postgres >/dev/null"
as_pg "$BIN/pg_ctl -D $PGDIR/data -o '-p $PGPORT -k $PGDIR -c listen_addresses=127.0.0.1' -l $PGDIR/log -w start >/dev/null"
as_pg "$BIN/psql -h 127.0.0.1 -p $PGPORT -U postgres -qc 'CREATE DATABASE streamhouse'"
echo "postgres://postgres@127.0.0.1:$PGPORT/streamhouse"
