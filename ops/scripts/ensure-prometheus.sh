#!/usr/bin/env bash
# Debian's prometheus (and promtool) for tests/observability. Its package may try to start a
# prometheus service; without systemd nothing starts, and the tests run their own server.
exec bash "$(dirname "$0")/ensure-debian.sh" prometheus "tests/observability" prometheus promtool
