#!/usr/bin/env bash
# Debian's prometheus (and promtool) for tests/observability. Its package may try to start a
# prometheus service; without systemd nothing starts, and the tests run their own server.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "prometheus missing and apt-get unavailable as this user: tests/observability will skip" >&2
    exit 1
fi
echo "installing Debian prometheus for tests/observability" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
