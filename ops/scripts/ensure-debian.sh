#!/usr/bin/env bash
# ensure-debian.sh PACKAGE "WHAT IT IS FOR" COMMAND...: Debian's PACKAGE, installed with
# apt-get when one of the COMMANDs is missing and this runs as root. Otherwise it says what is
# missing and exits 1, and the tests that need it skip with a reason naming it.
set -euo pipefail
package="$1" purpose="$2"
shift 2
missing=0
for command in "$@"; do
    command -v "$command" >/dev/null 2>&1 || missing=1
done
[ "$missing" = 0 ] && exit 0
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "$package missing and apt-get unavailable as this user: $purpose will be skipped" >&2
    exit 1
fi
echo "installing Debian $package for $purpose" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
for command in "$@"; do
    command -v "$command" >/dev/null 2>&1
done
