#!/usr/bin/env bash
# Installs what the Kafka Connect / MirrorMaker 2 suite needs (idempotent, quick when done):
#   - the repo's .venv with pytest and confluent-kafka (compat/requirements.txt, from PyPI);
#   - Kafka Connect (runtime, json, file connectors, MirrorMaker 2) and an slf4j binding from
#     Maven Central into ~/.m2, with their classpath written to compat/connect/target/classpath.txt.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import confluent_kafka, pytest, pytest_timeout" 2>/dev/null; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -r compat/requirements.txt
fi

cd compat/connect
cp_file=target/classpath.txt
up_to_date() {
  [[ -s $cp_file && $cp_file -nt pom.xml ]] || return 1
  local jar
  while IFS= read -r jar; do
    [[ -f $jar ]] || return 1
  done < <(tr ':' '\n' < "$cp_file")
}
if ! up_to_date; then
  echo "compat/connect: resolving Kafka Connect from Maven Central"
  mvn -q -B dependency:build-classpath -Dmdep.outputFile="$cp_file" -Dmdep.pathSeparator=:
fi
echo "compat/connect: $(tr ':' '\n' < "$cp_file" | grep -cE '\.jar$') jars on the classpath ($(grep -oE 'connect-runtime-[0-9]+(\.[0-9]+)*' "$cp_file"))"
