#!/usr/bin/env bash
# Installs the Kafka CLI tools suite (idempotent; quick when already installed):
#  - the jars of Apache Kafka 4.4.0's tools from Maven Central (pom.xml), resolved by Maven into
#    ~/.m2, with their classpath written to compat/kafka_tools/build/classpath.txt (read by
#    bin/kafka-run-class, which every bin/kafka-* wrapper execs, as Kafka's bin/*.sh do);
#  - the suite's Python packages into the repo's .venv;
#  - the JDK 17 and Maven from Debian if missing.
#   bash compat/kafka_tools/install.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
suite="$PWD"
cp_file="$suite/build/classpath.txt"
mkdir -p "$suite/build"

classpath_ok() {
  [[ -s "$cp_file" && "$cp_file" -nt "$suite/pom.xml" ]] || return 1
  local jar
  while IFS= read -r jar; do
    [[ -f "$jar" ]] || return 1
  done < <(tr ':' '\n' < "$cp_file")
}

if classpath_ok; then
  echo "kafka_tools: classpath up to date ($(tr ':' '\n' < "$cp_file" | wc -l) jars)"
else
  if ! command -v mvn >/dev/null 2>&1 || ! command -v java >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless maven >/dev/null
  fi
  mvn -q -B -ntp -Dstyle.color=never -f "$suite/pom.xml" dependency:build-classpath \
    -Dmdep.outputFile="$cp_file.tmp" -Dmdep.includeScope=runtime 2>&1 | sed 's/\x1b\[[0-9;]*m//g'
  mv "$cp_file.tmp" "$cp_file"
  echo "kafka_tools: resolved $(tr ':' '\n' < "$cp_file" | wc -l) jars for Kafka's tools"
fi

cd ../..
if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r compat/kafka_tools/requirements.txt
