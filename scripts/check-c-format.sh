#!/usr/bin/env bash
# `npm run check`'s C part: the BPF programs (bpf/.clang-format, the kernel's style) and the
# native addon (native/.clang-format) must be as clang-format writes them. `--fix` rewrites them.
set -euo pipefail
cd "$(dirname "$0")/.."
CLANG_FORMAT=${CLANG_FORMAT:-clang-format-19}
if ! command -v "$CLANG_FORMAT" >/dev/null; then
  echo "$CLANG_FORMAT is missing: run 'make deps' (it installs the packages in scripts/apt-build.txt)" >&2
  exit 1
fi
files=$(git ls-files 'bpf/*.c' 'bpf/*.h' 'native/*.cc' 'native/*.h')
if [ "${1:-}" = "--fix" ]; then
  # shellcheck disable=SC2086
  "$CLANG_FORMAT" -i --style=file $files
  exit 0
fi
# shellcheck disable=SC2086
"$CLANG_FORMAT" --dry-run --Werror --style=file $files
echo "c format: $(echo "$files" | wc -w) files checked"
