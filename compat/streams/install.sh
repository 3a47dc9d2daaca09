#!/usr/bin/env bash
# Installs the Kafka Streams compat suite: kafka-streams and kafka-clients 4.4.0 (with rocksdbjni) and the
# Maven plugins, from Maven Central into ~/.m2 through Maven itself, and compiles the suite
# (idempotent; a few seconds when everything is cached). Needs the machine's JDK 17 and Maven.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if ! command -v mvn >/dev/null 2>&1 || ! command -v java >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless maven >/dev/null
fi
# `compile` resolves every dependency and plugin run.sh needs and writes target/classpath.txt.
mvn -q -B -Dstyle.color=never compile
echo "kafka-streams $(sed -n 's/^version=//p' < <(unzip -p "$(tr ':' '\n' < target/classpath.txt | grep '/kafka-streams-[0-9]')" kafka/kafka-streams-version.properties))"
