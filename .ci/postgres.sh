#!/usr/bin/env bash
# Start a throw-away PostgreSQL server for the tests and print the line that points them at it:
#     eval "$(bash .ci/postgres.sh)"      # sets LOOKALIKE_TEST_PG_URL
#     bash .ci/postgres.sh stop           # stops it again (optional; the data dir is temporary)
# Installs Debian's postgresql when missing (needs root), runs the server as the postgres user in
# a temp data dir on 127.0.0.1 (no systemd), creates a database. Logs go to stderr.
set -euo pipefail
PORT="${LOOKALIKE_PG_PORT:-54329}"
DB="${LOOKALIKE_PG_DB:-lookalike_test}"
STATE="${TMPDIR:-/tmp}/lookalike-pg-$PORT"

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1; }

if [[ "${1:-}" == "stop" ]]; then
    BIN="$(bindir)"
    [[ -d "$STATE/data" ]] && su postgres -s /bin/sh -c "'$BIN/pg_ctl' -D '$STATE/data' -m fast stop" >&2 || true
    rm -rf "$STATE"
    exit 0
fi

if [[ -z "$(bindir)" ]]; then
    echo "installing postgresql from Debian..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
fi
BIN="$(bindir)"
id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres

if ! "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
    rm -rf "$STATE"
    mkdir -p "$STATE"
    chown postgres: "$STATE"
    su postgres -s /bin/sh -c "'$BIN/initdb' -D '$STATE/data' --auth=trust -U postgres -E UTF8 \
        --no-locale" >&2
    su postgres -s /bin/sh -c "'$BIN/pg_ctl' -D '$STATE/data' -l '$STATE/log' -w -t 60 start \
        -o \"-c listen_addresses=127.0.0.1 -p $PORT -k '$STATE' -c fsync=off -c max_connections=200\"" >&2
fi
"$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$DB'" \
    | grep -q 1 || "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres "$DB"
echo "export LOOKALIKE_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:$PORT/$DB"
