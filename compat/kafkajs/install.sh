#!/usr/bin/env bash
# Installs the kafkajs compat suite's npm packages from package-lock.json (idempotent).
# --ignore-scripts: every dependency is pure JS (kafkajs, kafkajs-snappy + snappyjs, lz4js);
# nothing needs an install script.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
node -e "console.log('kafkajs', require('kafkajs/package.json').version)"
