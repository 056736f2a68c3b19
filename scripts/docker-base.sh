#!/usr/bin/env bash
# Makes the base image the Dockerfile names, debian:trixie-slim, on a
# machine that reaches Debian's package mirror but no image registry:
# debootstrap a minimal trixie root filesystem and `docker import` it under
# that name. Does nothing when the image exists. Needs root and a running
# Docker engine. (Where a registry is reachable, docker pulls the official
# image of that name instead and this script is not needed.)
set -euo pipefail
suite=trixie
image=debian:$suite-slim
if docker image inspect "$image" >/dev/null 2>&1; then
  echo "docker-base: $image exists" >&2
  exit 0
fi
command -v debootstrap >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}
# The mirror this machine already uses (deb822 debian.sources, or a one-line
# sources.list), else Debian's default. Either file may be missing.
mirror=$({ sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true
  sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\(http[^ ]*debian\)\/\{0,1\} .*/\2/p' /etc/apt/sources.list 2>/dev/null || true; } | head -n1)
mirror=${mirror:-http://deb.debian.org/debian}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "docker-base: debootstrap $suite from $mirror" >&2
debootstrap --variant=minbase "$suite" "$tmp/root" "$mirror" >"$tmp/log" 2>&1 || { tail -n 20 "$tmp/log"; exit 1; }
rm -rf "$tmp/root/var/lib/apt/lists/"* "$tmp/root/var/cache/apt/"*.bin "$tmp/root/usr/share/doc/"* "$tmp/root/usr/share/man/"*
tar -C "$tmp/root" -c . | docker import --change 'CMD ["bash"]' - "$image"
docker image ls "$image"
