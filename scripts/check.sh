#!/usr/bin/env bash
# npm run check: types, lint, format and imports in two lanes, one a core (the type checks are
# about half of the CPU time); fails if either lane fails
set -uo pipefail
npm run -s typecheck &
types=$!
npm run -s lint && npm run -s format:check && npm run -s format:c && npm run -s imports
rest=$?
wait "$types" || exit $?
exit "$rest"
