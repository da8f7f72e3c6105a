# Sourced by .ci/run: starts a throwaway PostgreSQL cluster for the fleet
# journal tests and exports TOWER_LRO_PG (a libpq connection string). The
# cluster lives in a temporary directory, listens only on a unix socket
# there, runs as an unprivileged user (the server refuses to run as root)
# and is stopped and deleted when the calling shell exits.

pg_bindir() {
  local dir
  for dir in "$(pg_config --bindir 2>/dev/null || true)" /usr/lib/postgresql/*/bin /usr/local/bin /usr/bin; do
    if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
      echo "$dir"
      return 0
    fi
  done
  return 1
}

start_postgres() {
  local bindir
  if ! bindir=$(pg_bindir); then
    echo "PostgreSQL server binaries not found; installing postgresql-15 with apt-get" >&2
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null || true
    else
      sudo -n apt-get update -qq && sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null || true
    fi
    bindir=$(pg_bindir) || { echo "FATAL: no PostgreSQL server binaries (initdb, pg_ctl, postgres) and could not install them" >&2; exit 1; }
  fi
  PG_TMP=$(mktemp -d /tmp/tower-lro-pg.XXXXXX)
  local as=()
  if [ "$(id -u)" = 0 ]; then
    # initdb and postgres refuse to run as root: use an unprivileged user.
    local user=tower_lro_pg
    id "$user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
    chown "$user" "$PG_TMP"
    as=(runuser -u "$user" --)
  fi
  PG_AS=("${as[@]}")
  PG_CTL="$bindir/pg_ctl"
  trap stop_postgres EXIT
  "${as[@]}" "$bindir/initdb" -D "$PG_TMP/data" -U postgres -A trust --no-sync -E UTF8 >"$PG_TMP/initdb.log" 2>&1 \
    || { cat "$PG_TMP/initdb.log" >&2; echo "FATAL: initdb failed" >&2; exit 1; }
  "${as[@]}" "$PG_CTL" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -t 60 \
    -o "-k $PG_TMP -c listen_addresses= -c max_connections=200 -c fsync=off" start >/dev/null \
    || { cat "$PG_TMP/server.log" >&2; echo "FATAL: PostgreSQL did not start" >&2; exit 1; }
  export TOWER_LRO_PG="host=$PG_TMP user=postgres dbname=postgres"
  echo "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on unix socket $PG_TMP (TOWER_LRO_PG)"
}

stop_postgres() {
  if [ -n "${PG_TMP:-}" ] && [ -d "$PG_TMP/data" ]; then
    "${PG_AS[@]}" "$PG_CTL" -D "$PG_TMP/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  [ -n "${PG_TMP:-}" ] && rm -rf "$PG_TMP"
  PG_TMP=
}
