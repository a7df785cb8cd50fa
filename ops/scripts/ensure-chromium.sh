#!/usr/bin/env bash
# Debian's chromium for the headless UI test. Never `playwright install`: browsers come from apt.
exec bash "$(dirname "$0")/ensure-debian.sh" chromium "the UI test" chromium
