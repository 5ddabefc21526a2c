#!/usr/bin/env bash
# Installs everything rampart needs to build and to run its whole test suite on a fresh
# Debian 12 machine, with apt only. Idempotent; safe to run again. Must run as root.
# It never configures or starts the system's own Postfix, OpenDKIM, unbound, Dovecot or
# PostgreSQL: the tests run private instances of each.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: must run as root (apt-get)" >&2
  exit 77
fi

build_pkgs=(
  build-essential cmake ninja-build pkg-config git
  libmilter-dev libboost-dev libboost-system-dev libpqxx-dev libpq-dev libre2-dev libfmt-dev
  doctest-dev libsqlite3-dev libtomlplusplus-dev libexpected-dev libsystemd-dev
  libbenchmark-dev clang-14 libclang-rt-14-dev clang-format-14 libunbound-dev libssl-dev
)
test_pkgs=(
  postfix swaks unbound postgresql opendkim opendkim-tools dovecot-core dovecot-imapd openssl
  iproute2 procps sqlite3 python3 miltertest postfwd faketime
)

export DEBIAN_FRONTEND=noninteractive
# POSTFIX-NOTES.md: preseed "No configuration" so the package leaves the system instance alone.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections

# Keep package maintainer scripts from starting system services (unbound, opendkim, dovecot,
# postgresql) while we install: the lab runs its own private instances.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  made_policy=1
fi
cleanup() { if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

missing=()
for p in "${build_pkgs[@]}" "${test_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
