#!/usr/bin/env bash
# Prints the crate's module import graph ("module -> modules it imports", from `crate::x`
# paths outside comments and test code) and fails if a cycle runs through `broker` and the
# coordinators, or if `group`/`txn`/`internal_topic` import a layer above them. The same rule
# is a unit test (`internal_topic::tests`); this is the picture for DESIGN.md.
#   bash scripts/module-graph.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

modules=$(ls src | sed -e 's/\.rs$//' | grep -vx -e lib -e main | sort -u)
imports() {
  local m=$1 path=src/$1
  [ -f "src/$1.rs" ] && path="src/$1.rs"
  [ -d "src/$1" ] && [ -f "src/$1.rs" ] && path="src/$1.rs src/$1"
  # Each file up to its test module (test-only files skipped); comments dropped; `crate::x`
  # names collected.
  find $path -name '*.rs' ! -name '*_tests.rs' ! -name 'tests.rs' ! -name 'testutil.rs' -print0 |
    xargs -0 awk '/^#\[cfg\(test\)\]/ { nextfile } { sub(/\/\/.*/, ""); print }' |
    grep -oE 'crate::[a-z_]+' | sed 's/crate:://' | grep -vx "$m" | sort -u | tr '\n' ' ' || true
}
status=0
for m in $modules; do
  deps=$(imports "$m")
  echo "$m -> ${deps:-(nothing)}"
  case $m in
    group | txn | internal_topic)
      for above in broker handlers protocol server; do
        if [[ " $deps " == *" $above "* ]]; then
          echo "  error: $m imports $above, a layer above it" >&2
          status=1
        fi
      done
      if [[ $m == group && " $deps " == *" txn "* ]]; then
        echo "  error: group imports txn, which sits above it" >&2
        status=1
      fi
      ;;
  esac
done
exit $status
