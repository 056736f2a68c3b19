#!/usr/bin/env bash
# Builds the image and runs the seed's ten cases against a container under
# each Docker set-up this machine offers, printing the isolation level (and
# Landlock ABI, when the server reports one) that each gets:
#   (a) Docker's default seccomp profile, as the image's user and as root;
#   (b) deploy/docker/seccomp.json plus the minimal options, bare and
#       hardened (both must reach `namespaces`), and that profile alone
#       (must not: shows what the extra option is for);
#   (c) gVisor (runsc), installed and registered when missing.
# Exits non-zero if any set-up fails, including gVisor not running at all.
# Needs root; installs docker.io and runsc, and starts dockerd (stopping it
# again at the end), when missing. Removes the build stage it builds and the
# image the new build replaces, so no untagged image is left behind.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh

image=python-executor
profile=$PWD/deploy/docker/seccomp.json
container_label=python-executor.docker-test=$$
build_label=python-executor.stage=build

say() { printf '\n== %s\n' "$*"; }
loud() { printf '\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n!!! %s\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n' "$*" >&2; }

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v runsc >/dev/null || need+=(runsc)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

started_dockerd=""
cleanup() {
  local ids
  ids=$(docker ps -aq --filter "label=$container_label" 2>/dev/null || true)
  [ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1 || true
  if [ -n "$started_dockerd" ]; then
    kill "$started_dockerd" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$started_dockerd" 2>/dev/null || break; sleep 1; done
  fi
}
trap cleanup EXIT
wait_docker() {
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && return 0; sleep 1; done
  echo "docker-test: dockerd did not answer within 60 s; see /tmp/dockerd.log" >&2
  return 1
}
if ! docker info >/dev/null 2>&1; then
  setsid dockerd >/tmp/dockerd.log 2>&1 &
  wait_docker
  started_dockerd=$(cat /var/run/docker.pid)
fi
# The engine's version, not the client's: the docker command on PATH may be
# a newer client (here /usr/local/bin/docker 28.2.2 against engine 20.10).
echo "docker-test: Docker engine $(docker version -f '{{.Server.Version}}')"

scripts/docker-base.sh
# Trust what the host trusts beyond Debian's bundle (a TLS-intercepting proxy).
extra_ca=$(cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true)
previous=$(docker images -q "$image:latest")
docker build --network host --build-arg EXTRA_CA_CERTS="$extra_ca" -t "$image" .
# The image this build replaced is left untagged: remove it too (kept if a
# container still uses it).
if [ -n "$previous" ] && [ "$previous" != "$(docker images -q "$image:latest")" ]; then
  docker rmi "$previous" >/dev/null 2>&1 || echo "docker-test: kept the previous image $previous (in use)" >&2
fi
# The classic builder keeps the Go build stage (~720 MB) as an untagged
# image; the Dockerfile labels it, so remove exactly that.
docker image prune -f --filter "label=$build_label" >/dev/null
if [ -n "$(docker images -q --filter dangling=true --filter "label=$build_label")" ]; then
  echo "docker-test: the build stage image is still there" >&2; exit 1
fi

# A job must not create namespaces in any set-up, whatever the container's
# profile allows bubblewrap: the job filter refuses clone with namespace
# flags and unshare, and clone3 is ENOSYS. Answers the list of calls that
# succeeded.
ns_probe=$(/usr/bin/python3 -c 'import json; print(json.dumps({"script": """
import ctypes, os
def main():
    libc = ctypes.CDLL(None, use_errno=True)
    made = []
    clone3_args = (ctypes.c_uint64 * 8)(0x10000000, 0, 0, 0, 17, 0, 0, 0)  # CLONE_NEWUSER, SIGCHLD
    for name, nr, a, b in [("clone(all namespaces)", 56, 0x7E020000 | 17, 0), ("clone(CLONE_NEWUSER)", 56, 0x10000000 | 17, 0),
                           ("clone3(CLONE_NEWUSER)", 435, ctypes.addressof(clone3_args), 64), ("unshare(CLONE_NEWUSER)", 272, 0x10000000, 0)]:
        ret = libc.syscall(nr, ctypes.c_long(a), ctypes.c_long(b), 0, 0, 0)
        if nr != 272 and ret == 0:
            os._exit(0)
        if ret > 0:
            os.waitpid(ret, 0)
        if ret >= 0:
            made.append(name)
    return made
"""}))')

results=()
failed=0
# run_case NAME WANT_LEVEL [docker run options...]: WANT_LEVEL is the level
# the set-up must reach, or "any" to only report it.
run_case() {
  local name=$1 want=$2; shift 2
  local id port="" info level landlock reason seeds=fail
  say "$name"
  echo "docker run $*"
  if ! id=$(docker run -d --label "$container_label" -p 127.0.0.1::8080 "$@" "$image"); then
    loud "$name: the container did not start"
    results+=("$name|did not start|-|-"); failed=1; return 0
  fi
  for _ in $(seq 90); do
    port=$(docker port "$id" 8080/tcp 2>/dev/null | head -n1 | sed 's/.*://')
    [ -n "$port" ] && curl -fs "http://127.0.0.1:$port/health" >/dev/null && break
    [ "$(docker inspect -f '{{.State.Running}}' "$id")" = true ] || break
    sleep 1
  done
  if ! info=$(curl -fs "http://127.0.0.1:$port/info" 2>/dev/null); then
    docker logs "$id" 2>&1 | tail -n 5
    loud "$name: the server did not answer"
    results+=("$name|did not serve|-|-"); failed=1
    docker rm -f "$id" >/dev/null; return 0
  fi
  IFS=$'\t' read -r level landlock reason < <(/usr/bin/python3 -c '
import json, sys
d = json.loads(sys.argv[1])
ll = d.get("landlock", "not reported")
print(d.get("isolation"), ll if isinstance(ll, str) else json.dumps(ll), d.get("isolation_reason", "-"), sep="\t")' "$info")
  echo "isolation: $level   landlock: $landlock   reason: $reason"
  if PYEXEC_E2E_URL="http://127.0.0.1:$port" go test -count=1 -run 'TestSeedCases' ./cmd/server; then
    seeds=pass
  else
    docker logs "$id" 2>&1 | tail -n 20; failed=1
  fi
  local made
  made=$(curl -fs "http://127.0.0.1:$port/execute" -d "$ns_probe" || echo "no answer")
  if [ "$made" = '{"result":[],"stdout":""}' ]; then
    echo "a job cannot create namespaces: ok"
  else
    loud "$name: a job tried to create namespaces and got: $made"; failed=1; seeds="$seeds, JOB MADE NAMESPACES"
  fi
  if [ "$want" != any ] && [ "$level" != "$want" ]; then
    loud "$name: isolation $level, want $want"; failed=1
  fi
  results+=("$name|$level|$landlock|$seeds")
  docker rm -f "$id" >/dev/null
}

run_case "(a) default profile, image user 10001" any
run_case "(a) default profile, --user 0" any --user 0
run_case "(b) shipped profile + systempaths=unconfined" namespaces \
  -e PYEXEC_REQUIRE_ISOLATION=namespaces \
  --security-opt seccomp="$profile" --security-opt systempaths=unconfined
run_case "(b) the same, hardened as the README suggests" namespaces \
  -e PYEXEC_REQUIRE_ISOLATION=namespaces \
  --security-opt seccomp="$profile" --security-opt systempaths=unconfined \
  --cap-drop ALL --security-opt no-new-privileges --read-only --tmpfs /tmp --memory 2g --pids-limit 1024
run_case "(b) shipped profile alone (no systempaths)" basic --security-opt seccomp="$profile"

# (c) gVisor. Debian's runsc (20221219) cannot copy Docker's bridge network
# into its own network stack on this kernel ("cannot run with network
# enabled in root network namespace"), so it is registered with
# --network=host: gVisor then uses the container's network namespace through
# the host kernel's stack. Registration reloads dockerd (SIGHUP), no restart.
if ! docker info -f '{{range $k, $v := .Runtimes}}{{$k}} {{end}}' | grep -qw runsc; then
  mkdir -p /etc/docker
  /usr/bin/python3 - <<'EOF'
import json, os
path = "/etc/docker/daemon.json"
cfg = json.load(open(path)) if os.path.exists(path) else {}
cfg.setdefault("runtimes", {})["runsc"] = {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=host"]}
json.dump(cfg, open(path, "w"), indent=2)
EOF
  kill -HUP "$(cat /var/run/docker.pid)"
  for _ in $(seq 10); do
    docker info -f '{{range $k, $v := .Runtimes}}{{$k}} {{end}}' | grep -qw runsc && break; sleep 1
  done
fi
if ! docker info -f '{{range $k, $v := .Runtimes}}{{$k}} {{end}}' | grep -qw runsc; then
  loud "gVisor NOT TESTED: dockerd did not register the runsc runtime (see /etc/docker/daemon.json)"
  results+=("(c) gVisor (runsc)|NOT TESTED|-|-"); failed=1
elif ! out=$(docker run --rm --runtime=runsc --entrypoint /bin/true "$image" 2>&1); then
  loud "gVisor NOT TESTED: runsc cannot run a container here: $out"
  results+=("(c) gVisor (runsc)|NOT TESTED|-|-"); failed=1
else
  run_case "(c) gVisor (runsc), --user 0" any --runtime=runsc --user 0
fi

say "summary (Docker engine $(docker version -f '{{.Server.Version}}'))"
printf '%-58s %-12s %-14s %s\n' "set-up" "isolation" "landlock" "seed cases"
for r in "${results[@]}"; do
  IFS='|' read -r n l ll s <<<"$r"
  printf '%-58s %-12s %-14s %s\n' "$n" "$l" "$ll" "$s"
done
exit $failed
