# lab.sh: the lab harness. Scenario scripts `source` it to build a miniature internet in a
# private network namespace: fake DNS (unbound), scriptable operator MXs (rampart-lab-mx),
# egress addresses on the namespace's lo, and a private Postfix. lab_down stops everything it
# started, by PID, on every exit path. It never touches the system Postfix or /etc/resolv.conf.
# No sleep stands in for synchronisation: waits poll (every 0.1 s, with a timeout) for a log
# line or a listening socket.
#
# Reference (a scenario calls lab_init first; all other state lives in $LAB_DIR):
#   lab_init NAME                  temp dir + network namespace + cleanup trap (root only)
#   lab_init_local NAME            temp dir + cleanup trap, no namespace (loopback tests, any user)
#   lab_require TOOL...            skip (exit 77) unless every TOOL is on PATH
#   lab_skip REASON                exit 77, or 1 when RAMPART_REQUIRE_INTEGRATION=1
#   lab_addr IP / lab_del_addr IP  add / remove IP/32 (IPv6: /128) on the namespace's lo
#   lab_route_src IP SRC           connections to lab address IP leave from lab address SRC (IPv4;
#                                  for clients that cannot bind, e.g. smtp-source)
#   lab_exec CMD...                run CMD inside the namespace
#   lab_spawn NAME CMD...          run CMD in the background, output to $LAB_DIR/NAME.log
#   lab_pid NAME / lab_stop NAME   PID of / stop (TERM, then KILL) a spawned process
#   lab_stop_milter NAME IP PORT   stop a spawned libmilter daemon listening on IP:PORT (TERM, then
#                                  a wake-up connection each second, KILL after 10 s); returns its
#                                  exit status
#   lab_wait_for FILE REGEX [T]    wait until a line of FILE matches REGEX (ERE), T s (30)
#   lab_esc TEXT                   TEXT escaped as a literal for an ERE (REGEX arguments)
#   lab_wait_count FILE REGEX N [T]  wait until N lines of FILE match REGEX
#   lab_wait_port IP PORT [T]      wait until something listens on IP:PORT (TCP)
#   lab_dns_zone ZONE              serve ZONE authoritatively (names outside zones: REFUSED)
#   lab_dns_mx DOMAIN PREF HOST, lab_dns_a HOST IP, lab_dns_null_mx DOMAIN, lab_dns_txt NAME TEXT
#   lab_dns_rr NAME TTL TYPE RDATA...  any record with its own TTL (the others use 300), e.g. an
#                                  SOA whose MINIMUM sets the zone's negative TTL
#   lab_dns_drop ZONE              queries for names in ZONE get no answer at all (unbound deny)
#   lab_dns_start                  start unbound on 127.0.0.1:53 and check it answers
#   lab_mx_start IP [PORT] [SCRIPT] [MX-ARGS...]   rampart-lab-mx on IP:PORT (default 25)
#   lab_mx_bin                     path of rampart-lab-mx ($RAMPART_LAB_MX or PATH), else skip
#   lab_mx_log IP [PORT], lab_mx_transcript IP [PORT], lab_mx_reload IP [PORT]
#   lab_postfix_conf KEY=VALUE...  set main.cf parameters (reloads a running instance)
#   lab_postfix_transport NAME IP [HELO]  add smtp transport NAME bound to IP
#   lab_postfix_listener IP PORT   add an smtpd listener on IP:PORT (master.cf `IP:PORT inet n - n
#                                  - - smtpd`); waits for it only when the instance already runs
#   lab_postfix_start / lab_postfix_stop / lab_postfix_reload
#   lab_postfix_maillog, lab_postfix_etc   paths of the maillog and the config directory
#   lab_postconf ARGS..., lab_postqueue ARGS...   postconf / postqueue on the lab instance
#   lab_submit FROM TO[,TO...] [SWAKS-ARGS...]  submit to the lab Postfix, print the queue id
#   lab_swaks LOG SWAKS-ARGS...    one swaks session inside the namespace (--timeout 30), any server,
#                                  port or source address; transcript in LOG, always returns 0
#   lab_swaks_queue_id LOG         queue id of the last "250 ... queued as ID" in a swaks transcript
#   lab_reply_to LOG COMMAND       the server's reply to COMMAND ("RCPT TO:<a@b>", ".") in a swaks log
#   lab_expect_reply LOG COMMAND ERE WHAT  pass/fail on that reply, dumping the session on a miss
#                                  (prints nothing and fails when there is none)
#   lab_opendkim_start [DOMAIN:SELECTOR...]  OpenDKIM (Mode sv) signing for each DOMAIN with a new
#                                  key (default shop.example:lab), on 127.0.0.1:$LAB_OPENDKIM_PORT
#                                  (8891), wired into the lab Postfix as its milter; publishes
#                                  SELECTOR._domainkey.DOMAIN TXT, so it comes after lab_dns_zone
#                                  and before lab_dns_start
#   lab_opendkim_internal_hosts CIDR...  rewrite InternalHosts (default 127.0.0.1, ::1), restart
#                                  opendkim and wait until it is ready
#   lab_opendkim_conf, lab_opendkim_log  paths of its opendkim.conf and of its syslog output
#   lab_opendkim_key DOMAIN SELECTOR     path of that private key
#   lab_opendkim_pid               PID of the running opendkim
#   lab_opendkim_stop              stop opendkim (lab_down does it)
#   lab_syslog_bin                 path of rampart-lab-syslog ($RAMPART_LAB_SYSLOG or PATH),
#                                  else skip
#   lab_pg_start / lab_pg_stop     throwaway PostgreSQL (pg.sh) on a Unix socket in $LAB_DIR/pg,
#                                  database "rampart", trust auth; any user with lab_init_local
#   lab_pg_url                     postgresql:///rampart?host=$LAB_DIR/pg&user=postgres
#   lab_dovecot_start USER PASSWORD  private Dovecot (IMAP only, foreground, log in $LAB_DIR):
#                                  STARTTLS on 127.0.0.1:$LAB_DOVECOT_IMAP_PORT, implicit TLS on
#                                  127.0.0.1:$LAB_DOVECOT_IMAPS_PORT (143/993 in a namespace, free
#                                  ports without one), self-signed cert for imap.lab.test and
#                                  127.0.0.1, USER/PASSWORD in a passwd-file, Maildir++ mail
#   lab_dovecot_deliver USER FILE [FOLDER]  FILE as a new (unseen) message, written into the
#                                  Maildir's new/ directly; prints its Maildir base name
#   lab_dovecot_flags USER [FOLDER]  "BASE FLAGS" per message (Maildir info: S seen, T deleted;
#                                  "-" none), sorted
#   lab_dovecot_maildir USER [FOLDER], lab_dovecot_ca, lab_dovecot_log, lab_dovecot_pid
#                                  Maildir path, the CA (= server) certificate, the log, the PID
#   lab_dovecot_stop / lab_dovecot_restart   stop (lab_down does it) / stop and start again
#   lab_dovecot_conf LINE...       append raw dovecot.conf lines and restart
#                                  (lab_dovecot_conf_reset drops them)
#   lab_dovecot_tls on|off         off: restart with ssl = no (no STARTTLS, no implicit-TLS port)
#   lab_pass/lab_fail MSG, lab_expect_line FILE REGEX WHAT [SHOW_REGEX],
#   lab_expect_no_line FILE REGEX WHAT, lab_expect_eq WANT GOT WHAT, lab_finish, lab_fatal MSG
#   lab_down                       stop everything, delete the namespace and $LAB_DIR
# Environment: RAMPART_LAB_MX (path of rampart-lab-mx), RAMPART_LAB_SYSLOG (path of
# rampart-lab-syslog), RAMPART_LAB_KEEP=1 (keep $LAB_DIR), RAMPART_REQUIRE_INTEGRATION=1 (a skip is
# a failure).
#
# OpenDKIM logs only through syslog(3), i.e. datagrams to /dev/log, and the lab has no syslog
# daemon (nor may it use the host's). So lab_opendkim_start runs rampart-lab-syslog on a socket in
# $LAB_DIR and starts opendkim in a private mount namespace where /dev is a lab directory whose
# `log` is a symlink to that socket (null, zero, full, random, urandom bind-mounted from the real
# /dev). lab_opendkim_log is the receiver's output, one line per message, e.g.
# `Nov 22 00:10:52 opendkim[14872]: 4XYZ: DKIM-Signature field added (s=lab, d=shop.example)`.
# In the same namespace /tmp is a root-owned 0755 tmpfs holding only $LAB_DIR (bind-mounted at
# its own path): with its default RequireSafeKeys, OpenDKIM refuses a key with any world-writable
# ancestor, and /tmp (1777) is one even when the key's own directory is 0700.

