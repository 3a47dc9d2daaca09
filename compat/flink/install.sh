#!/usr/bin/env bash
# Installs the Flink compat suite's dependencies (idempotent): the JDK 17 and Maven from Debian if missing,
# then Flink 2.2.1 (flink-streaming-java, flink-clients, flink-connector-base), flink-connector-kafka
# 5.0.0-2.2 (with kafka-clients 4.2.0), JUnit 5, Surefire and its JUnit Platform provider from Maven
# Central into ~/.m2, and compiles the tests, so that compat/flink/run.sh works offline afterwards.
# Quick when everything is already there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if ! command -v mvn >/dev/null 2>&1 || ! command -v javac >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless maven >/dev/null
fi

# `test` running only VersionsTest (no broker needed): compiles, and makes Surefire
# resolve its JUnit Platform provider, which it fetches on the first test run, not at test-compile.
mvn -q -B -ntp -Dstyle.color=never test -Dtest=VersionsTest \
  -Dresults.dir="$PWD/target/install-results"
echo "compat/flink: Flink $(sed -n 's:.*<flink.version>\(.*\)</flink.version>.*:\1:p' pom.xml)," \
  "flink-connector-kafka $(sed -n 's:.*<flink.kafka.version>\(.*\)</flink.kafka.version>.*:\1:p' pom.xml) ready"
