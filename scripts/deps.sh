#!/usr/bin/env bash
# Installs what the service and its tests need on Debian or Ubuntu, only when
# something is missing. Sourced by run.sh and test.sh; safe to run again.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
# gcc and libc6-dev: go test -race needs cgo, and so a C compiler and libc's
# headers; without them Go turns cgo off and -race refuses to build.
# The scientific stack is the same list the Docker image installs from trixie
# (Dockerfile), here from the host's own release. debootstrap builds the
# jobs' root the tests use (scripts/python-root.sh).
pkgs=(python3 python3-numpy python3-pandas python3-scipy python3-matplotlib python3-sklearn
  python3-statsmodels python3-seaborn python3-sympy bubblewrap debootstrap ca-certificates git curl unzip gcc libc6-dev)
# Tests only (test.sh sets DEPS_FOR_TESTS=1): chromium drives the playground
# page headless (cmd/server/playground_test.go).
if [ -n "${DEPS_FOR_TESTS:-}" ]; then pkgs+=(chromium); fi
for pkg in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing ${need[*]}" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Go: any Go >= 1.21 fetches the toolchain go.mod names by itself; without
# one, install that toolchain from the Go module proxy.
as_root "$(dirname "${BASH_SOURCE[0]}")/install-go.sh"
export PATH="$PATH:/usr/local/go/bin"
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
