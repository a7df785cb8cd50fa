#!/usr/bin/env bash
# Install uv from PyPI when it is not on PATH (no installer script: only PyPI is reachable).
set -euo pipefail
if command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1; then
    exit 0
fi
echo "installing uv from PyPI" >&2
python3 -m pip install --quiet --disable-pip-version-check uv
