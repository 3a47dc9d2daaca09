#!/usr/bin/env bash
# A venv of its own: kafka-python 2.0.2 cannot share .venv with the 2.3 line.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
