#!/usr/bin/env bash
# Real Liquibase 4.3.3 (the npm package node-liquibase@4.3.3 bundles it with a PostgreSQL JDBC
# driver) for the Gold changelog compatibility tests. Installs into .cache/liquibase inside the
# repo (ignored by git); quick when already there. Prints the path of the `liquibase` launcher.
# Needs npm to install and Java (8+) to run; says which is missing and exits 1 otherwise.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
prefix="$root/.cache/liquibase"
dist="$prefix/node_modules/node-liquibase/dist"
launcher="$dist/liquibase/liquibase"
driver="$dist/liquibase/lib/postgresql-42.2.8.jar"
if [ ! -x "$launcher" ] || [ ! -f "$driver" ]; then
    command -v npm >/dev/null 2>&1 || { echo "npm is not installed: cannot install Liquibase" >&2; exit 1; }
    npm install --silent --no-audit --no-fund --prefix "$prefix" node-liquibase@4.3.3 >&2
    # The launcher puts every jar of its lib/ on the classpath: the driver joins them there,
    # so `liquibase` connects to Postgres without a --classpath option.
    cp "$dist/drivers/postgresql-42.2.8.jar" "$driver"
fi
command -v java >/dev/null 2>&1 || { echo "java is not installed: Liquibase cannot run" >&2; exit 1; }
echo "$launcher"
