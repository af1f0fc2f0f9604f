#!/usr/bin/env bash
# A private PostgreSQL cluster for the soak workloads, with the server's stock settings (autovacuum on),
# on 127.0.0.1 only. The CI server (/etc/postgresql/15/main/conf.d/90-ci.conf) runs with autovacuum off,
# which is right for tests and wrong for a bloat-and-vacuum soak.
#
#   bash bench/soak-pg.sh start     # initdb (first time) and start on port ${SOAK_PG_PORT:-5499}
#   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5499/postgres npm run bench -- --workloads=soak-xmin ...
#   bash bench/soak-pg.sh stop      # stop it; `bash bench/soak-pg.sh remove` also deletes its data directory
set -euo pipefail
port="${SOAK_PG_PORT:-5499}"
dir="${SOAK_PG_DIR:-/tmp/cuckmq-soak-pg}"
bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "${1:-}" in
  start)
    if [ ! -f "$dir/PG_VERSION" ]; then
      mkdir -p "$dir" && { [ "$(id -u)" != 0 ] || chown postgres "$dir"; }
      as_postgres "$bin/initdb" -D "$dir" -U postgres --auth=trust >/dev/null
      # stock settings, apart from where it listens, how many connections, and fsync/shared_buffers as on the CI server
      printf "listen_addresses = '127.0.0.1'\nport = %s\nmax_connections = 300\nshared_buffers = 128MB\nunix_socket_directories = '%s'\n" "$port" "$dir" >>"$dir/postgresql.conf"
    fi
    as_postgres "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w start >/dev/null
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  stop) as_postgres "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null ;;
  remove)
    as_postgres "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  *) echo "usage: bash bench/soak-pg.sh start|stop|remove" >&2; exit 2 ;;
esac
