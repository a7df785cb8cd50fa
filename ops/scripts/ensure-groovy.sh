#!/usr/bin/env bash
# Debian's groovy (2.4 on Debian 12) for the Jenkinsfile and JCasC job-dsl parse tests, which
# only parse those files (nothing of Jenkins runs). Installed with apt-get when missing and
# running as root; otherwise says so and exits 1, and the tests skip naming groovy.
# (Debian's launcher wants JAVA_HOME, defaulting to /usr/lib/jvm/default-java; the tests set it
# from the `java` on PATH when that is missing.)
set -euo pipefail
if command -v groovy >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "groovy missing and apt-get unavailable as this user: the Jenkinsfile tests will be skipped" >&2
    exit 1
fi
echo "installing Debian groovy for the Jenkinsfile tests" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends groovy >/dev/null
command -v groovy >/dev/null 2>&1
