# Sourced by scripts/test.sh: a throw-away PostgreSQL cluster for the suite.
#   pg_start PORT   installs PostgreSQL if missing, starts a private cluster on
#                   127.0.0.1:PORT, creates database chartwire_test and exports
#                   CHARTWIRE_TEST_DATABASE_URL and CHARTWIRE_TEST_PGBIN
#   pg_stop         stops the cluster and removes its files
# initdb refuses to run as root, so the cluster belongs to the `postgres` user
# when the suite runs as root.

pg_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}

pg_as() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_start() {
    local port=$1
    PGBIN=$(pg_bin)
    if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
        apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
        PGBIN=$(pg_bin)
    fi
    if [ "$(id -u)" = 0 ] && ! id -u postgres >/dev/null 2>&1; then
        useradd --system --no-create-home postgres
    fi
    PGROOT=$(mktemp -d -t chartwire-pg.XXXXXX)
    chmod 755 "$PGROOT"
    [ "$(id -u)" = 0 ] && chown postgres: "$PGROOT"
    pg_as "$PGBIN/initdb" -D "$PGROOT/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$PGROOT/initdb.log"
    # fsync stays on: the suite includes durability tests.
    pg_as "$PGBIN/pg_ctl" -D "$PGROOT/data" -l "$PGROOT/server.log" -w start \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $PGROOT -c max_connections=400" >/dev/null
    pg_as "$PGBIN/createdb" -h 127.0.0.1 -p "$port" -U postgres chartwire_test
    export CHARTWIRE_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/chartwire_test"
    export CHARTWIRE_TEST_PGBIN="$PGBIN"
}

pg_stop() {
    if [ -n "${PGROOT:-}" ] && [ -d "$PGROOT/data" ]; then
        pg_as "$PGBIN/pg_ctl" -D "$PGROOT/data" -m immediate -w stop >/dev/null 2>&1 || true
        rm -rf "$PGROOT"
    fi
}
