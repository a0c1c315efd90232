#!/usr/bin/env bash
# Fetches the Apache Kafka broker's runtime classpath once from Maven Central into a cache outside the
# repo and reuses it: `mvn dependency:copy-dependencies` on test/env/kafka/pom.xml. No tarball download;
# the broker runs with the machine's Java (>= 17), see test/fixtures/kafka.ts.
# Usage: test/env/kafka/setup.sh      (prints the libs directory, for `java -cp '<libs>/*'`)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${WEIR_CACHE:-$HOME/.cache/weir}
root=$cache/kafka
libs=$root/libs
mkdir -p "$root"

java=${JAVA_HOME:+$JAVA_HOME/bin/}java
command -v "$java" >/dev/null || { echo "weir test env: $java not found (the Kafka broker needs Java 17+)" >&2; exit 1; }

# The stamp is the hash of the pom, so a version bump re-copies the jars.
stamp=$(sha256sum "$here/pom.xml" | cut -c1-16)
fresh() { [[ -d "$libs" && "$(cat "$libs.stamp" 2>/dev/null)" == "$stamp" ]]; }

if ! fresh; then
  # Parallel runs (several test processes) must not copy into the same directory at once.
  exec 9>"$root/.lock"
  flock 9
  if ! fresh; then
    command -v mvn >/dev/null || { echo "weir test env: mvn not found (needed once to fetch the Kafka jars)" >&2; exit 1; }
    echo "weir test env: fetching Kafka jars from Maven Central (first run only)" >&2
    rm -rf "$libs.tmp"
    # Maven logs errors to stdout: keep its output in a file and show the tail if it fails.
    if ! mvn -B -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$libs.tmp" >"$root/mvn.log" 2>&1; then
      echo "weir test env: mvn dependency:copy-dependencies failed; last lines of $root/mvn.log:" >&2
      tail -n 40 "$root/mvn.log" >&2
      exit 1
    fi
    ls "$libs.tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || { echo "weir test env: no kafka_2.13 jar in $libs.tmp" >&2; exit 1; }
    rm -rf "$libs" "$root"/*.jsa # class-data archives belong to the old classpath
    mv "$libs.tmp" "$libs"
    echo "$stamp" > "$libs.stamp"
  fi
  flock -u 9
fi
echo "$libs"
