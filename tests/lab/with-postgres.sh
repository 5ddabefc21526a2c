#!/bin/bash
# with-postgres.sh CMD [ARGS...]: runs CMD against a throwaway PostgreSQL cluster and returns
# CMD's exit status. The cluster (newest /usr/lib/postgresql/*/bin; see pg.sh, shared with the
# lab's lab_pg_start) lives in a fresh temp dir, listens only on a Unix socket there, has a
# database "rampart", and is stopped and deleted on every exit path. CMD sees
# RAMPART_PG_URL=postgresql:///rampart?host=<dir>&user=postgres.
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

# shellcheck source=pg.sh
source "$(dirname "${BASH_SOURCE[0]}")/pg.sh"
pg_cluster_find || skip "$PG_CLUSTER_WHY"

PGTMP=$(mktemp -d /tmp/rampart-pg.XXXXXX)
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
    pg_cluster_stop "$PGTMP" || echo "with-postgres: $PG_CLUSTER_WHY" >&2
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

pg_cluster_init "$PGTMP" || { echo "with-postgres: $PG_CLUSTER_WHY" >&2; exit 1; }
started=1
pg_cluster_start "$PGTMP" || { echo "with-postgres: $PG_CLUSTER_WHY" >&2; exit 1; }

RAMPART_PG_URL=$(pg_cluster_url "$PGTMP")
export RAMPART_PG_URL
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
