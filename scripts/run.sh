#!/usr/bin/env bash
# Builds and runs the service on 127.0.0.1:8080 (PORT changes the port;
# --addr :8080 listens on every interface), installing what it needs first.
# Extra arguments go to the server, after ours: run.sh --pool-size 4
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
mkdir -p bin
go build -trimpath -o bin/python-executor ./cmd/server
exec bin/python-executor --addr "127.0.0.1:${PORT:-8080}" "$@"
