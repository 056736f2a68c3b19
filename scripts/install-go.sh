#!/usr/bin/env bash
# Installs the Go toolchain that go.mod names into /usr/local/go, from the Go
# module proxy (the same zip GOTOOLCHAIN=auto fetches), when no Go new enough
# to fetch it by itself (1.21+) is present. Needs curl and unzip.
set -euo pipefail
cd "$(dirname "$0")/.."
want=$(sed -n 's/^go \([0-9.]*\)$/\1/p' go.mod)
have() { command -v "$1" >/dev/null 2>&1; }
for go in go /usr/local/go/bin/go; do
  if have "$go"; then
    v=$("$go" env GOVERSION 2>/dev/null | sed 's/^go//')
    major=${v%%.*}; rest=${v#*.}; minor=${rest%%.*}
    if [ "${major:-0}" -gt 1 ] || [ "${minor:-0}" -ge 21 ]; then exit 0; fi
  fi
done
arch=$(uname -m); case "$arch" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; esac
proxy=${GOPROXY:-https://proxy.golang.org}; proxy=${proxy%%,*}
url="$proxy/golang.org/toolchain/@v/v0.0.1-go$want.linux-$arch.zip"
echo "install-go: fetching go$want from $proxy" >&2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
curl -fsSL -o "$tmp/go.zip" "$url"
unzip -q "$tmp/go.zip" -d "$tmp"
rm -rf /usr/local/go
mv "$tmp/golang.org/toolchain@v0.0.1-go$want.linux-$arch" /usr/local/go
chmod -R a+rX /usr/local/go
chmod +x /usr/local/go/bin/* /usr/local/go/pkg/tool/*/* 2>/dev/null || true
/usr/local/go/bin/go version
