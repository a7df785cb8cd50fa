#!/usr/bin/env bash
# Debian's groovy (2.4 on Debian 12) for the Jenkinsfile and JCasC job-dsl parse tests, which
# only parse those files (nothing of Jenkins runs). (Debian's launcher wants JAVA_HOME,
# defaulting to /usr/lib/jvm/default-java; the tests set it from the `java` on PATH.)
exec bash "$(dirname "$0")/ensure-debian.sh" groovy "the Jenkinsfile tests" groovy
