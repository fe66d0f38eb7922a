#!/usr/bin/env bash
# Runs a command with a private PostgreSQL cluster: made in a temporary folder, listening on
# 127.0.0.1 only (run it inside the loopback-only namespace, beside the tests), and removed
# afterwards whatever happens. The command sees OSW_TEST_POSTGRES=postgres://…, which the
# orchestrator's database and web-role tests use instead of SQLite.
#
#   scripts/with-postgres.sh cargo test -p orchestrator --features postgres
#
# Needs PostgreSQL's server binaries (Debian's postgresql package). As root, the cluster runs
# as the `postgres` user the package creates (initdb refuses root).
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [[ -z $bin || ! -x $bin/initdb ]]; then
    echo "with-postgres: no PostgreSQL server binaries (apt-get install postgresql)" >&2
    exit 1
fi
port=${OSW_TEST_POSTGRES_PORT:-55432}
dir=$(mktemp -d /tmp/osw-postgres.XXXXXX)
as_owner=()
if [[ $(id -u) -eq 0 ]]; then
    chown postgres: "$dir"
    as_owner=(runuser -u postgres --)
fi
stop() {
    "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap stop EXIT
"${as_owner[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
"${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o \
    "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=off -c max_connections=200" \
    start >/dev/null
echo "with-postgres: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
export OSW_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/postgres"
"$@"
