#!/usr/bin/env bash
# Run a command with a throwaway PostgreSQL for the tests: FASHIONREC_TEST_POSTGRES_URL names
# it while the command runs; the server and its folder go when it ends. The server listens on
# a Unix socket in its own folder only (no TCP port to collide with). It refuses to run as
# root, so as root it runs as the `postgres` user. Where no server can start, the command
# still runs and the PostgreSQL tests skip, saying why.
set -uo pipefail

bindir="$(pg_config --bindir 2>/dev/null || true)"
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
fi
folder="$(mktemp -d /tmp/fashionrec-pg.XXXXXX)"
as_owner=()
if [ "$(id -u)" = 0 ]; then
    chown postgres "$folder" 2>/dev/null && as_owner=(runuser -u postgres --)
fi

stop() {
    "${as_owner[@]}" "$bindir/pg_ctl" -D "$folder/data" -m immediate stop >/dev/null 2>&1
    rm -rf "$folder"
}

started=""
if [ -n "$bindir" ] && [ -x "$bindir/initdb" ] \
    && "${as_owner[@]}" "$bindir/initdb" -D "$folder/data" -U postgres -A trust \
        --locale=C -E UTF8 >"$folder/initdb.log" 2>&1 \
    && "${as_owner[@]}" "$bindir/pg_ctl" -D "$folder/data" -l "$folder/server.log" -w \
        -o "-c listen_addresses='' -k $folder -c fsync=off -c max_connections=200" \
        start >/dev/null 2>&1; then
    started=yes
    export FASHIONREC_TEST_POSTGRES_URL="postgresql://postgres@/postgres?host=$folder"
    trap stop EXIT
else
    reason="no PostgreSQL server binaries found"
    [ -n "$bindir" ] && reason="PostgreSQL at $bindir did not start ($(tail -n 1 "$folder"/*.log 2>/dev/null))"
    echo "with-postgres: $reason; the PostgreSQL tests will be skipped" >&2
    export FASHIONREC_TEST_POSTGRES_SKIP="$reason"
    rm -rf "$folder"
fi
"$@"
