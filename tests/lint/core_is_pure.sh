#!/usr/bin/env bash
# The decision core stays pure (STYLE.md section 2): no sockets, files, databases, libmilter or
# Boost in common/core, nor in the sidecar/maillog parser. Fails listing every offending include.
set -euo pipefail
src=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
pattern='#include[[:space:]]*<(boost/|pqxx/|libmilter/|sqlite3\.h|sys/socket\.h|fstream|toml\+\+/|netdb\.h|unistd\.h|iostream|cstdio|thread|chrono)'
if grep -nE "$pattern" "$src"/common/core/*.hpp "$src"/common/core/*.cpp "$src"/sidecar/maillog/*.?pp; then
  echo "core_is_pure: common/core and sidecar/maillog must not do I/O (see STYLE.md section 2)" >&2
  exit 1
fi
echo "core_is_pure: ok ($(ls "$src"/common/core/*.?pp "$src"/sidecar/maillog/*.?pp | wc -l) files)"