# shellcheck shell=bash
# Public state, read by scenarios: LAB_NAME, LAB_NS (namespace), LAB_DIR, LAB_FAILURES,
# LAB_OPENDKIM_PORT (set it before lab_opendkim_start to move OpenDKIM off 8891),
# LAB_DOVECOT_IMAP_PORT and LAB_DOVECOT_IMAPS_PORT (set by lab_dovecot_start).
# shellcheck disable=SC2034
LAB_NAME=""
LAB_NS=""
LAB_DIR=""
LAB_FAILURES=0
_LAB_PIDS=()
declare -A _LAB_PID_BY_NAME=()
_LAB_DOWN_DONE=""
_LAB_PF_STARTED=""
_LAB_DNS_ZONES=()
_LAB_DNS_DATA=()
_LAB_DNS_FIRST_A=""
_LAB_DNS_DROP_ZONES=()
_LAB_DNS_STARTED=""
LAB_OPENDKIM_PORT=${LAB_OPENDKIM_PORT:-8891}
_LAB_ODK_DIR=""   # $LAB_DIR/opendkim once lab_opendkim_start ran
_LAB_ODK_NAME=""  # lab_spawn name of the running opendkim ("" when stopped)
_LAB_ODK_RUNS=0
_LAB_PG_DIR=""    # $LAB_DIR/pg while the lab's PostgreSQL may be running
LAB_DOVECOT_IMAP_PORT=""   # set by lab_dovecot_start: STARTTLS port
LAB_DOVECOT_IMAPS_PORT=""  # set by lab_dovecot_start: implicit-TLS port
_LAB_DOVECOT_DIR=""        # $LAB_DIR/dovecot once lab_dovecot_start ran
_LAB_DOVECOT_NAME=""       # lab_spawn name of the running dovecot ("" when stopped)
_LAB_DOVECOT_RUNS=0
_LAB_DOVECOT_TLS=on        # lab_dovecot_tls

# shellcheck source=pg.sh
source "$(dirname "${BASH_SOURCE[0]}")/pg.sh"

# --- messages, skips, assertions ----------------------------------------------------------------

_lab_log() { printf 'lab: %s\n' "$*" >&2; }

# lab_esc TEXT: TEXT as a literal inside an ERE (for lab_wait_for / lab_expect_line patterns).
lab_esc() { printf '%s' "$1" | sed 's/[][\.*^$+?(){}|]/\\&/g'; }

lab_skip() {
  if [[ ${RAMPART_REQUIRE_INTEGRATION:-0} == 1 ]]; then
    _lab_log "cannot run: $* (RAMPART_REQUIRE_INTEGRATION=1, so this is a failure)"
    exit 1
  fi
  _lab_log "skip: $*"
  exit 77
}

lab_require() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || lab_skip "required tool '$tool' is not installed"
  done
}

lab_fatal() {
  _lab_log "FATAL: $*"
  exit 1
}

lab_pass() { printf 'ok:   %s\n' "$*"; }

lab_fail() {
  printf 'FAIL: %s\n' "$*"
  LAB_FAILURES=$((LAB_FAILURES + 1))
}

# Assertions record a failure (see lab_finish) and always return 0, so a scenario under set -e
# goes on and reports every failed check.
# lab_expect_line FILE REGEX WHAT [SHOW_REGEX]: some line of FILE matches REGEX. On failure it
# prints the expectation and what was found: lines matching SHOW_REGEX, or the file's tail.
lab_expect_line() {
  local file=$1 regex=$2 what=$3 show=${4:-}
  if [[ -f $file ]] && grep -Eq -- "$regex" "$file"; then
    lab_pass "$what"
    return 0
  fi
  lab_fail "$what"
  printf '      expected a line matching: %s\n      in: %s\n' "$regex" "$file"
  _lab_show "$file" "$show"
  return 0
}

# lab_expect_no_line FILE REGEX WHAT: no line of FILE matches REGEX (a missing file is empty).
lab_expect_no_line() {
  local file=$1 regex=$2 what=$3
  if [[ ! -f $file ]] || ! grep -Eq -- "$regex" "$file"; then
    lab_pass "$what"
    return 0
  fi
  lab_fail "$what"
  printf '      expected no line matching: %s\n      found in %s:\n' "$regex" "$file"
  grep -E -- "$regex" "$file" | head -n 10 | sed 's/^/        /'
  return 0
}

lab_expect_eq() {
  local want=$1 got=$2 what=$3
  if [[ $want == "$got" ]]; then
    lab_pass "$what"
    return 0
  fi
  lab_fail "$what"
  printf '      expected: %s\n      found:    %s\n' "$want" "$got"
  return 0
}

# lab_finish: exit 0 when every check passed, 1 otherwise (lab_down still runs, via the trap).
lab_finish() {
  if ((LAB_FAILURES > 0)); then
    _lab_log "$LAB_FAILURES check(s) failed"
    exit 1
  fi
  _lab_log "all checks passed"
  exit 0
}

_lab_show() {
  local file=$1 show=$2
  if [[ ! -f $file ]]; then
    printf '      found: no such file\n'
  elif [[ -n $show ]] && grep -Eq -- "$show" "$file"; then
    printf '      found (lines matching %s):\n' "$show"
    grep -E -- "$show" "$file" | tail -n 10 | sed 's/^/        /'
  else
    printf '      found (last 15 lines):\n'
    tail -n 15 "$file" | sed 's/^/        /'
  fi
}

# --- setup and teardown -------------------------------------------------------------------------

_lab_common_init() {
  local name=$1
  [[ -z $LAB_DIR ]] || lab_fatal "lab_init called twice"
  [[ $name =~ ^[A-Za-z0-9_-]+$ ]] || lab_fatal "lab_init: bad name '$name' (use [A-Za-z0-9_-])"
  [[ $BASHPID == "$$" ]] || lab_fatal "lab_init must run in the script's main shell"
  LAB_NAME=$name
  trap '_lab_on_exit' EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
  LAB_DIR=$(mktemp -d "/tmp/rampart-lab-$name.XXXXXX") || lab_fatal "mktemp failed"
  chmod 0755 "$LAB_DIR"  # daemons that drop to their own user (postfix) must traverse it
}

lab_init() {
  local name=${1:?usage: lab_init NAME}
  [[ $(id -u) == 0 ]] || lab_skip "the lab needs root (network namespaces, Postfix master)"
  lab_require ip ss grep sed mktemp
  ip netns list >/dev/null 2>&1 || lab_skip "'ip netns' is not usable here"
  _lab_common_init "$name"
  local ns="rampart-lab-$$"
  if ip netns list | grep -qw -- "$ns"; then  # left by a dead run that had our PID
    _lab_log "removing stale namespace $ns"
    ip netns del "$ns" 2>/dev/null || true
  fi
  ip netns add "$ns" || lab_skip "cannot create network namespace $ns"
  LAB_NS=$ns
  ip -n "$LAB_NS" link set lo up || lab_fatal "cannot bring up lo in $LAB_NS"
  # ip netns exec bind-mounts /etc/netns/NS/* over /etc: the lab resolves through its own DNS.
  mkdir -p "/etc/netns/$LAB_NS"
  printf 'nameserver 127.0.0.1\n' >"/etc/netns/$LAB_NS/resolv.conf"
  _lab_log "lab '$name': namespace $LAB_NS, dir $LAB_DIR"
}

# For tests of single programs on the host's loopback: no namespace, no root needed.
lab_init_local() {
  local name=${1:?usage: lab_init_local NAME}
  lab_require grep sed mktemp
  _lab_common_init "$name"
}

_lab_on_exit() {
  local rc=$?
  set +e
  lab_down "$rc"
  exit "$rc"
}

