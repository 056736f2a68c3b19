#!/usr/bin/env bash
# Runs every check and test, installing what they need first. Exits non-zero
# when anything fails. Extra arguments go to go test: test.sh -run TestSeed
set -euo pipefail
cd "$(dirname "$0")/.."
DEPS_FOR_TESTS=1 source scripts/deps.sh

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted"; exit 1; fi
echo "== go vet"
go vet ./...
echo "== staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
echo "== python syntax"
/usr/bin/python3 -m py_compile python/worker.py
echo "== jobs' root for the Python-root tests (debootstrap trixie once, then cached)"
# Readable by the worker uids: not under /root.
export PYEXEC_TEST_PYTHON_ROOT="${PYEXEC_TEST_PYTHON_ROOT:-/var/cache/python-executor/trixie}"
as_root scripts/python-root.sh "$PYEXEC_TEST_PYTHON_ROOT" trixie python3 python3-numpy python3-pandas
echo "== go test -race"
go test -race -count=1 -timeout 45m "$@" ./...
echo "== fuzz frame decoder (10s)"
go test -run '^$' -fuzz FuzzReadFrame -fuzztime 10s ./internal/worker/
echo "== benchmark smoke run (no thresholds)"
go run ./benchmarks -duration 1s -concurrency 1,8 -scripts hello,pandas+numpy,syntax-error
go test -run '^$' -bench . -benchtime 200x ./internal/...
