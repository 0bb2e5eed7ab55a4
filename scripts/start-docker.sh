#!/usr/bin/env bash
# Start dockerd without a bridge network (containers use --network host), unless one answers.
set -euo pipefail
if docker info >/dev/null 2>&1; then exit 0; fi
if ! command -v dockerd >/dev/null; then echo "start-docker: dockerd is not installed" >&2; exit 1; fi
log=${OCIBUILD_DOCKERD_LOG:-/tmp/ocibuild-dockerd.log}
setsid dockerd --bridge=none --iptables=false --ip-forward=false >"$log" 2>&1 < /dev/null &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then echo "start-docker: engine is up"; exit 0; fi
  sleep 0.5
done
echo "start-docker: dockerd did not come up; see $log" >&2
tail -20 "$log" >&2
exit 1
