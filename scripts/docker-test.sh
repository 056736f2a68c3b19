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
# Trust what the host trusts beyond Debian's bundle (a TLS-intercepting proxy).
extra_ca=$(cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true)
docker build --network host --build-arg EXTRA_CA_CERTS="$extra_ca" -t python-executor .

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
# gVisor: Debian's runsc, registered with host networking (this runsc cannot
# set up Docker's bridge here), so the container listens on the host's port.
if command -v runsc >/dev/null && ! docker info 2>/dev/null | grep -q runsc; then
  echo '{"runtimes": {"runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=host", "--ignore-cgroups"]}}}' >/etc/docker/daemon.json
  pkill dockerd; sleep 3; (dockerd >/tmp/dockerd.log 2>&1 &)
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
fi
if docker info 2>/dev/null | grep -q runsc; then
  id=$(docker run -d --runtime=runsc --network host -e PORT=18091 python-executor)
  for _ in $(seq 60); do curl -fs http://127.0.0.1:18091/health >/dev/null && break; sleep 1; done
  echo "== gVisor (runsc): isolation $(curl -fs http://127.0.0.1:18091/info | sed 's/.*"isolation":"\([a-z]*\)".*/\1/')"
  PYEXEC_E2E_URL=http://127.0.0.1:18091 go test -count=1 -run TestSeedCases ./cmd/server && echo "== gVisor (runsc): seed cases pass"
  docker rm -f "$id" >/dev/null
fi
