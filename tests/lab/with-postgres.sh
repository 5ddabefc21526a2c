#!/bin/bash
# with-postgres.sh CMD [ARGS...]: runs CMD against a throwaway PostgreSQL cluster and returns
# CMD's exit status. The cluster (newest /usr/lib/postgresql/*/bin) lives in a fresh temp dir,
# listens only on a Unix socket there, has a database "rampart", and is stopped and deleted on
# every exit path. CMD sees RAMPART_PG_URL=postgresql:///rampart?host=<dir>&user=postgres.
# Exit 77 (skip) when PostgreSQL is missing, 1 instead under RAMPART_REQUIRE_INTEGRATION=1.
set -euo pipefail

skip() {
  if [[ ${RAMPART_REQUIRE_INTEGRATION:-0} == 1 ]]; then
    echo "with-postgres: cannot run: $* (RAMPART_REQUIRE_INTEGRATION=1)" >&2
    exit 1
  fi
  echo "with-postgres: skip: $*" >&2
  exit 77
}

(($# > 0)) || { echo "usage: with-postgres.sh CMD [ARGS...]" >&2; exit 2; }

bindir=""
for dir in /usr/lib/postgresql/*/bin; do  # pick the newest major version
  [[ -x $dir/initdb && -x $dir/pg_ctl && -x $dir/postgres ]] || continue
  if [[ -z $bindir ]] || (($(basename "$(dirname "$dir")") > $(basename "$(dirname "$bindir")"))); then
    bindir=$dir
  fi
done
[[ -n $bindir ]] || skip "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin"
for tool in createdb pg_isready; do
  [[ -x $bindir/$tool ]] || skip "$bindir/$tool is missing"
done

# initdb refuses to run as root: as root, the server runs as the postgres system user.
as_owner=()
if [[ $(id -u) == 0 ]]; then
  id postgres >/dev/null 2>&1 || skip "running as root but there is no 'postgres' user"
  command -v runuser >/dev/null 2>&1 || skip "running as root but runuser is missing"
  as_owner=(runuser -u postgres --)
fi

PGTMP=$(mktemp -d /tmp/rampart-pg.XXXXXX)
chmod 0755 "$PGTMP"  # clients of any user must reach the socket; the data dir itself is 0700
[[ ${#as_owner[@]} -eq 0 ]] || chown postgres: "$PGTMP"
started=""
child=""

# shellcheck disable=SC2317  # only ever called by the trap
cleanup() {
  local rc=$?
  set +e
  if [[ -n $child ]] && kill -0 "$child" 2>/dev/null; then
    kill -TERM "$child" 2>/dev/null
    wait "$child" 2>/dev/null
  fi
  if [[ -n $started ]]; then
    (cd "$PGTMP" && "${as_owner[@]}" "$bindir/pg_ctl" -D "$PGTMP/data" -m fast -w -t 30 stop) >/dev/null 2>&1 ||
      echo "with-postgres: pg_ctl stop failed; see $PGTMP/server.log" >&2
  fi
  if [[ ${RAMPART_LAB_KEEP:-0} == 1 ]]; then
    echo "with-postgres: kept $PGTMP (RAMPART_LAB_KEEP=1)" >&2
  else
    rm -rf -- "$PGTMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs a server-side tool as the cluster owner, from a directory that owner can read.
as_pg() { (cd "$PGTMP" && "${as_owner[@]}" "$@"); }

# The bootstrap superuser is "postgres" whoever runs this; trust auth on the local socket only.
as_pg "$bindir/initdb" -D "$PGTMP/data" -U postgres --auth=trust -E UTF8 --locale=C --no-sync \
  >"$PGTMP/initdb.log" 2>&1 || { cat "$PGTMP/initdb.log" >&2; echo "with-postgres: initdb failed" >&2; exit 1; }
started=1
# pg_ctl -w returns once the server accepts connections (or fails after -t seconds).
as_pg "$bindir/pg_ctl" -D "$PGTMP/data" -l "$PGTMP/server.log" -w -t 60 \
  -o "-c listen_addresses='' -c unix_socket_directories='$PGTMP' -c fsync=off" start >/dev/null ||
  { cat "$PGTMP/server.log" >&2; echo "with-postgres: the server did not start" >&2; exit 1; }
"$bindir/pg_isready" -q -h "$PGTMP" -U postgres -d postgres ||
  { echo "with-postgres: server not ready" >&2; exit 1; }
"$bindir/createdb" -h "$PGTMP" -U postgres rampart || { echo "with-postgres: createdb failed" >&2; exit 1; }

export RAMPART_PG_URL="postgresql:///rampart?host=$PGTMP&user=postgres"
# CMD runs in the background so that a signal to this script interrupts `wait` at once (a
# foreground CMD would delay the trap until it finished); cleanup passes the signal on.
# `<&0` keeps stdin, which a background job would otherwise get as /dev/null.
"$@" <&0 &
child=$!
set +e
wait "$child"
rc=$?
child=""
exit "$rc"
