#!/usr/bin/env bash
# Installs the aiokafka compat suite's Python packages into the repo's .venv (idempotent).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r compat/aiokafka/requirements.txt
.venv/bin/python -m pip list --disable-pip-version-check 2>/dev/null | grep -iE '^(aiokafka|pytest-asyncio) ' || true
