#!/usr/bin/env bash
# Runs conformance.lua with miltertest against a real rampart-milter: a fresh SQLite store with
# rules.toml applied, a private opendkim.conf (InternalHosts 127.0.0.1 and 172.18.0.0/16), the
# milter on a free loopback port. Then checks the milter logged one line per decision with the
# queue id, stream and rule. Exit 77 when miltertest is missing (1 under RAMPART_REQUIRE_INTEGRATION).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
milter=${RAMPART_MILTER_BIN:?} cli=${RAMPART_BIN:?}
if ! command -v miltertest >/dev/null; then
  [ "${RAMPART_REQUIRE_INTEGRATION:-0}" = 1 ] && { echo "miltertest missing" >&2; exit 1; }
  echo "skip: miltertest missing (apt-get install miltertest)" >&2
  exit 77
fi
work=$(mktemp -d /tmp/rampart-miltertest-XXXXXX)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/keys"
printf 'lab send.example.net:lab:%s/keys/lab.private\norg send.example.org:s1:%s/keys/org.private\n' "$work" "$work" >"$work/keytable"
printf '*@send.example.net lab\n*@send.example.org org\n' >"$work/signingtable"
cat >"$work/opendkim.conf" <<CONF
Mode sv
KeyTable refile:$work/keytable
SigningTable refile:$work/signingtable
InternalHosts 127.0.0.1, ::1, 172.18.0.0/16
CONF
cat >"$work/rampart.toml" <<CONF
[store]
url = "sqlite://$work/rampart.db"
[milter]
listen = "inet:$port@127.0.0.1"
opendkim_config = "$work/opendkim.conf"
rules_poll_interval = "1s"
CONF
"$cli" --config "$work/rampart.toml" db migrate >/dev/null
"$cli" --config "$work/rampart.toml" rules apply "$here/rules.toml" >/dev/null
"$milter" --config "$work/rampart.toml" --check-config >/dev/null
"$milter" --config "$work/rampart.toml" >"$work/milter.out" 2>"$work/milter.log" &
pid=$!
for _ in $(seq 1 100); do
  grep -q "^listening on" "$work/milter.out" && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/milter.log" >&2; echo "rampart-milter exited" >&2; exit 1; }
  sleep 0.1
done
grep -q "^listening on" "$work/milter.out" || { echo "rampart-milter did not start" >&2; cat "$work/milter.log" >&2; exit 1; }

# wait_log REGEX N: until the milter log has N lines matching REGEX (10 s at most).
wait_log() {
  for _ in $(seq 1 100); do
    [ "$(grep -cE "$1" "$work/milter.log" || true)" -ge "$2" ] && return 0
    sleep 0.1
  done
  echo "FAIL: timed out waiting for $2 x '$1' in the milter log" >&2
  return 1
}

status=0
export RAMPART_MILTER_SOCKET="inet:$port@127.0.0.1"
miltertest -s "$here/conformance.lua" || status=1

# Phase 2: a broken opendkim.conf (its KeyTable vanished). The milter notices on its own (file
# mtimes are polled), logs dkim.load_failed, and takes the safe action for stream mail.
mv "$work/keytable" "$work/keytable.away"
touch "$work/opendkim.conf"
wait_log 'dkim\.load_failed' 1 || status=1
miltertest -s "$here/broken_dkim.lua" || status=1
mv "$work/keytable.away" "$work/keytable"
touch "$work/opendkim.conf"
wait_log 'dkim\.loaded' 2 || status=1

kill -TERM "$pid"
wait "$pid" || { echo "rampart-milter exited non-zero on SIGTERM" >&2; status=1; }
pid=""
# --daemon: the start command returns once the socket is open, the pid file names the running
# daemon, SIGTERM stops it and removes the pid file.
port2=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed "s/inet:$port@/inet:$port2@/" "$work/rampart.toml" >"$work/daemon.toml"
if "$milter" --config "$work/daemon.toml" --daemon --pidfile "$work/milter.pid" >"$work/daemon.out" 2>"$work/daemon.log"; then
  dpid=$(cat "$work/milter.pid" 2>/dev/null || true)
  if [ -n "$dpid" ] && kill -0 "$dpid" 2>/dev/null && grep -q "^listening on inet:$port2@127.0.0.1 (pid $dpid)" "$work/daemon.out"; then
    echo "ok:   --daemon detached (pid $dpid) after opening its socket"
    kill -TERM "$dpid"
    for _ in $(seq 1 100); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$dpid" 2>/dev/null; then echo "FAIL: daemon did not stop on SIGTERM"; status=1; kill -KILL "$dpid"; fi
    [ ! -e "$work/milter.pid" ] && echo "ok:   pid file removed on stop" || { echo "FAIL: pid file left behind"; status=1; }
  else
    echo "FAIL: --daemon: pid file '$dpid' / output: $(cat "$work/daemon.out")"; status=1
  fi
else
  echo "FAIL: --daemon start failed: $(cat "$work/daemon.log")"; status=1
fi

log=$(cat "$work/milter.log")
for want in \
  "4F1A2B3C: reject rcpt=<someone@aol.com> stream=bulk rule=yahoo-family" \
  "4F1A2B3C: hold rcpt=<x@gmail.com> stream=bulk rule=consumer-webmail" \
  "4F1A2B3C: discard rcpt=<gone@example.com> stream=bulk rule=suppressed" \
  "4F1A2B3C: reject from=<ceo@example.com> stream=bulk rule=from-domain" \
  "4F1A2B3C: tempfail from=<x@send.example.org> stream=institutional rule=dkim-scope" \
  "4F1A2B3C: warn stream=bulk rule=message-id-localhost" \
  "4F1A2B3C: reject stream=institutional rule=html-only" \
  "4F1A2B3C: pin stream=bulk transport=out05" \
  "NOQUEUE: tempfail from=<news@send.example.net> stream=- rule=macro-missing" \
  "5B2C3D4E: tempfail stream=bulk rule=dkim-config" \
  "milter.stopped counters:"; do
  case "$log" in *"$want"*) echo "ok:   log has '$want'" ;; *) echo "FAIL: log lacks '$want'"; status=1 ;; esac
done
[ $status -eq 0 ] || { echo "--- milter log"; cat "$work/milter.log"; }
exit $status
