#!/usr/bin/env bash
# The decision core stays pure (STYLE.md section 2): no sockets, files, databases, libmilter or
# Boost in common/core, nor in the sidecar/maillog and sidecar/dmarc parsers (sidecar/dmarc's
# imap.* is its I/O half and exempt). Fails listing every offending include.
set -euo pipefail
src=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
pattern='#include[[:space:]]*<(boost/|pqxx/|libmilter/|sqlite3\.h|sys/socket\.h|fstream|toml\+\+/|netdb\.h|unistd\.h|iostream|cstdio|thread|chrono)'
files=("$src"/common/core/*.hpp "$src"/common/core/*.cpp "$src"/sidecar/maillog/*.?pp)
for f in "$src"/sidecar/dmarc/*.?pp; do
  case ${f##*/} in imap.*) ;; *) files+=("$f") ;; esac
done
if grep -nE "$pattern" "${files[@]}"; then
  echo "core_is_pure: common/core, sidecar/maillog and sidecar/dmarc must not do I/O (see STYLE.md section 2)" >&2
  exit 1
fi
echo "core_is_pure: ok (${#files[@]} files)"
