#!/usr/bin/env bash
# Every C++ file is formatted with .clang-format (Google base, 100 columns; STYLE.md section 8).
# Fix with: clang-format-14 -i $(git ls-files '*.cpp' '*.hpp')
set -euo pipefail
src=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$src"
fmt=$(command -v clang-format-14 || command -v clang-format || true)
if [ -z "$fmt" ]; then
  echo "format: clang-format not installed" >&2
  exit 77
fi
mapfile -t files < <(find common milter policyd sidecar packaging tests -name '*.cpp' -o -name '*.hpp' | sort)
if ! "$fmt" --dry-run -Werror "${files[@]}"; then
  echo "format: run clang-format -i on the files above" >&2
  exit 1
fi
echo "format: ok (${#files[@]} files)"
