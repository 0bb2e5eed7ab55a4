#!/usr/bin/env bash
# Idempotent set-up of a fresh Debian 12 machine: Debian packages, the venv, a running Docker
# engine. Safe to run again: it installs only what is missing and starts only what is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(docker.io skopeo umoci mmdebstrap docker-registry apache2-utils podman)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
if ! .venv/bin/python -c 'import ocibuild, pytest, testcontainers' 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ]; then
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
  touch .venv/.installed
fi

scripts/start-docker.sh
