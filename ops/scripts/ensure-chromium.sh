#!/usr/bin/env bash
# Debian's chromium for the headless UI test. Never `playwright install`: browsers come from apt.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium missing and apt-get unavailable as this user: the UI test will be skipped" >&2
    exit 1
fi
echo "installing Debian chromium for the UI test" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
