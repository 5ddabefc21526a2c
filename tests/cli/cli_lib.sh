# Shared by the tests/cli/*_test.sh scripts (sourced, not run): checks, the throwaway store for one
# engine (RAMPART_TEST_STORE=sqlite|pgsql; pgsql runs under tests/lab/with-postgres.sh, which sets
# RAMPART_PG_URL), and the verdict. A missing tool is a skip (77), a failure under
# RAMPART_REQUIRE_INTEGRATION=1 (STYLE.md section 7).

# cli_init NAME [TOOL...]: $bin, $engine, the work dir $work (removed at exit, after the
# script's own cli_cleanup_hook when it defines one), the failure count.
cli_init() {
  CLI_NAME=$1
  shift
  bin=${RAMPART_BIN:?RAMPART_BIN must point at the rampart binary}
  engine=${RAMPART_TEST_STORE:-sqlite}
  local tool
  for tool in "$@"; do
    if ! command -v "$tool" >/dev/null && ! [ -x "/usr/sbin/$tool" ]; then
      echo "$CLI_NAME: $tool is not installed" >&2
      [ "${RAMPART_REQUIRE_INTEGRATION:-0}" = 1 ] && exit 1
      exit 77
    fi
  done
  work=$(mktemp -d /tmp/rampart-cli-XXXXXX)
  trap _cli_exit EXIT
  failures=0
}
_cli_exit() {
  if declare -F cli_cleanup_hook >/dev/null; then cli_cleanup_hook; fi
  rm -rf "$work"
}

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
# expect CODE LABEL -- CMD...: runs CMD, keeps stdout/stderr in $out/$err, checks the exit code.
expect() {
  local want=$1 label=$2; shift 3
  "$@" >"$work/out" 2>"$work/err"
  local got=$?
  out=$(cat "$work/out"); err=$(cat "$work/err")
  if [ "$got" != "$want" ]; then
    fail "$label: exit $got, want $want; stdout: $out; stderr: $err"
    return 1
  fi
  return 0
}
contains() {  # contains LABEL HAYSTACK NEEDLE
  case "$2" in *"$3"*) ;; *) fail "$1: expected to find '$3' in: $2" ;; esac
}
lacks() {  # lacks LABEL HAYSTACK NEEDLE
  case "$2" in *"$3"*) fail "$1: did not expect '$3' in: $2" ;; esac
}
has_line() {  # has_line LABEL TEXT ERE: some line of TEXT matches ERE
  grep -Eq -- "$3" <<<"$2" || fail "$1: no line matching /$3/ in:
$2"
}

# cli_store: an empty store for $engine ($url), sql() to write into it behind the CLI's back,
# the config $cfg naming it, and r() running rampart with that config.
cli_store() {
  if [ "$engine" = pgsql ]; then
    url=${RAMPART_PG_URL:?run under tests/lab/with-postgres.sh}
    psql -q "$url" -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public;' >/dev/null ||
      { echo "cannot reset database" >&2; exit 1; }
    sql() { psql -q -v ON_ERROR_STOP=1 "$url" -c "$1" >/dev/null; }
  else
    url="sqlite://$work/rampart.db"
    sql() { sqlite3 "$work/rampart.db" "$1"; }
  fi
  cfg="$work/rampart.toml"
  printf '[store]\nurl = "%s"\n' "$url" >"$cfg"
}
r() { "$bin" --config "$cfg" "$@"; }

# cli_finish: the verdict, and the script's exit status.
cli_finish() {
  if [ "$failures" -ne 0 ]; then
    echo "$CLI_NAME ($engine): $failures failed" >&2
    exit 1
  fi
  echo "$CLI_NAME ($engine): all checks passed"
  exit 0
}