# lab_down [RC]: idempotent; safe after a partial lab_init and on any failure.
lab_down() {
  local rc=${1:-0}
  [[ -z $_LAB_DOWN_DONE ]] || return 0
  _LAB_DOWN_DONE=1
  local had_e=""
  [[ $- == *e* ]] && had_e=1
  set +e
  [[ -n $_LAB_PF_STARTED ]] && lab_postfix_stop
  [[ -n $_LAB_ODK_NAME ]] && lab_opendkim_stop
  [[ -n $_LAB_PG_DIR ]] && lab_pg_stop
  local i
  for ((i = ${#_LAB_PIDS[@]} - 1; i >= 0; i--)); do
    _lab_kill_pid "${_LAB_PIDS[i]}"
  done
  _LAB_PIDS=()
  if [[ -n $LAB_NS ]]; then
    # Anything still in the namespace (Postfix children, strays of lab_exec) goes too: a
    # namespace with live processes would outlive `ip netns del`.
    local pid
    for pid in $(ip netns pids "$LAB_NS" 2>/dev/null); do
      _lab_log "killing leftover process $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null))"
      _lab_kill_pid "$pid"
    done
    ip netns del "$LAB_NS" 2>/dev/null || _lab_log "warning: cannot delete namespace $LAB_NS"
    rm -rf "/etc/netns/$LAB_NS"
    LAB_NS=""
  fi
  if [[ -n $LAB_DIR && -d $LAB_DIR ]]; then
    if [[ ${RAMPART_LAB_KEEP:-0} == 1 ]]; then
      _lab_log "kept $LAB_DIR (RAMPART_LAB_KEEP=1)"
    else
      [[ $rc != 0 && $rc != 77 ]] && _lab_log "removing $LAB_DIR (set RAMPART_LAB_KEEP=1 to keep it)"
      [[ $LAB_DIR == /tmp/rampart-lab-* ]] && rm -rf -- "$LAB_DIR"
    fi
  fi
  [[ -n $had_e ]] && set -e
  return 0
}

# --- processes ----------------------------------------------------------------------------------

# Runs CMD inside the namespace, or directly for lab_init_local.
lab_exec() {
  if [[ -n $LAB_NS ]]; then
    ip netns exec "$LAB_NS" "$@"
  else
    "$@"
  fi
}

# True while PID is running (a zombie counts as gone).
_lab_alive() {
  local stat
  # read, not $(<file): bash 5.2 under set -e exits the whole script when $(<file) fails,
  # even behind ||, and the file vanishes as soon as the process is reaped.
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

# TERM, wait up to 5 s, then KILL; reaps PID when it is our child.
_lab_kill_pid() {
  local pid=$1 deadline
  if _lab_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null
    deadline=$(($(_lab_now_ms) + 5000))
    while _lab_alive "$pid" && (($(_lab_now_ms) < deadline)); do sleep 0.05; done
    if _lab_alive "$pid"; then
      _lab_log "process $pid ignored TERM for 5 s: KILL"
      kill -KILL "$pid" 2>/dev/null
    fi
  fi
  wait "$pid" 2>/dev/null || true  # its status is TERM's, not a failure (and set -e is live)
  return 0
}

lab_spawn() {
  local name=${1:?usage: lab_spawn NAME CMD...}
  shift
  [[ -n $LAB_DIR ]] || lab_fatal "lab_spawn before lab_init"
  # A PID recorded in a subshell would be lost and the process would outlive the test.
  [[ $BASHPID == "$$" ]] || lab_fatal "lab_spawn $name: must run in the main shell, not in \$(...)"
  [[ -z ${_LAB_PID_BY_NAME[$name]:-} ]] || lab_fatal "lab_spawn: name '$name' already used"
  # Not via lab_exec: a backgrounded function would be a subshell, and $! its PID, not CMD's.
  if [[ -n $LAB_NS ]]; then
    ip netns exec "$LAB_NS" "$@" >"$LAB_DIR/$name.log" 2>&1 </dev/null &
  else
    "$@" >"$LAB_DIR/$name.log" 2>&1 </dev/null &
  fi
  local pid=$!  # ip netns exec execs CMD in place (no fork), so this is CMD's PID
  _LAB_PIDS+=("$pid")
  _LAB_PID_BY_NAME[$name]=$pid
}

lab_pid() {
  local name=${1:?usage: lab_pid NAME}
  [[ -n ${_LAB_PID_BY_NAME[$name]:-} ]] || lab_fatal "lab_pid: nothing spawned as '$name'"
  printf '%s\n' "${_LAB_PID_BY_NAME[$name]}"
}

lab_stop() {
  local pid
  pid=$(lab_pid "${1:?usage: lab_stop NAME}") || exit 1
  _lab_kill_pid "$pid"
}

# libmilter acts on TERM only when its listener wakes up: at a connection, or at its 5 s poll
# timeout. So after TERM this connects to IP:PORT once a second (a connection that sends nothing).
lab_stop_milter() {
  local name=${1:?usage: lab_stop_milter NAME IP PORT} ip=${2:?ip} port=${3:?port}
  local pid deadline next_poke=0 now rc=0
  pid=$(lab_pid "$name") || exit 1
  if _lab_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null
    deadline=$(($(_lab_now_ms) + 10000))
    while _lab_alive "$pid"; do
      now=$(_lab_now_ms)
      ((now < deadline)) || break
      if ((now >= next_poke)); then
        # shellcheck disable=SC2016  # expanded by the inner bash
        lab_exec bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$ip" "$port" 2>/dev/null || true
        next_poke=$((now + 1000))
      fi
      sleep 0.02
    done
    if _lab_alive "$pid"; then
      _lab_log "$name ($pid) ignored TERM for 10 s: KILL"
      kill -KILL "$pid" 2>/dev/null
    fi
  fi
  wait "$pid" 2>/dev/null || rc=$?
  return "$rc"
}

# --- waiting ------------------------------------------------------------------------------------

_lab_now_ms() { local t=${EPOCHREALTIME/[.,]/}; printf '%s\n' $((t / 1000)); }

# _lab_wait FILE REGEX COUNT TIMEOUT [PID]: polls every 0.1 s; fails early when PID dies.
_lab_wait() {
  local file=$1 regex=$2 want=$3 timeout=$4 pid=${5:-} n=0 deadline
  deadline=$(($(_lab_now_ms) + ${timeout%.*} * 1000))
  while :; do
    if [[ -f $file ]]; then
      n=$(grep -Ec -- "$regex" "$file" || true)  # grep -c exits 1 on 0 matches
      ((n >= want)) && return 0
    fi
    if [[ -n $pid ]] && ! _lab_alive "$pid"; then
      _lab_log "process $pid exited while waiting for /$regex/ in $file"
      break
    fi
    if (($(_lab_now_ms) >= deadline)); then
      _lab_log "timed out after ${timeout}s waiting for $want line(s) matching /$regex/ in $file (found $n)"
      break
    fi
    sleep 0.1
  done
  if [[ -f $file ]]; then
    _lab_log "--- last 20 lines of $file ---"
    tail -n 20 "$file" >&2
    _lab_log "---"
  else
    _lab_log "$file does not exist"
  fi
  return 1
}

lab_wait_for() {
  local file=${1:?usage: lab_wait_for FILE REGEX [TIMEOUT_S]} regex=${2:?regex}
  _lab_wait "$file" "$regex" 1 "${3:-30}"
}

lab_wait_count() {
  local file=${1:?usage: lab_wait_count FILE REGEX N [TIMEOUT_S]} regex=${2:?regex} n=${3:?count}
  _lab_wait "$file" "$regex" "$n" "${4:-30}"
}

# Waits for a TCP listener on IP:PORT inside the namespace. Uses ss, not a connect, so the
# server logs no stray session.
lab_wait_port() {
  local ip=${1:?usage: lab_wait_port IP PORT [TIMEOUT_S]} port=${2:?port} timeout=${3:-30}
  local want="$ip:$port" deadline
  [[ $ip == *:* ]] && want="[$ip]:$port"
  local ssargs=(-Hltn)
  [[ -n $LAB_NS ]] && ssargs=(-N "$LAB_NS" -Hltn)
  deadline=$(($(_lab_now_ms) + timeout * 1000))
  while :; do
    ss "${ssargs[@]}" 2>/dev/null | awk -v w="$want" '$4 == w { found = 1 } END { exit !found }' &&
      return 0
    if (($(_lab_now_ms) >= deadline)); then
      _lab_log "timed out after ${timeout}s waiting for a listener on $want"
      return 1
    fi
    sleep 0.1
  done
}

# --- addresses ----------------------------------------------------------------------------------

_lab_prefix() { if [[ $1 == *:* ]]; then printf '%s/128' "$1"; else printf '%s/32' "$1"; fi; }

lab_addr() {
  local ip=${1:?usage: lab_addr IP}
  [[ -n $LAB_NS ]] || lab_fatal "lab_addr needs lab_init (a namespace)"
  local extra=()
  [[ $ip == *:* ]] && extra=(nodad)  # usable at once, no tentative phase
  ip -n "$LAB_NS" addr add "$(_lab_prefix "$ip")" dev lo "${extra[@]}" ||
    lab_fatal "cannot add $ip to lo in $LAB_NS"
}

lab_del_addr() {
  local ip=${1:?usage: lab_del_addr IP}
  ip -n "$LAB_NS" addr del "$(_lab_prefix "$ip")" dev lo || lab_fatal "cannot remove $ip from lo"
}

# lab_route_src IP SRC: both are lab_addr addresses. The kernel picks the source of a connection
# to a local address from that address's route in the local table (normally IP itself): this
# rewrites the route's preferred source to SRC, so a client that cannot bind (smtp-source)
# connecting to IP comes from SRC.
lab_route_src() {
  local ip=${1:?usage: lab_route_src IP SRC} src=${2:?src}
  [[ $ip != *:* && $src != *:* ]] || lab_fatal "lab_route_src: IPv4 only"
  ip -n "$LAB_NS" route replace local "$ip" dev lo table local proto kernel scope host src "$src" ||
    lab_fatal "cannot route $ip from $src in $LAB_NS"
}

# --- DNS (unbound) ------------------------------------------------------------------------------

_lab_fqdn() { local n=${1%.}; printf '%s\n' "${n,,}"; }

_lab_dns_check_name() {
  local name zone
  name=$(_lab_fqdn "$1")
  for zone in "${_LAB_DNS_ZONES[@]}"; do
    [[ $name == "$zone" || $name == *".$zone" ]] && return 0
  done
  lab_fatal "DNS name '$name' is outside every lab_dns_zone (${_LAB_DNS_ZONES[*]:-none})"
}

lab_dns_zone() {
  local zone
  zone=$(_lab_fqdn "${1:?usage: lab_dns_zone ZONE}")
  [[ -n $zone ]] || lab_fatal "lab_dns_zone: the root zone cannot be a lab zone"
  _LAB_DNS_ZONES+=("$zone")
}

lab_dns_mx() {
  local domain=${1:?usage: lab_dns_mx DOMAIN PREF HOST} pref=${2:?pref} host=${3:?host}
  _lab_dns_check_name "$domain"
  _LAB_DNS_DATA+=("\"$(_lab_fqdn "$domain"). 300 IN MX $pref $(_lab_fqdn "$host").\"")
}

# RFC 7505: "MX 0 ." says the domain accepts no mail.
lab_dns_null_mx() {
  local domain=${1:?usage: lab_dns_null_mx DOMAIN}
  _lab_dns_check_name "$domain"
  _LAB_DNS_DATA+=("\"$(_lab_fqdn "$domain"). 300 IN MX 0 .\"")
}

lab_dns_a() {
  local host=${1:?usage: lab_dns_a HOST IP} ip=${2:?ip} type=A
  _lab_dns_check_name "$host"
  [[ $ip == *:* ]] && type=AAAA
  _LAB_DNS_DATA+=("\"$(_lab_fqdn "$host"). 300 IN $type $ip\"")
  [[ $type == A && -z $_LAB_DNS_FIRST_A ]] && _LAB_DNS_FIRST_A="$(_lab_fqdn "$host") $ip"
  return 0
}

# TEXT is split into 255-octet character-strings (DKIM keys are longer than one).
lab_dns_txt() {
  local name=${1:?usage: lab_dns_txt NAME TEXT} text=${2?text} strings=""
  _lab_dns_check_name "$name"
  [[ $text != *[\"\'\\]* ]] || lab_fatal "lab_dns_txt: quotes and backslashes are not supported"
  while :; do
    strings+=" \"${text:0:255}\""
    text=${text:255}
    [[ -n $text ]] || break
  done
  _LAB_DNS_DATA+=("'$(_lab_fqdn "$name"). 300 IN TXT$strings'")
}

# lab_dns_rr NAME TTL TYPE RDATA...: one record as unbound's local-data takes it, names in RDATA
# written in full with their final dot: lab_dns_rr neg.example 600 SOA ns.neg.example.
# hostmaster.neg.example. 1 3600 600 86400 120
lab_dns_rr() {
  local name=${1:?usage: lab_dns_rr NAME TTL TYPE RDATA...} ttl=${2:?ttl} type=${3:?type}
  shift 3
  (($# > 0)) || lab_fatal "lab_dns_rr $name: no RDATA"
  [[ $ttl =~ ^[0-9]+$ ]] || lab_fatal "lab_dns_rr $name: TTL '$ttl' is not a number"
  [[ $type =~ ^[A-Za-z0-9]+$ ]] || lab_fatal "lab_dns_rr $name: bad type '$type'"
  [[ "$*" != *[\"\'\\]* ]] || lab_fatal "lab_dns_rr: quotes and backslashes are not supported"
  _lab_dns_check_name "$name"
  _LAB_DNS_DATA+=("\"$(_lab_fqdn "$name"). $ttl IN ${type^^} $*\"")
}

# lab_dns_drop ZONE: unbound drops every query for a name in ZONE (local-zone type deny), as a
# dead or firewalled server would: the client sees no answer, only its own timeout.
lab_dns_drop() {
  local zone
  zone=$(_lab_fqdn "${1:?usage: lab_dns_drop ZONE}")
  [[ -n $zone ]] || lab_fatal "lab_dns_drop: not the root zone"
  _LAB_DNS_DROP_ZONES+=("$zone")
}

lab_dns_start() {
  [[ -n $LAB_NS ]] || lab_fatal "lab_dns_start needs lab_init (a namespace)"
  [[ -z $_LAB_DNS_STARTED ]] || lab_fatal "lab_dns_start called twice"
  lab_require unbound unbound-checkconf
  ((${#_LAB_DNS_ZONES[@]} > 0)) || lab_fatal "lab_dns_start: no lab_dns_zone declared"
  _LAB_DNS_STARTED=1
  local dir=$LAB_DIR/dns conf=$LAB_DIR/dns/unbound.conf zone data
  mkdir -p "$dir"
  {
    cat <<EOF
# Written by tests/lab/lab.sh: an authoritative-only resolver for the lab's namespace.
server:
    verbosity: 1
    interface: 127.0.0.1
    port: 53
    do-ip6: no
    num-threads: 1
    so-reuseport: no
    username: ""
    chroot: ""
    directory: "$dir"
    pidfile: ""
    use-syslog: no
    logfile: ""
    log-time-ascii: yes
    module-config: "iterator"
    access-control: 127.0.0.0/8 allow
    # Nothing leaves the lab: every name outside the lab zones is refused, never recursed.
    local-zone: "." refuse
EOF
    for zone in "${_LAB_DNS_ZONES[@]}"; do printf '    local-zone: "%s." static\n' "$zone"; done
    for zone in "${_LAB_DNS_DROP_ZONES[@]}"; do printf '    local-zone: "%s." deny\n' "$zone"; done
    for data in "${_LAB_DNS_DATA[@]}"; do printf '    local-data: %s\n' "$data"; done
    printf 'remote-control:\n    control-enable: no\n'
  } >"$conf"
  unbound-checkconf "$conf" >"$dir/checkconf.log" 2>&1 || {
    cat "$dir/checkconf.log" >&2
    lab_fatal "unbound rejects $conf"
  }
  lab_spawn unbound unbound -d -c "$conf"
  _lab_wait "$LAB_DIR/unbound.log" 'start of service' 1 15 "$(lab_pid unbound)" ||
    lab_fatal "unbound did not start"
  lab_wait_port 127.0.0.1 53 10 || lab_fatal "unbound is not listening on 127.0.0.1:53"
  # Resolve one record through the namespace's resolv.conf, as Postfix will. getent would ask
  # the host's nscd instead, if one runs: skip the check then.
  if [[ -n $_LAB_DNS_FIRST_A && ! -S /var/run/nscd/socket ]]; then
    local host=${_LAB_DNS_FIRST_A% *} ip=${_LAB_DNS_FIRST_A#* } got
    got=$(lab_exec getent ahostsv4 "$host" | awk 'NR == 1 { print $1 }') || true
    [[ $got == "$ip" ]] || lab_fatal "lab DNS check: $host resolved to '$got', want $ip"
  fi
}

# --- operator MXs (rampart-lab-mx) --------------------------------------------------------------

lab_mx_bin() {
  local bin=${RAMPART_LAB_MX:-}
  [[ -n $bin ]] || bin=$(command -v rampart-lab-mx 2>/dev/null) || true
  [[ -n $bin && -x $bin ]] || lab_skip "rampart-lab-mx not found (set RAMPART_LAB_MX)"
  printf '%s\n' "$bin"
}

_lab_mx_name() { printf 'mx-%s-%s\n' "${1//:/_}" "${2:-25}"; }

lab_mx_log() { printf '%s/%s.log\n' "$LAB_DIR" "$(_lab_mx_name "${1:?usage: lab_mx_log IP [PORT]}" "${2:-25}")"; }

lab_mx_transcript() {
  printf '%s/%s.transcript\n' "$LAB_DIR" "$(_lab_mx_name "${1:?usage: lab_mx_transcript IP [PORT]}" "${2:-25}")"
}

# lab_mx_start IP [PORT] [SCRIPT] [EXTRA ARGS...]: SCRIPT may be "" (accept everything).
lab_mx_start() {
  local ip=${1:?usage: lab_mx_start IP [PORT] [SCRIPT] [ARGS...]} port=${2:-25} script=${3:-}
  shift $(($# < 3 ? $# : 3))
  local bin name listen=$ip:$port
  bin=$(lab_mx_bin) || exit $?
  name=$(_lab_mx_name "$ip" "$port")
  [[ $ip == *:* ]] && listen="[$ip]:$port"
  local args=(--listen "$listen" --log "$LAB_DIR/$name.transcript")
  [[ -n $script ]] && args+=(--script "$script")
  lab_spawn "$name" "$bin" "${args[@]}" "$@"
  _lab_wait "$LAB_DIR/$name.log" '^listening on ' 1 10 "$(lab_pid "$name")" ||
    lab_fatal "rampart-lab-mx on $listen did not start"
}

# Re-reads the MX's script (SIGHUP) and waits until it says so.
lab_mx_reload() {
  local ip=${1:?usage: lab_mx_reload IP [PORT]} port=${2:-25} name log n
  name=$(_lab_mx_name "$ip" "$port")
  log=$(lab_mx_log "$ip" "$port")
  n=$(grep -Ec '^script (loaded|reload failed)' "$log" || true)
  kill -HUP "$(lab_pid "$name")"
  lab_wait_count "$log" '^script (loaded|reload failed)' $((n + 1)) 10 || lab_fatal "mx $ip:$port did not reload"
  ! tail -n 1 "$log" | grep -q '^script reload failed' || lab_fatal "mx $ip:$port: $(tail -n 1 "$log")"
}

# lab_reply_to LOG COMMAND: the first server reply line after the client line COMMAND (exact text,
# e.g. "RCPT TO:<a@b>" or "." for end of data) in a swaks transcript, without swaks' prefix.
lab_reply_to() {
  awk -v cmd="$2" '
    found && /^<[-*]/ { sub(/^<[-*]*[ \t]*/, ""); print; exit }
    /^ *-> / { line = $0; sub(/^ *-> /, "", line); if (line == cmd) found = 1 }' "$1"
}

# lab_expect_reply LOG COMMAND WANT_REGEX WHAT: the reply to COMMAND matches WANT_REGEX (ERE).
lab_expect_reply() {
  local log=$1 cmd=$2 want=$3 what=$4 got
  got=$(lab_reply_to "$log" "$cmd")
  if [[ $got =~ $want ]]; then
    lab_pass "$what"
  else
    lab_fail "$what"
    printf '      expected the reply to "%s" to match: %s\n      found: %s\n      transcript: %s\n' \
      "$cmd" "$want" "${got:-(no reply)}" "$log"
    grep -E '^ *(->|<-|<\*\*|\*\*\*) ' "$log" | grep -v -E '^ *-> [^A-Z.]' | sed 's/^/        /'
  fi
}

# --- private Postfix ----------------------------------------------------------------------------

lab_postfix_etc() { printf '%s/postfix/etc\n' "$LAB_DIR"; }
lab_postfix_maillog() { printf '%s/postfix/maillog\n' "$LAB_DIR"; }
lab_postconf() { postconf -c "$LAB_DIR/postfix/etc" "$@"; }
lab_postqueue() { lab_exec postqueue -c "$LAB_DIR/postfix/etc" "$@"; }

# Postfix will not read a main.cf modified within the last second or so: it re-reads it in
# 300 ms steps (up to ~2 s) in case a writer is still busy. Only the harness writes the lab's
# main.cf, so after each edit it dates the file a few seconds back and every later postconf /
# postfix call reads it at once.
_lab_postfix_settle() { touch -d "@$((EPOCHSECONDS - 5))" "$LAB_DIR/postfix/etc/main.cf"; }

_lab_postfix_running() {
  [[ -n $_LAB_PF_STARTED ]] && [[ -f $LAB_DIR/postfix/spool/pid/master.pid ]] &&
    _lab_alive "$(awk '{ print $1; exit }' "$LAB_DIR/postfix/spool/pid/master.pid")"
}

# Creates the instance's config on first use, from Debian's master.cf and the built-in main.cf
# defaults (an empty main.cf), edited with postconf only.
_lab_postfix_prepare() {
  local pf=$LAB_DIR/postfix
  [[ -f $pf/etc/main.cf ]] && return 0
  [[ -n $LAB_NS ]] || lab_fatal "the lab Postfix needs lab_init (a namespace)"
  lab_require postfix postconf swaks
  local master_cf
  for master_cf in /usr/share/postfix/master.cf.dist /etc/postfix/master.cf.proto ""; do
    [[ -z $master_cf || -f $master_cf ]] && break
  done
  [[ -n $master_cf ]] || lab_skip "no master.cf template (/usr/share/postfix/master.cf.dist)"
  # `postfix check` chdirs into queue_directory, then creates the queue subdirectories and
  # data_directory (owned by postfix: a root-owned one makes the master fail on its lock file).
  mkdir -p "$pf/etc" "$pf/spool"
  cp "$master_cf" "$pf/etc/master.cf"
  : >"$pf/etc/main.cf"
  local etc=$pf/etc
  postconf -c "$etc" -e \
    "compatibility_level = 3.7" \
    "queue_directory = $pf/spool" \
    "data_directory = $pf/data" \
    "myhostname = mta.lab.example" \
    "inet_interfaces = 127.0.0.1" \
    "inet_protocols = ipv4" \
    "mynetworks = 127.0.0.0/8" \
    "mydestination =" \
    "alias_maps =" \
    "alias_database =" \
    "local_recipient_maps =" \
    "biff = no" \
    "maillog_file = $pf/maillog" \
    "maillog_file_prefixes = $LAB_DIR" \
    "smtp_bind_address_enforce = yes" \
    "queue_run_delay = 1s" \
    "minimal_backoff_time = 2s" \
    "maximal_backoff_time = 10s" \
    "smtp_connect_timeout = 5s" \
    || lab_fatal "postconf -e failed on $etc/main.cf"
  _lab_postfix_settle
  # Pipe services for software the lab does not have. (postconf -M exits 0 for a service that
  # does not exist, so presence is judged by its output.)
  local svc
  for svc in maildrop uucp ifmail bsmtp scalemail-backend mailman; do
    if [[ -n $(postconf -c "$etc" -M "$svc/unix" 2>/dev/null) ]]; then
      postconf -c "$etc" -MX "$svc/unix" || lab_fatal "cannot remove $svc from master.cf"
    fi
  done
  # No chroot anywhere: the instance lives in $LAB_DIR, not /var/spool/postfix.
  local field
  while read -r field _; do
    postconf -c "$etc" -F "$field=n" || lab_fatal "cannot set $field=n"
  done < <(postconf -c "$etc" -F '*/*/chroot')
  # postlogd writes maillog_file; Debian's master.cf has the service, make sure it stays.
  if [[ -z $(postconf -c "$etc" -M postlog/unix-dgram 2>/dev/null) ]]; then
    postconf -c "$etc" -M "postlog/unix-dgram=postlog unix-dgram n - n - 1 postlogd" ||
      lab_fatal "cannot add the postlog service"
  fi
}

lab_postfix_conf() {
  (($# > 0)) || lab_fatal "usage: lab_postfix_conf KEY=VALUE..."
  _lab_postfix_prepare
  lab_postconf -e "$@" || lab_fatal "postconf -e $* failed"
  _lab_postfix_settle
  _lab_postfix_running && lab_postfix_reload
  return 0
}

# lab_postfix_transport NAME EGRESS_IP [HELO]: an smtp(8) service bound to EGRESS_IP that logs
# as postfix/NAME/smtp, like a stream transport in master.cf.
lab_postfix_transport() {
  local name=${1:?usage: lab_postfix_transport NAME EGRESS_IP [HELO]} ip=${2:?egress ip} helo=${3:-}
  _lab_postfix_prepare
  lab_postconf -M "$name/unix=$name unix - - n - - smtp" || lab_fatal "cannot add transport $name"
  lab_postconf -P "$name/unix/smtp_bind_address=$ip" "$name/unix/syslog_name=postfix/$name" ||
    lab_fatal "cannot configure transport $name"
  [[ -n $helo ]] && { lab_postconf -P "$name/unix/smtp_helo_name=$helo" || lab_fatal "cannot set HELO"; }
  _lab_postfix_running && lab_postfix_reload
  return 0
}

# lab_postfix_listener IP PORT: one more smtpd(8) listener, e.g. a second submission port that
# selects another stream. lab_postfix_start waits for port 25 only: wait for this one yourself.
lab_postfix_listener() {
  local ip=${1:?usage: lab_postfix_listener IP PORT} port=${2:?port}
  _lab_postfix_prepare
  lab_postconf -M "$ip:$port/inet=$ip:$port inet n - n - - smtpd" ||
    lab_fatal "cannot add the smtpd listener $ip:$port"
  if _lab_postfix_running; then
    lab_postfix_reload
    lab_wait_port "$ip" "$port" 10 || lab_fatal "the lab Postfix is not listening on $ip:$port"
  fi
  return 0
}

lab_postfix_start() {
  _lab_postfix_prepare
  local pf=$LAB_DIR/postfix
  # postfix check creates the queue directories with the right owners.
  lab_exec postfix -c "$pf/etc" check >"$pf/check.log" 2>&1 || {
    cat "$pf/check.log" >&2
    lab_fatal "postfix check failed"
  }
  _LAB_PF_STARTED=1
  lab_exec postfix -c "$pf/etc" start >"$pf/start.log" 2>&1 || {
    cat "$pf/start.log" >&2
    [[ -f $pf/maillog ]] && tail -n 20 "$pf/maillog" >&2
    lab_fatal "postfix start failed"
  }
  lab_wait_for "$pf/maillog" 'postfix/master\[[0-9]+\]: daemon started' 20 ||
    lab_fatal "the lab Postfix master did not start"
  lab_wait_port 127.0.0.1 25 10 || lab_fatal "the lab Postfix is not listening on 127.0.0.1:25"
}

lab_postfix_reload() {
  local maillog n
  maillog=$(lab_postfix_maillog)
  n=$(grep -Ec 'postfix/master\[[0-9]+\]: reload' "$maillog" || true)
  lab_exec postfix -c "$LAB_DIR/postfix/etc" reload >/dev/null 2>&1 || lab_fatal "postfix reload failed"
  lab_wait_count "$maillog" 'postfix/master\[[0-9]+\]: reload' $((n + 1)) 20 ||
    lab_fatal "the lab Postfix did not reload"
}

lab_postfix_stop() {
  [[ -n $_LAB_PF_STARTED ]] || return 0
  local pidfile=$LAB_DIR/postfix/spool/pid/master.pid pid=""
  [[ -f $pidfile ]] && pid=$(awk '{ print $1; exit }' "$pidfile")
  if [[ -n $pid ]] && _lab_alive "$pid"; then
    lab_exec postfix -c "$LAB_DIR/postfix/etc" stop >/dev/null 2>&1
    _lab_kill_pid "$pid"  # normally gone already; KILL if postfix stop gave up
  fi
  _LAB_PF_STARTED=""
}

# lab_submit FROM TO[,TO...] [SWAKS-ARGS...]: one message into the lab Postfix over SMTP on
# 127.0.0.1:25; prints the queue id. The swaks transcript stays in $LAB_DIR/submit-*.log.
lab_submit() {
  local from=${1?usage: lab_submit FROM TO [SWAKS-ARGS...]} to=${2:?to} log qid
  shift 2
  log=$(mktemp "$LAB_DIR/submit-XXXXXX.log")
  lab_exec swaks --server 127.0.0.1:25 --helo submit.lab.example --from "$from" --to "$to" \
    --timeout 30 "$@" >"$log" 2>&1 || true  # judged by the reply below, not swaks' status
  qid=$(sed -n 's/^<- *250 .*queued as \([0-9A-Za-z]*\).*/\1/p' "$log" | tail -n 1)
  if [[ -z $qid ]]; then
    _lab_log "submission $from -> $to was not queued; swaks transcript ($log):"
    sed 's/^/    /' "$log" >&2
    return 1
  fi
  printf '%s\n' "$qid"
}

# lab_swaks LOG SWAKS-ARGS...: for sessions lab_submit cannot express (another port, a source
# address, a refusal to look at). The caller gives --server and everything else.
lab_swaks() {
  local log=${1:?usage: lab_swaks LOG SWAKS-ARGS...}
  shift
  lab_exec swaks --timeout 30 "$@" >"$log" 2>&1 || true  # judged by the transcript
  return 0
}

lab_swaks_queue_id() {
  local qid
  qid=$(sed -n 's/^<- *250 .*queued as \([0-9A-Za-z]*\).*/\1/p' "${1:?usage: lab_swaks_queue_id LOG}" |
    tail -n 1)
  [[ -n $qid ]] || return 1
  printf '%s\n' "$qid"
}

# --- OpenDKIM -----------------------------------------------------------------------------------

lab_syslog_bin() {
  local bin=${RAMPART_LAB_SYSLOG:-}
  [[ -n $bin ]] || bin=$(command -v rampart-lab-syslog 2>/dev/null) || true
  [[ -n $bin && -x $bin ]] || lab_skip "rampart-lab-syslog not found (set RAMPART_LAB_SYSLOG)"
  printf '%s\n' "$bin"
}

lab_opendkim_conf() { printf '%s/opendkim/opendkim.conf\n' "$LAB_DIR"; }
lab_opendkim_log() { printf '%s/opendkim-syslog.log\n' "$LAB_DIR"; }

lab_opendkim_pid() {
  [[ -n $_LAB_ODK_NAME ]] || lab_fatal "lab_opendkim_pid: opendkim is not running"
  lab_pid "$_LAB_ODK_NAME"
}

lab_opendkim_key() {
  local domain=${1:?usage: lab_opendkim_key DOMAIN SELECTOR} selector=${2:?selector}
  printf '%s/opendkim/keys/%s/%s.private\n' "$LAB_DIR" "$(_lab_fqdn "$domain")" "$selector"
}

# Runs in the new mount namespace (unshare), as root, then execs opendkim in place, so the PID
# lab_spawn records is opendkim's. Mounts made here are private to opendkim: the host's /dev and
# /tmp do not change. Arguments: LAB_DIR, the lab's /dev directory, opendkim.conf.
# shellcheck disable=SC2016  # expanded by the inner bash
_LAB_ODK_WRAPPER='set -e
lab_dir=$1 dev=$2 conf=$3
for node in null zero full random urandom; do mount --bind "/dev/$node" "$dev/$node"; done
mount --rbind "$dev" /dev
if [[ $lab_dir == /tmp/* ]]; then
  exec 3<"$lab_dir"
  mount -t tmpfs -o mode=0755,size=1m rampart-lab-tmp /tmp
  mkdir -p "$lab_dir"
  mount --no-canonicalize --bind /proc/self/fd/3 "$lab_dir"
  exec 3<&-
fi
exec opendkim -f -x "$conf"'

# lab_opendkim_start [DOMAIN:SELECTOR...]: keys (opendkim-genkey, 2048-bit RSA) live in
# $LAB_DIR/opendkim/keys/DOMAIN/SELECTOR.private, in 0700 directories owned by opendkim. Each
# DOMAIN signs with its first SELECTOR (SigningTable is first-match); a later SELECTOR for the same
# DOMAIN is only published. Postfix gets smtpd_milters and non_smtpd_milters =
# inet:127.0.0.1:$LAB_OPENDKIM_PORT and milter_default_action = tempfail; a scenario that adds
# rampart-milter sets smtpd_milters again, OpenDKIM first.
lab_opendkim_start() {
  [[ -n $LAB_NS ]] || lab_fatal "lab_opendkim_start needs lab_init (a namespace)"
  [[ -z $_LAB_ODK_DIR ]] || lab_fatal "lab_opendkim_start called twice"
  [[ -z $_LAB_DNS_STARTED ]] ||
    lab_fatal "lab_opendkim_start publishes its keys in the lab DNS: call it before lab_dns_start"
  [[ $BASHPID == "$$" ]] || lab_fatal "lab_opendkim_start must run in the main shell"
  lab_require opendkim opendkim-genkey unshare mount
  id opendkim >/dev/null 2>&1 || lab_skip "there is no 'opendkim' user (install opendkim)"
  local syslog_bin
  syslog_bin=$(lab_syslog_bin) || exit $?
  (($# > 0)) || set -- shop.example:lab
  [[ $LAB_OPENDKIM_PORT =~ ^[0-9]+$ ]] ||
    lab_fatal "LAB_OPENDKIM_PORT '$LAB_OPENDKIM_PORT' is not a port"

  local dir=$LAB_DIR/opendkim spec domain selector keydir txt
  mkdir -p "$dir/keys" "$dir/tmp" "$dir/dev"
  : >"$dir/KeyTable"
  : >"$dir/SigningTable"
  for spec in "$@"; do
    [[ $spec =~ ^([A-Za-z0-9.-]+):([A-Za-z0-9_-]+)$ ]] ||
      lab_fatal "lab_opendkim_start: '$spec' is not DOMAIN:SELECTOR"
    domain=$(_lab_fqdn "${BASH_REMATCH[1]}")
    selector=${BASH_REMATCH[2]}
    keydir=$dir/keys/$domain
    if [[ ! -f $keydir/$selector.private ]]; then
      mkdir -p "$keydir"
      opendkim-genkey -D "$keydir" -d "$domain" -s "$selector" >"$dir/genkey.log" 2>&1 || {
        cat "$dir/genkey.log" >&2
        lab_fatal "opendkim-genkey failed for $spec"
      }
    fi
    # SELECTOR.txt is a zone-file record: the TXT text is its quoted strings, joined.
    txt=$(tr -d '\n' <"$keydir/$selector.txt" | grep -o '"[^"]*"' | tr -d '"\n') || true
    [[ $txt == v=DKIM1*p=?* ]] || lab_fatal "no public key in $keydir/$selector.txt"
    lab_dns_txt "$selector._domainkey.$domain" "$txt"
    printf '%s %s:%s:%s\n' "$selector._domainkey.$domain" "$domain" "$selector" \
      "$keydir/$selector.private" >>"$dir/KeyTable"
    printf '*@%s %s\n' "$domain" "$selector._domainkey.$domain" >>"$dir/SigningTable"
  done
  chown -R opendkim:opendkim "$dir/keys" "$dir/tmp"
  chmod -R go= "$dir/keys" "$dir/tmp"  # directories 0700, keys 0600
  printf '127.0.0.1\n::1\n' >"$dir/InternalHosts"  # OpenDKIM's own default
  cat >"$dir/opendkim.conf" <<EOF_CONF
# Written by tests/lab/lab.sh: the lab's OpenDKIM, run in the foreground (-f) inside the lab's
# namespace. RequireSafeKeys keeps its default (yes); see lab.sh on /tmp.
Mode                  sv
Socket                inet:$LAB_OPENDKIM_PORT@127.0.0.1
UserID                opendkim
Syslog                yes
SyslogSuccess         yes
LogWhy                yes
Canonicalization      relaxed/simple
OversignHeaders       From
KeyTable              file:$dir/KeyTable
SigningTable          refile:$dir/SigningTable
InternalHosts         $dir/InternalHosts
TemporaryDirectory    $dir/tmp
EOF_CONF
  # The lab's /dev for opendkim: mount points for the device nodes, log -> the receiver's socket.
  local node
  for node in null zero full random urandom; do : >"$dir/dev/$node"; done
  ln -sfn /proc/self/fd "$dir/dev/fd"
  ln -sfn /proc/self/fd/0 "$dir/dev/stdin"
  ln -sfn /proc/self/fd/1 "$dir/dev/stdout"
  ln -sfn /proc/self/fd/2 "$dir/dev/stderr"
  ln -sfn "$dir/syslog.sock" "$dir/dev/log"
  lab_exec opendkim -n -x "$dir/opendkim.conf" >"$dir/check.log" 2>&1 || {
    cat "$dir/check.log" >&2
    lab_fatal "opendkim -n rejects $dir/opendkim.conf"
  }
  _LAB_ODK_DIR=$dir

  lab_spawn opendkim-syslog "$syslog_bin" --socket "$dir/syslog.sock"
  _lab_wait "$(lab_opendkim_log)" '^listening on ' 1 10 "$(lab_pid opendkim-syslog)" ||
    lab_fatal "rampart-lab-syslog did not start"
  _lab_opendkim_run
  lab_postfix_conf "smtpd_milters = inet:127.0.0.1:$LAB_OPENDKIM_PORT" \
    "non_smtpd_milters = inet:127.0.0.1:$LAB_OPENDKIM_PORT" "milter_default_action = tempfail"
}

# Starts opendkim (spawn names opendkim, opendkim-2, ...) and waits for its start line (logged
# once its socket is open) and its listener.
_lab_opendkim_run() {
  local name=opendkim pid
  _LAB_ODK_RUNS=$((_LAB_ODK_RUNS + 1))
  ((_LAB_ODK_RUNS == 1)) || name=opendkim-$_LAB_ODK_RUNS
  lab_spawn "$name" unshare --mount --propagation private bash -c "$_LAB_ODK_WRAPPER" \
    lab-opendkim "$LAB_DIR" "$_LAB_ODK_DIR/dev" "$_LAB_ODK_DIR/opendkim.conf"
  _LAB_ODK_NAME=$name
  pid=$(lab_pid "$name")
  if ! _lab_wait "$(lab_opendkim_log)" "opendkim\[$pid\]: OpenDKIM Filter v[^ ]+ starting" 1 20 \
    "$pid"; then
    _lab_log "--- $LAB_DIR/$name.log (opendkim's stderr) ---"
    cat "$LAB_DIR/$name.log" >&2
    lab_fatal "opendkim did not start"
  fi
  lab_wait_port 127.0.0.1 "$LAB_OPENDKIM_PORT" 10 ||
    lab_fatal "opendkim is not listening on 127.0.0.1:$LAB_OPENDKIM_PORT"
}

# libmilter acts on TERM only when its listener wakes up: at a connection, or at its 5 s poll
# timeout. So after TERM the harness connects to the milter port once a second (a connection that
# sends nothing); opendkim then exits within milliseconds, logging "terminating".
lab_opendkim_stop() {
  [[ -n $_LAB_ODK_NAME ]] || return 0
  local pid deadline next_poke=0 now
  pid=$(lab_pid "$_LAB_ODK_NAME")
  _LAB_ODK_NAME=""
  if _lab_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null
    deadline=$(($(_lab_now_ms) + 10000))
    while _lab_alive "$pid"; do
      now=$(_lab_now_ms)
      ((now < deadline)) || break
      if ((now >= next_poke)); then
        # shellcheck disable=SC2016  # expanded by the inner bash
        lab_exec bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$LAB_OPENDKIM_PORT" 2>/dev/null ||
          true
        next_poke=$((now + 1000))
      fi
      sleep 0.02
    done
  fi
  _lab_kill_pid "$pid"  # KILL if it is still there; reaps it
}

# OpenDKIM's SIGUSR1 only sets a flag, and the reload happens when the next milter connection
# comes in: nothing observable says it is done before a message arrives. A restart is: the new
# process has read InternalHosts when it logs "starting". (With lab_opendkim_stop's wake-up it
# takes well under a second.)
lab_opendkim_internal_hosts() {
  (($# > 0)) || lab_fatal "usage: lab_opendkim_internal_hosts CIDR..."
  [[ -n $_LAB_ODK_DIR ]] || lab_fatal "lab_opendkim_internal_hosts before lab_opendkim_start"
  printf '%s\n' "$@" >"$_LAB_ODK_DIR/InternalHosts.new"
  mv "$_LAB_ODK_DIR/InternalHosts.new" "$_LAB_ODK_DIR/InternalHosts"
  lab_opendkim_stop
  _lab_opendkim_run
}

# --- Dovecot ------------------------------------------------------------------------------------

# lab_dovecot_start USER PASSWORD: a private Dovecot (IMAP only) run in the foreground (-F) with
# its own config, state, log and mail under $LAB_DIR/dovecot: IMAP with STARTTLS on
# 127.0.0.1:$LAB_DOVECOT_IMAP_PORT and implicit TLS on 127.0.0.1:$LAB_DOVECOT_IMAPS_PORT (143 and
# 993 in a namespace, free ports without one). The certificate is self-signed (lab_dovecot_ca)
# for imap.lab.test and 127.0.0.1. USER logs in with PASSWORD (passwd-file, PLAIN scheme) and owns
# a Maildir++ at lab_dovecot_maildir USER, stored as nobody. Logs go to lab_dovecot_log, never to
# syslog; auth failures are logged there (auth_verbose), passwords never.
lab_dovecot_start() {
  local user=${1:?usage: lab_dovecot_start USER PASSWORD} password=${2:?password}
  [[ -n $LAB_DIR ]] || lab_fatal "lab_dovecot_start before lab_init"
  [[ -z $_LAB_DOVECOT_DIR ]] || lab_fatal "lab_dovecot_start called twice"
  [[ $BASHPID == "$$" ]] || lab_fatal "lab_dovecot_start must run in the main shell"
  [[ $(id -u) == 0 ]] || lab_skip "Dovecot needs root (it drops to its own users)"
  lab_require dovecot openssl
  if ! id dovecot >/dev/null 2>&1 || ! id dovenull >/dev/null 2>&1; then
    lab_skip "there are no 'dovecot' and 'dovenull' users (install dovecot-core)"
  fi
  [[ $user =~ ^[A-Za-z0-9._-]+$ ]] || lab_fatal "lab_dovecot_start: bad user name '$user'"
  [[ $password != *:* && $password != *$'\n'* ]] ||
    lab_fatal "lab_dovecot_start: the password may not hold ':' or a newline (passwd-file)"
  local dir=$LAB_DIR/dovecot
  mkdir -p "$dir/run" "$dir/state" "$dir/mail" "$dir/tls"
  chmod 0755 "$dir" "$dir/mail"
  if [[ -n $LAB_NS ]]; then
    LAB_DOVECOT_IMAP_PORT=143
    LAB_DOVECOT_IMAPS_PORT=993
  else
    LAB_DOVECOT_IMAP_PORT=$(_lab_free_port) || lab_fatal "no free port for Dovecot"
    LAB_DOVECOT_IMAPS_PORT=$(_lab_free_port "$LAB_DOVECOT_IMAP_PORT") ||
      lab_fatal "no free port for Dovecot"
  fi
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=imap.lab.test" -addext "subjectAltName=DNS:imap.lab.test,IP:127.0.0.1" \
    -keyout "$dir/tls/key.pem" -out "$dir/tls/cert.pem" >"$dir/tls/openssl.log" 2>&1 || {
    cat "$dir/tls/openssl.log" >&2
    lab_fatal "openssl could not make the Dovecot certificate"
  }
  chmod 0600 "$dir/tls/key.pem"
  local uid gid
  uid=$(id -u nobody) || lab_fatal "there is no user 'nobody'"
  gid=$(id -g nobody) || lab_fatal "there is no user 'nobody'"
  printf '%s:{PLAIN}%s:%s:%s::%s\n' "$user" "$password" "$uid" "$gid" "$dir/mail/$user" \
    >"$dir/passwd"
  chown root:dovecot "$dir/passwd"
  chmod 0640 "$dir/passwd"
  _LAB_DOVECOT_DIR=$dir
  _LAB_DOVECOT_TLS=on
  _lab_dovecot_maildir_make "$user" ""
  _lab_dovecot_write_conf
  _lab_dovecot_run
}

# _lab_free_port [EXCEPT]: a TCP port nothing on the host listens on (20000-59999), not EXCEPT.
_lab_free_port() {
  local except=${1:-} used port i
  used=$(ss -Htan 2>/dev/null | awk '{ n = split($4, a, ":"); print a[n] }')
  for ((i = 0; i < 200; i++)); do
    port=$((20000 + RANDOM % 40000))
    [[ $port != "$except" ]] && ! grep -qx -- "$port" <<<"$used" && {
      printf '%s\n' "$port"
      return 0
    }
  done
  return 1
}

_lab_dovecot_write_conf() {
  local dir=$_LAB_DOVECOT_DIR ssl=yes imaps=""
  if [[ $_LAB_DOVECOT_TLS == on ]]; then
    imaps="  inet_listener imaps {
    address = 127.0.0.1
    port = $LAB_DOVECOT_IMAPS_PORT
    ssl = yes
  }"
  else
    ssl=no
  fi
  local dh=""
  [[ -f /usr/share/dovecot/dh.pem ]] && dh="ssl_dh = </usr/share/dovecot/dh.pem"
  cat >"$dir/dovecot.conf" <<EOF_CONF
# Written by tests/lab/lab.sh: the lab's Dovecot, run in the foreground (dovecot -F -c this file).
# Everything it writes lives under $dir; nothing goes to syslog.
instance_name = rampart-lab-$$-dovecot
base_dir = $dir/run
state_dir = $dir/state
protocols = imap
listen = 127.0.0.1
log_path = $dir/dovecot.log
info_log_path = $dir/dovecot.log
debug_log_path = $dir/dovecot.log
auth_verbose = yes
ssl = $ssl
ssl_cert = <$dir/tls/cert.pem
ssl_key = <$dir/tls/key.pem
ssl_min_protocol = TLSv1.2
$dh
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
mail_location = maildir:$dir/mail/%u
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dir/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%u $dir/passwd
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $LAB_DOVECOT_IMAP_PORT
  }
$imaps
}
EOF_CONF
  if [[ -f $dir/extra.conf ]]; then
    printf '# lab_dovecot_conf\n' >>"$dir/dovecot.conf"
    cat "$dir/extra.conf" >>"$dir/dovecot.conf"
  fi
  dovecot -n -c "$dir/dovecot.conf" >"$dir/check.log" 2>&1 || {
    cat "$dir/check.log" >&2
    lab_fatal "dovecot -n rejects $dir/dovecot.conf"
  }
}

# Starts dovecot (spawn names dovecot, dovecot-2, ...) and waits for its listeners.
_lab_dovecot_run() {
  local name=dovecot pid
  _LAB_DOVECOT_RUNS=$((_LAB_DOVECOT_RUNS + 1))
  ((_LAB_DOVECOT_RUNS == 1)) || name=dovecot-$_LAB_DOVECOT_RUNS
  lab_spawn "$name" dovecot -F -c "$_LAB_DOVECOT_DIR/dovecot.conf"
  _LAB_DOVECOT_NAME=$name
  pid=$(lab_pid "$name")
  local ok=1
  lab_wait_port 127.0.0.1 "$LAB_DOVECOT_IMAP_PORT" 20 || ok=""
  if [[ -n $ok && $_LAB_DOVECOT_TLS == on ]]; then
    lab_wait_port 127.0.0.1 "$LAB_DOVECOT_IMAPS_PORT" 20 || ok=""
  fi
  if [[ -z $ok ]] || ! _lab_alive "$pid"; then
    _lab_log "--- $LAB_DIR/$name.log and $(lab_dovecot_log) ---"
    cat "$LAB_DIR/$name.log" >&2
    tail -n 20 "$(lab_dovecot_log)" >&2 2>/dev/null
    lab_fatal "dovecot did not start"
  fi
}

# lab_dovecot_stop: stop Dovecot; lab_down does it. The master exits on TERM, but the imap
# processes of open sessions outlive it (they are its children, not in its process group): they
# get TERM too, so a client sees the server go away ("* BYE Server shutting down.").
lab_dovecot_stop() {
  [[ -n $_LAB_DOVECOT_NAME ]] || return 0
  local pid kids kid
  pid=$(lab_pid "$_LAB_DOVECOT_NAME")
  _LAB_DOVECOT_NAME=""
  kids=$(ps -o pid= --ppid "$pid" 2>/dev/null || true)
  _lab_kill_pid "$pid"
  for kid in $kids; do
    _lab_kill_pid "$kid"
  done
}

# lab_dovecot_restart: stop (when running), rewrite the config, start again; the mail stays.
lab_dovecot_restart() {
  [[ -n $_LAB_DOVECOT_DIR ]] || lab_fatal "lab_dovecot_restart before lab_dovecot_start"
  lab_dovecot_stop
  _lab_dovecot_write_conf
  _lab_dovecot_run
}

# lab_dovecot_conf LINE...: append raw dovecot.conf lines (e.g. "imap_capability = IMAP4rev1"),
# then restart. lab_dovecot_conf_reset drops them again (and restarts).
lab_dovecot_conf() {
  [[ -n $_LAB_DOVECOT_DIR ]] || lab_fatal "lab_dovecot_conf before lab_dovecot_start"
  printf '%s\n' "$@" >>"$_LAB_DOVECOT_DIR/extra.conf"
  lab_dovecot_restart
}

lab_dovecot_conf_reset() {
  [[ -n $_LAB_DOVECOT_DIR ]] || lab_fatal "lab_dovecot_conf_reset before lab_dovecot_start"
  rm -f "$_LAB_DOVECOT_DIR/extra.conf"
  lab_dovecot_restart
}

# lab_dovecot_tls on|off: off restarts Dovecot with ssl = no: no STARTTLS and no implicit-TLS
# listener (a plain-text-only server); on restores both.
lab_dovecot_tls() {
  local mode=${1:?usage: lab_dovecot_tls on|off}
  [[ $mode == on || $mode == off ]] || lab_fatal "usage: lab_dovecot_tls on|off"
  [[ -n $_LAB_DOVECOT_DIR ]] || lab_fatal "lab_dovecot_tls before lab_dovecot_start"
  _LAB_DOVECOT_TLS=$mode
  lab_dovecot_restart
}

lab_dovecot_log() { printf '%s/dovecot/dovecot.log\n' "$LAB_DIR"; }
lab_dovecot_ca() { printf '%s/dovecot/tls/cert.pem\n' "$LAB_DIR"; }

lab_dovecot_pid() {
  [[ -n $_LAB_DOVECOT_NAME ]] || lab_fatal "lab_dovecot_pid: dovecot is not running"
  lab_pid "$_LAB_DOVECOT_NAME"
}

# lab_dovecot_maildir USER [FOLDER]: the Maildir++ directory of USER's INBOX, or of FOLDER
# (Maildir++ keeps folder "A" in .A, "A.B" in .A.B; the hierarchy separator is ".").
lab_dovecot_maildir() {
  local user=${1:?usage: lab_dovecot_maildir USER [FOLDER]} folder=${2:-}
  [[ -n $_LAB_DOVECOT_DIR ]] || lab_fatal "lab_dovecot_maildir before lab_dovecot_start"
  if [[ -z $folder || $folder == INBOX ]]; then
    printf '%s/mail/%s\n' "$_LAB_DOVECOT_DIR" "$user"
  else
    printf '%s/mail/%s/.%s\n' "$_LAB_DOVECOT_DIR" "$user" "$folder"
  fi
}

_lab_dovecot_maildir_make() {
  local md sub
  md=$(lab_dovecot_maildir "$1" "$2")
  for sub in cur new tmp; do mkdir -p "$md/$sub"; done
  chown -R nobody:nogroup "$(lab_dovecot_maildir "$1")"
}

# lab_dovecot_deliver USER FILE [FOLDER]: FILE becomes a new (unseen) message: written to tmp/,
# then renamed into new/, as a Maildir delivery agent does. Prints the message's Maildir base
# name (lab_dovecot_flags reports under it while the message stays in that folder).
lab_dovecot_deliver() {
  local user=${1:?usage: lab_dovecot_deliver USER FILE [FOLDER]} file=${2:?file} folder=${3:-}
  [[ -f $file ]] || lab_fatal "lab_dovecot_deliver: no file $file"
  _lab_dovecot_maildir_make "$user" "$folder"
  local md name
  md=$(lab_dovecot_maildir "$user" "$folder")
  # Unique without shared state: callers run this in $(...), a subshell. Maildir's own recipe:
  # time, then microseconds and the process.
  name="${EPOCHREALTIME%[.,]*}.M${EPOCHREALTIME#*[.,]}P${BASHPID}R$RANDOM.rampart-lab"
  cp -- "$file" "$md/tmp/$name" || lab_fatal "cannot write $md/tmp/$name"
  chown nobody:nogroup "$md/tmp/$name"
  mv -- "$md/tmp/$name" "$md/new/$name" || lab_fatal "cannot deliver into $md/new"
  printf '%s\n' "$name"
}

# lab_dovecot_flags USER [FOLDER]: one line per message, "BASE FLAGS", sorted by base name;
# FLAGS are the Maildir info letters (S seen, T deleted, ...) or "-" for none (new/ included).
lab_dovecot_flags() {
  local md f base flags
  md=$(lab_dovecot_maildir "${1:?usage: lab_dovecot_flags USER [FOLDER]}" "${2:-}")
  for f in "$md"/new/* "$md"/cur/*; do
    [[ -e $f ]] || continue
    base=${f##*/}
    flags=-
    if [[ $base == *:2,* ]]; then
      flags=${base##*:2,}
      base=${base%%:2,*}
      [[ -n $flags ]] || flags=-
    fi
    printf '%s %s\n' "$base" "$flags"
  done | sort
}

# --- PostgreSQL ---------------------------------------------------------------------------------

lab_pg_start() {
  [[ -n $LAB_DIR ]] || lab_fatal "lab_pg_start before lab_init"
  [[ -z $_LAB_PG_DIR ]] || lab_fatal "lab_pg_start called twice"
  pg_cluster_find || lab_skip "$PG_CLUSTER_WHY"
  local dir=$LAB_DIR/pg
  mkdir -p "$dir"
  PG_CLUSTER_WRAP=()
  [[ -n $LAB_NS ]] && PG_CLUSTER_WRAP=(ip netns exec "$LAB_NS")
  pg_cluster_init "$dir" || lab_fatal "PostgreSQL: $PG_CLUSTER_WHY"
  _LAB_PG_DIR=$dir  # from here on lab_down stops it, even after a failed start
  pg_cluster_start "$dir" || lab_fatal "PostgreSQL: $PG_CLUSTER_WHY (log: $dir/server.log)"
}

lab_pg_url() {
  [[ -n $_LAB_PG_DIR ]] || lab_fatal "lab_pg_url before lab_pg_start"
  pg_cluster_url "$_LAB_PG_DIR"
}

# The postmaster is not the harness's child (pg_ctl daemonizes it): after a clean stop its PID
# may already belong to another process, so it is signalled only when pg_ctl could not stop it
# and the PID still names a postgres process.
lab_pg_stop() {
  [[ -n $_LAB_PG_DIR ]] || return 0
  local pid comm=""
  pid=$(pg_cluster_pid "$_LAB_PG_DIR")
  if ! pg_cluster_stop "$_LAB_PG_DIR"; then
    _lab_log "warning: $PG_CLUSTER_WHY"
    [[ -n $pid ]] && { read -r comm <"/proc/$pid/comm"; } 2>/dev/null
    [[ $comm == postgres ]] && _lab_kill_pid "$pid"
  fi
  _LAB_PG_DIR=""
  return 0
}
