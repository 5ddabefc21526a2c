# pg.sh: a throwaway PostgreSQL cluster in one directory, shared by with-postgres.sh and lab.sh
# (both source it; it defines functions only and changes no shell options). The cluster (newest
# /usr/lib/postgresql/*/bin) listens only on a Unix socket in DIR, has a database "rampart", and
# trusts every local connection. Layout: DIR/data, DIR/server.log, DIR/initdb.log, the socket
# DIR/.s.PGSQL.5432.
#
#   pg_cluster_find        find the server binaries; sets PG_CLUSTER_BIN and PG_CLUSTER_AS_OWNER
#                          (as root the server runs as the postgres user: initdb refuses root)
#   pg_cluster_init DIR    initdb in the existing directory DIR (made 0755, owned by the server)
#   pg_cluster_start DIR   start, wait until it accepts connections, create database "rampart"
#   pg_cluster_stop DIR    fast shutdown, waiting for it (up to 30 s)
#   pg_cluster_pid DIR     PID of the postmaster, if its pid file is there
#   pg_cluster_url DIR     postgresql:///rampart?host=DIR&user=postgres
# Each returns non-zero on failure with the reason in PG_CLUSTER_WHY (after printing a log that
# explains it, if any, on stderr); the caller decides between skip and failure.
# PG_CLUSTER_WRAP: optional command prefix for the server's processes (the lab runs them with
# `ip netns exec NS` so that they live in its network namespace).

# shellcheck shell=bash
# Public state, read by the scripts that source this file.
# shellcheck disable=SC2034
PG_CLUSTER_BIN=""
PG_CLUSTER_AS_OWNER=()
PG_CLUSTER_WRAP=()
PG_CLUSTER_WHY=""

pg_cluster_find() {
  local dir tool
  PG_CLUSTER_BIN=""
  PG_CLUSTER_AS_OWNER=()
  for dir in /usr/lib/postgresql/*/bin; do  # pick the newest major version
    [[ -x $dir/initdb && -x $dir/pg_ctl && -x $dir/postgres ]] || continue
    if [[ -z $PG_CLUSTER_BIN ]] ||
      (($(basename "$(dirname "$dir")") > $(basename "$(dirname "$PG_CLUSTER_BIN")"))); then
      PG_CLUSTER_BIN=$dir
    fi
  done
  if [[ -z $PG_CLUSTER_BIN ]]; then
    PG_CLUSTER_WHY="no PostgreSQL server binaries in /usr/lib/postgresql/*/bin"
    return 1
  fi
  for tool in createdb pg_isready; do
    if [[ ! -x $PG_CLUSTER_BIN/$tool ]]; then
      PG_CLUSTER_WHY="$PG_CLUSTER_BIN/$tool is missing"
      return 1
    fi
  done
  if [[ $(id -u) == 0 ]]; then
    if ! id postgres >/dev/null 2>&1; then
      PG_CLUSTER_WHY="running as root but there is no 'postgres' user"
      return 1
    fi
    if ! command -v runuser >/dev/null 2>&1; then
      PG_CLUSTER_WHY="running as root but runuser is missing"
      return 1
    fi
    PG_CLUSTER_AS_OWNER=(runuser -u postgres --)
  fi
  return 0
}

# Runs a server-side tool as the cluster owner, from a directory that owner can read.
_pg_cluster_as_owner() {
  local dir=$1
  shift
  (cd "$dir" && "${PG_CLUSTER_WRAP[@]}" "${PG_CLUSTER_AS_OWNER[@]}" "$@")
}

pg_cluster_init() {
  local dir=${1:?usage: pg_cluster_init DIR}
  chmod 0755 "$dir"  # clients of any user must reach the socket; the data dir itself is 0700
  if ((${#PG_CLUSTER_AS_OWNER[@]} > 0)); then chown postgres: "$dir"; fi
  # The bootstrap superuser is "postgres" whoever runs this; trust auth on the local socket only.
  if ! _pg_cluster_as_owner "$dir" "$PG_CLUSTER_BIN/initdb" -D "$dir/data" -U postgres \
    --auth=trust -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    PG_CLUSTER_WHY="initdb failed"
    return 1
  fi
}

pg_cluster_start() {
  local dir=${1:?usage: pg_cluster_start DIR}
  # pg_ctl -w returns once the server accepts connections (or fails after -t seconds).
  if ! _pg_cluster_as_owner "$dir" "$PG_CLUSTER_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" \
    -w -t 60 -o "-c listen_addresses='' -c unix_socket_directories='$dir' -c fsync=off" \
    start >/dev/null; then
    cat "$dir/server.log" >&2
    PG_CLUSTER_WHY="the server did not start"
    return 1
  fi
  if ! "$PG_CLUSTER_BIN/pg_isready" -q -h "$dir" -U postgres -d postgres; then
    PG_CLUSTER_WHY="server not ready"
    return 1
  fi
  if ! "$PG_CLUSTER_BIN/createdb" -h "$dir" -U postgres rampart; then
    PG_CLUSTER_WHY="createdb failed"
    return 1
  fi
}

pg_cluster_stop() {
  local dir=${1:?usage: pg_cluster_stop DIR}
  if ! _pg_cluster_as_owner "$dir" "$PG_CLUSTER_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 \
    stop >/dev/null 2>&1; then
    PG_CLUSTER_WHY="pg_ctl stop failed; see $dir/server.log"
    return 1
  fi
}

pg_cluster_pid() {
  local dir=${1:?usage: pg_cluster_pid DIR} pid=""
  { read -r pid <"$dir/data/postmaster.pid"; } 2>/dev/null || true
  [[ $pid =~ ^[0-9]+$ ]] && printf '%s\n' "$pid"
  return 0
}

pg_cluster_url() {
  printf 'postgresql:///rampart?host=%s&user=postgres\n' "${1:?usage: pg_cluster_url DIR}"
}
