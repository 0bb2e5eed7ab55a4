#!/usr/bin/env bash
# The main job, end to end: build the example bento, containerize it without a daemon, load it
# into the local engine, run it and call its API.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ocibuild=.venv/bin/ocibuild

$ocibuild models import examples/summarization/model --name summarization-weights  # "Unchanged" on re-runs
$ocibuild build examples/summarization
# the base is made of Debian packages resolved, verified and unpacked by ocibuild: no registry needed
$ocibuild containerize summarization:latest --image-tag summarization:demo -o summarization-demo.tar --load

port=${PORT:-3000}
container=$(docker run -d --rm --network host -e SUMMARY_API_KEY=demo -e PORT="$port" summarization:demo serve)
trap 'docker stop "$container" >/dev/null' EXIT
for _ in $(seq 1 60); do curl -sf "localhost:$port/readyz" >/dev/null && break; sleep 0.5; done
echo "POST /summarize:"
curl -sf -X POST "localhost:$port/summarize" -H 'content-type: application/json' \
  -d '{"text": "ocibuild turns services into OCI images. It needs no Docker daemon and no root. The weather was mild. Images built by ocibuild are reproducible."}'
echo
