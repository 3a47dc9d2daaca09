#!/usr/bin/env bash
# Installs the Java client suite's dependencies (idempotent): the JDK 17 and Maven from Debian if
# missing, then kafka-clients 4.4.0 and 3.9.x, JUnit 5, Surefire and its JUnit Platform provider
# from Maven Central into ~/.m2, and compiles the tests for both client versions, so that
# compat/java/run.sh works offline afterwards. Quick when everything is already there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if ! command -v mvn >/dev/null 2>&1 || ! command -v javac >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless maven >/dev/null
fi

# `test` running only ClientVersionTest (no broker needed): compiles, and makes Surefire resolve
# its JUnit Platform provider, which it fetches on the first test run, not at test-compile.
# This run's results go to a scratch dir, not compat/results.
for profile in "" "-Pkafka-3.9"; do
  mvn -q -B -ntp $profile test -Dtest=ClientVersionTest -Dresults.dir="$PWD/target/install-results"
done
echo "compat/java: kafka-clients 4.4.0 and $(sed -n 's:.*<kafka.version>\(3\.9\.[0-9]*\)</kafka.version>.*:\1:p' pom.xml) ready"
