#!/usr/bin/env bash
# Fetch the ClickHouse driver plugin for compose's Metabase (profile bi) into plugins/ beside
# this script, which compose mounts at /plugins. Run it on your machine before
# `make stack-up PROFILES="core bi"`; it downloads from GitHub, so tests never run it.
#
# The version is pinned to Metabase's line: driver 1.53.x is for Metabase 0.53.x only (the
# image compose pins, metabase/metabase:v0.53.6.4). It is the driver's last line: from
# Metabase 54 the driver ships inside Metabase, and ClickHouse/metabase-clickhouse-driver is
# archived. The release publishes no checksum, so the download is checked by what it must
# contain (a plugin manifest naming this version), and its SHA-256 is recorded beside it on the
# first fetch and verified on every later one; set CLICKHOUSE_DRIVER_SHA256 to pin a digest you
# verified yourself. (CLICKHOUSE_DRIVER_URL and METABASE_PLUGINS_DIR override the source and
# the folder: tests/test_metabase.py checks these steps on a local file:// jar.)
set -euo pipefail
case "${1:-}" in
  -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "usage: $0 [--help] (settings come from the environment, see --help)" >&2; exit 2 ;;
esac
version="${CLICKHOUSE_DRIVER_VERSION:-1.53.4}"
expected_sha="${CLICKHOUSE_DRIVER_SHA256:-}"
here="$(cd "$(dirname "$0")" && pwd)"
plugins="${METABASE_PLUGINS_DIR:-$here/plugins}"
jar="$plugins/clickhouse.metabase-driver.jar"
record="$jar.sha256"
url="${CLICKHOUSE_DRIVER_URL:-https://github.com/ClickHouse/metabase-clickhouse-driver/releases/download/$version/clickhouse.metabase-driver.jar}"

command -v curl >/dev/null 2>&1 || { echo "curl is not installed: cannot download $url" >&2; exit 1; }
command -v sha256sum >/dev/null 2>&1 || { echo "sha256sum is not installed" >&2; exit 1; }
command -v unzip >/dev/null 2>&1 || { echo "unzip is not installed: cannot check the plugin jar" >&2; exit 1; }
mkdir -p "$plugins"
tmp="$(mktemp "$plugins/.download.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
curl -fsSL --retry 3 -o "$tmp" "$url" || { echo "download failed: $url" >&2; exit 1; }

# A Metabase plugin is a jar holding metabase-plugin.yaml; this one must name the version.
manifest="$(unzip -p "$tmp" metabase-plugin.yaml 2>/dev/null || true)"
if ! grep -Eq "^[[:space:]]*version:[[:space:]]*$version[[:space:]]*$" <<<"$manifest"; then
    echo "$url is not the ClickHouse driver $version (no matching metabase-plugin.yaml)" >&2
    exit 1
fi
actual_sha="$(sha256sum "$tmp" | cut -d' ' -f1)"
if [ -z "$expected_sha" ] && [ -f "$record" ] && [ "$(cut -d' ' -f2 "$record")" = "$version" ]; then
    expected_sha="$(cut -d' ' -f1 "$record")"
fi
if [ -n "$expected_sha" ] && [ "$actual_sha" != "$expected_sha" ]; then
    echo "checksum mismatch for $url: got $actual_sha, expected $expected_sha" >&2
    exit 1
fi
chmod 644 "$tmp"  # Metabase runs as its own user in the container
mv "$tmp" "$jar"
echo "$actual_sha $version" > "$record"
echo "ClickHouse driver $version -> $jar (sha256 $actual_sha)"
