#!/usr/bin/env bash
# Time from start to the first 200 from /ready, of a server binary or of the
# Docker image:
#   benchmarks/ready.sh bin/python-executor --pool-size 2 --preload none
#   benchmarks/ready.sh docker python-executor [docker run options...]
# Prints the seconds, then stops what it started.
set -euo pipefail
port=${READY_PORT:-18999}
t0=$(date +%s.%N)
if [ "$1" = docker ]; then
  image=$2; shift 2
  id=$(docker run -d -p "127.0.0.1:$port:8080" "$@" "$image")
  trap 'docker rm -f "$id" >/dev/null' EXIT
else
  "$@" --addr "127.0.0.1:$port" >/tmp/ready-bench.log 2>&1 &
  pid=$!
  trap 'kill "$pid"; wait "$pid" 2>/dev/null || true' EXIT
fi
for _ in $(seq 6000); do
  curl -fs "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
  sleep 0.02
done
curl -fs "http://127.0.0.1:$port/ready" >/dev/null
echo "ready after $(echo "$(date +%s.%N) - $t0" | bc) s"
