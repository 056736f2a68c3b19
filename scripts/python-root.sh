#!/usr/bin/env bash
# Builds a Debian root filesystem for the jobs (--python-root) with
# debootstrap, once: a minimal tree with Python and the packages named, in
# DIR. Does nothing when DIR was already built with the same suite and
# packages. Needs root and debootstrap (scripts/deps.sh installs it).
#
#   scripts/python-root.sh DIR [SUITE [PACKAGE...]]
#
# Defaults: trixie with python3, python3-numpy and python3-pandas (what the
# CI test runs the seed cases on). A team root with the whole scientific
# stack:
#   scripts/python-root.sh /srv/trixie trixie python3 python3-numpy python3-pandas \
#     python3-scipy python3-matplotlib python3-sklearn python3-statsmodels \
#     python3-seaborn python3-sympy
# then: python-executor --python-root /srv/trixie
set -euo pipefail
dir=${1:?usage: python-root.sh DIR [SUITE [PACKAGE...]]}
suite=${2:-trixie}
shift $(( $# >= 2 ? 2 : 1 ))
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(python3 python3-numpy python3-pandas)
want="$suite ${pkgs[*]}"
stamp="$dir/.python-executor-root"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
command -v debootstrap >/dev/null || {
  echo "python-root: debootstrap is missing (scripts/deps.sh installs it)" >&2; exit 1; }
# The mirror this machine already uses (deb822 debian.sources, or a one-line
# sources.list as debootstrap and older releases write), else Debian's
# default. Either file may be missing: that must not stop the script.
mirror=$({ sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true
  sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\(http[^ ]*debian\)\/\{0,1\} .*/\2/p' /etc/apt/sources.list 2>/dev/null || true; } | head -n1)
mirror=${mirror:-http://deb.debian.org/debian}
tmp="$dir.tmp-$$"
trap 'rm -rf "$tmp"' EXIT
rm -rf "$tmp"
mkdir -p "$(dirname "$dir")"
echo "python-root: debootstrap $suite with ${pkgs[*]} from $mirror into $dir" >&2
inc=$(IFS=,; echo "${pkgs[*]}")
if ! debootstrap --variant=minbase --include="$inc" "$suite" "$tmp" "$mirror" >"$tmp.log" 2>&1; then
  tail -n 20 "$tmp.log" >&2; rm -f "$tmp.log"; exit 1
fi
rm -f "$tmp.log"
rm -rf "$tmp/var/cache/apt/archives/"*.deb "$tmp/var/lib/apt/lists/"*
echo "$want" >"$tmp/.python-executor-root"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "python-root: $dir ready ($(du -sh "$dir" | cut -f1))" >&2
