#!/usr/bin/env bash
# Starts a throwaway PostgreSQL on 127.0.0.1:$PGPORT with its files under
# $PGDIR, installing Debian's `postgresql` package first if it is missing
# (needs root). The server runs as the `postgres` user; it refuses root.
# Prints the connection URL of database `streamhouse`.
#
# TLS is on, with certificates made here in $PGDIR/tls by a throwaway CA
# (ca.pem; other-ca.pem signed nothing the server has): the server's
# (server.pem, for localhost and 127.0.0.1) and a client's (client.pem and
# client.key, for the role streamhouse_cert). Plaintext connections stay
# open to every role but two, both superusers: streamhouse_tls must use TLS,
# streamhouse_cert must use TLS and present a client certificate.
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
TLS=$PGDIR/tls
mkdir -p "$TLS"
ca() { # name, subject
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=$2" -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$TLS/$1.key" -out "$TLS/$1.pem" 2>/dev/null
}
leaf() { # name, common name, extensions
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" \
    -keyout "$TLS/$1.key" -out "$TLS/$1.csr" 2>/dev/null
  printf '%b' "$3" > "$TLS/$1.ext"
  openssl x509 -req -in "$TLS/$1.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" \
    -CAcreateserial -days 3650 -extfile "$TLS/$1.ext" -out "$TLS/$1.pem" 2>/dev/null
}
ca ca "StreamHouse test PostgreSQL CA"
ca other-ca "StreamHouse test other CA"
leaf server localhost 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n'
leaf client streamhouse_cert 'extendedKeyUsage=clientAuth\n'
chmod 600 "$TLS"/*.key
cat >> "$PGDIR/data/postgresql.conf" <<EOF
ssl = on
ssl_cert_file = '$TLS/server.pem'
ssl_key_file = '$TLS/server.key'
ssl_ca_file = '$TLS/ca.pem'
EOF
# The first matching line wins: these go before initdb's "trust" lines.
{
  printf 'hostssl all streamhouse_tls 127.0.0.1/32 trust\n'
  printf 'hostnossl all streamhouse_tls 127.0.0.1/32 reject\n'
  printf 'hostssl all streamhouse_cert 127.0.0.1/32 cert\n'
  printf 'hostnossl all streamhouse_cert 127.0.0.1/32 reject\n'
  cat "$PGDIR/data/pg_hba.conf"
} > "$PGDIR/pg_hba.conf" && mv "$PGDIR/pg_hba.conf" "$PGDIR/data/pg_hba.conf"
if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$TLS" "$PGDIR/data"; fi
as_pg "$BIN/pg_ctl -D $PGDIR/data -o '-p $PGPORT -k $PGDIR -c listen_addresses=127.0.0.1' -l $PGDIR/log -w start >/dev/null"
as_pg "$BIN/psql -h 127.0.0.1 -p $PGPORT -U postgres -qc 'CREATE DATABASE streamhouse'"
for role in streamhouse_tls streamhouse_cert; do
  as_pg "$BIN/psql -h 127.0.0.1 -p $PGPORT -U postgres -qc 'CREATE ROLE $role LOGIN SUPERUSER'"
done
echo "postgres://postgres@127.0.0.1:$PGPORT/streamhouse"
