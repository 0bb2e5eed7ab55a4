#!/usr/bin/env bash
# Set up (idempotently) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# make the test base before pytest so its (cached) cost is visible on its own
fixtures/base/make-python-base.sh >/dev/null
exec .venv/bin/python -m pytest -ra "$@"
