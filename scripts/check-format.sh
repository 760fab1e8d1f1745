#!/usr/bin/env bash
# Fails when a C++ file of the project differs from what clang-format (.clang-format) makes of it.
# Fix with: clang-format -i $(git ls-files '*.cc' '*.h')
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.cc' '*.h')
if ! clang-format --dry-run --Werror "${files[@]}" 2>/tmp/loraplan-format.log; then
  grep -Eo '^[^:]+\.(cc|h)' /tmp/loraplan-format.log | sort -u | sed 's/^/  not formatted: /'
  exit 1
fi
echo "format: ${#files[@]} files as clang-format makes them"
