# A throwaway PostgreSQL cluster for the tests: sourced by scripts/test.sh (and usable by hand). `pg_up DIR`
# creates a cluster in DIR (initdb, trust auth, loopback only), starts it on a free port and exports
# SWITCHBOARD_TEST_PG=postgres://postgres@127.0.0.1:PORT (no database: each test hub names its own, which the hub
# creates). `pg_down DIR` stops it. PostgreSQL refuses to run as root, so as root the cluster runs as `nobody`.

_pg_bin() {
  local d
  d=$(compgen -G '/usr/lib/postgresql/*/bin' | sort -V | tail -n 1)
  [ -n "$d" ] || { echo "pg.sh: no PostgreSQL under /usr/lib/postgresql (apt-get install postgresql)" >&2; return 1; }
  echo "$d"
}

# Runs a PostgreSQL tool as the cluster's owner.
_pg_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u nobody -- "$@"
  else
    "$@"
  fi
}

pg_up() {
  local dir="$1" bin port
  bin=$(_pg_bin) || return 1
  rm -rf "$dir"
  mkdir -p "$dir"
  [ "$(id -u)" -ne 0 ] || chown nobody "$dir"
  _pg_as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    return 1
  }
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # fsync stays on: the restart test counts on acknowledged commits surviving. max_connections covers the hubs a
  # parallel test run opens (each keeps a small pool).
  _pg_as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=1000 -c shared_buffers=64MB" >/dev/null || {
    cat "$dir/server.log" >&2
    return 1
  }
  export SWITCHBOARD_TEST_PG="postgres://postgres@127.0.0.1:$port"
  export SWITCHBOARD_TEST_PG_DATA="$dir/data"
  export SWITCHBOARD_TEST_PG_BIN="$bin"
}

pg_down() {
  local dir="$1" bin
  bin=$(_pg_bin) || return 1
  [ -d "$dir/data" ] && _pg_as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1
  rm -rf "$dir"
}

# An immediate stop (as a crash would) and a start with the same settings: what the restart test does under load.
pg_restart() {
  local dir="$1" bin
  bin=$(_pg_bin) || return 1
  _pg_as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 60 restart >/dev/null
}
