#!/usr/bin/env bash
# Builds and runs the service on :8080 (PORT or flags override), installing
# what it needs first. Extra arguments go to the server: run.sh --pool-size 4
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
mkdir -p bin
go build -trimpath -o bin/python-executor ./cmd/server
exec bin/python-executor "$@"
