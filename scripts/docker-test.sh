#!/usr/bin/env bash
# Builds the image with the unchanged Dockerfile and runs the seed's ten
# cases against a container, under each runtime set-up this machine offers,
# printing the isolation level each one gets. Needs root; installs docker.io
# and starts dockerd when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
if ! command -v dockerd >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  (dockerd >/tmp/dockerd.log 2>&1 &)
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
fi
scripts/docker-base.sh
docker build --network host -t python-executor .

run_case() { # name, docker run flags...
  local name=$1; shift
  local id port
  id=$(docker run -d -p 127.0.0.1::8080 "$@" python-executor)
  port=$(docker port "$id" 8080/tcp | head -n1 | sed 's/.*://')
  for _ in $(seq 60); do curl -fs "http://127.0.0.1:$port/health" >/dev/null && break; sleep 1; done
  local level
  level=$(curl -fs "http://127.0.0.1:$port/info" | sed 's/.*"isolation":"\([a-z]*\)".*/\1/' || echo "did not start")
  echo "== $name: isolation $level"
  if PYEXEC_E2E_URL="http://127.0.0.1:$port" go test -count=1 -run 'TestSeedCases' ./cmd/server; then
    echo "== $name: seed cases pass"
  else
    docker logs "$id" | tail -n 20; docker rm -f "$id" >/dev/null; return 1
  fi
  docker rm -f "$id" >/dev/null
}
run_case "docker, default profile"
run_case "docker, namespaces allowed" \
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined
if docker info 2>/dev/null | grep -q runsc; then
  run_case "gVisor (runsc)" --runtime=runsc
fi
